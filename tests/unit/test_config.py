"""config.py: vmbackup.conf to a Config; defaults live here and nowhere else; bad values name their key."""

import pytest
from vmsnapshot import config, guardian_client


def write(tmp_path, text):
    path = tmp_path / "vmbackup.conf"
    path.write_text(text)
    return str(path)


def test_a_missing_file_means_the_defaults(tmp_path):
    cfg = config.load(str(tmp_path / "absent.conf"))
    assert not cfg.present and cfg.fsfreeze is True and cfg.timeout == 30.0 and cfg.lock_wait == 10.0
    assert cfg.mounts_to_include is None and cfg.mounts_to_skip == []


def test_the_environment_names_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, "[SnapshotThread]\nfsfreeze = false\n")
    monkeypatch.setenv(config.ENV_VAR, path)
    assert config.config_path() == path and config.load().fsfreeze is False


def test_keys_are_read_case_insensitively_and_converted(tmp_path):
    cfg = config.load(
        write(
            tmp_path,
            "[snapshotthread]\nFSFREEZE = no\nMountsToInclude = /a, /b ,\ntimeout = 12.5\n"
            "[vmsnapshot]\nHostEndpoint = http://127.0.0.1:8080/\nLogBackups = 2\n"
            "SomethingUnknown = kept out\n",
        )
    )
    assert (cfg.fsfreeze, cfg.mounts_to_include, cfg.timeout) == (False, ["/a", "/b"], 12.5)
    assert (cfg.host_endpoint, cfg.log_backups, cfg.present) == ("http://127.0.0.1:8080", 2, True)
    assert "SomethingUnknown" not in cfg.to_dict()


@pytest.mark.parametrize(
    "text, named",
    [
        ("[SnapshotThread]\nfsfreeze = maybe\n", "[SnapshotThread] fsfreeze"),
        ("[SnapshotThread]\ntimeout = 0\n", "[SnapshotThread] timeout"),
        ("[vmsnapshot]\nLockWaitSeconds = soon\n", "[vmsnapshot] LockWaitSeconds"),
        ("[vmsnapshot]\nHostEndpoint = https://example\n", "[vmsnapshot] HostEndpoint"),
        ("[vmsnapshot]\nHostEndpoint = http://h:70000\n", "[vmsnapshot] HostEndpoint"),
        ("no section\n", "not a valid INI file"),
    ],
)
def test_bad_values_name_their_key(tmp_path, text, named):
    with pytest.raises(config.ConfigError) as e:
        config.load(write(tmp_path, text))
    assert named in str(e.value)


def test_the_default_file_is_valid(tmp_path):
    cfg = config.load(write(tmp_path, config.DEFAULT_FILE))
    expected = dict(config.defaults(cfg.path).to_dict(), present=True)
    # A blank MountsToInclude is unset: every eligible file system, as the file's own comment says.
    assert cfg.to_dict() == expected


def test_the_freeze_engine_defaults_are_the_configuration_defaults():
    assert guardian_client.SAFE_FREEZE_LOCK == config.DEFAULTS["safe_freeze_lock"]
    assert guardian_client.DEFAULT_LOCK_WAIT_S == config.DEFAULTS["lock_wait"] == 10.0
    assert guardian_client.DEFAULT_HARD_DEADLINE_S == config.DEFAULTS["timeout"]
    assert guardian_client.DEFAULT_PER_MOUNT_TIMEOUT_S == config.DEFAULTS["freeze_wait"]

"""vmsnapshot.script_config: reading the script configuration and the descriptor trust checks.

Ownership is checked against our own uid (owner_uid), so these run unprivileged too; nothing is executed.
"""

import json
import os
import stat

import pytest
from vmsnapshot import codes
from vmsnapshot.script_config import (
    DEFAULT_CONFIG_PATH,
    HOST_TIMEOUT_CAP_S,
    Untrusted,
    load_script_plan,
    open_checked_script,
    open_trusted,
)

from harness.trusteddir import TrustedDir

UID = os.geteuid()


@pytest.fixture
def trusted():
    with TrustedDir() as path:
        yield path


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def config(directory, **fields):
    return write(os.path.join(directory, "cfg.json"), json.dumps(fields))


def plan(cfg, **kwargs):
    kwargs.setdefault("hook_dir", None)
    return load_script_plan(config_path=cfg, owner_uid=UID, **kwargs)


# -- the JSON config ----------------------------------------------------------------------------


def test_fields_strings_and_defaults_are_read_as_microsofts_runner_reads_them(trusted):
    p = plan(
        config(
            trusted,
            preScriptLocation=" /opt/app/pre.sh ",
            postScriptLocation="/opt/app/post.sh",
            preScriptParams=["a b", 7, 1.5],
            preScriptNoOfRetries="2",
            timeoutInSeconds="12.5",
            fsFreezeEnabled="False",
            continueBackupOnFailure=False,
            pluginName="MyDatabase",
        )
    )
    assert p.error_code is None and p.enabled
    assert (p.fs_freeze_enabled, p.continue_on_failure) == (False, False)
    (unit,) = p.units
    assert unit.name == "MyDatabase"
    assert (unit.pre.path, unit.pre.args, unit.pre.retries, unit.pre.timeout_s) == (
        "/opt/app/pre.sh",
        ["a b", "7", "1.5"],
        2,
        12.5,
    )
    assert (unit.post.args, unit.post.retries, unit.post.timeout_s) == ([], 0, 12.5)
    assert unit.pre.sh_if_not_executable and unit.pre.origin == "config"


def test_defaults_when_fields_are_absent(trusted):
    p = plan(config(trusted, preScriptLocation="/opt/pre.sh"))
    assert (p.fs_freeze_enabled, p.continue_on_failure) == (True, True)
    assert p.units[0].name == "ScriptRunner" and p.units[0].post is None and p.units[0].pre.timeout_s == 10.0


def test_a_config_without_locations_runs_nothing(trusted):
    p = plan(config(trusted, preScriptLocation="", postScriptLocation=None, fsFreezeEnabled=False))
    assert p.error_code is None and not p.enabled and p.units == [] and not p.fs_freeze_enabled


def test_timeouts_are_capped_by_the_host_timeout_and_1800_s(trusted):
    cfg = config(trusted, preScriptLocation="/opt/pre.sh", timeoutInSeconds=5000)
    assert plan(cfg).units[0].pre.timeout_s == HOST_TIMEOUT_CAP_S == 1800.0
    assert plan(cfg, host_timeout_s=60).units[0].pre.timeout_s == 60.0
    assert plan(cfg, host_timeout_s=99999).host_timeout_s == HOST_TIMEOUT_CAP_S


@pytest.mark.parametrize(
    "fields, needle",
    [
        ({"preScriptLocation": "relative/pre.sh"}, "preScriptLocation must be an absolute path"),
        ({"preScriptLocation": "/p", "preScriptParams": "a b"}, "preScriptParams must be a list of strings"),
        ({"preScriptLocation": "/p", "preScriptParams": [True]}, "preScriptParams must be a list of strings"),
        ({"preScriptLocation": "/p", "preScriptNoOfRetries": -1}, "preScriptNoOfRetries must be a whole number"),
        ({"postScriptLocation": "/p", "postScriptNoOfRetries": True}, "postScriptNoOfRetries must be a whole number"),
        ({"preScriptLocation": "/p", "timeoutInSeconds": 0}, "timeoutInSeconds must be a positive number"),
        ({"preScriptLocation": "/p", "timeoutInSeconds": "soon"}, "timeoutInSeconds must be a number of seconds"),
        ({"preScriptLocation": "/p", "fsFreezeEnabled": "yes"}, "fsFreezeEnabled must be true or false"),
    ],
)
def test_bad_fields_are_305_and_name_the_field(trusted, fields, needle):
    p = plan(config(trusted, **fields))
    assert (p.error_code, p.enabled) == (codes.SCRIPT_CONFIG_INVALID, False)
    assert needle in p.message and p.message.endswith("no script is run")


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe{}"])
def test_unparsable_configs_are_305(trusted, raw):
    path = os.path.join(trusted, "cfg.json")
    with open(path, "wb") as f:
        f.write(raw)
    os.chmod(path, 0o600)
    assert plan(path).error_code == codes.SCRIPT_CONFIG_INVALID


def test_a_byte_order_mark_is_accepted(trusted):
    path = os.path.join(trusted, "cfg.json")
    with open(path, "wb") as f:
        f.write(b"\xef\xbb\xbf" + json.dumps({"preScriptLocation": "/opt/pre.sh"}).encode())
    os.chmod(path, 0o600)
    assert plan(path).enabled


def test_missing_config_named_is_316_default_path_or_not_required_is_no_scripts(trusted):
    missing = os.path.join(trusted, "none.json")
    assert plan(missing).error_code == codes.SCRIPT_CONFIG_NOT_FOUND
    p = plan(missing, config_required=False)
    assert (p.error_code, p.enabled) == (None, False)
    if not os.path.exists(DEFAULT_CONFIG_PATH):
        assert load_script_plan(hook_dir=None).error_code is None


def test_group_writable_config_is_317_and_the_directory_is_named(trusted):
    cfg = config(trusted, preScriptLocation="/opt/pre.sh")
    os.chmod(cfg, 0o620)
    p = plan(cfg)
    assert p.error_code == codes.SCRIPT_CONFIG_PERMISSION and "writable by group or others" in p.message
    os.chmod(cfg, 0o600)
    os.chmod(trusted, 0o777)
    try:
        p = plan(cfg)
    finally:
        os.chmod(trusted, 0o755)
    assert p.error_code == codes.SCRIPT_CONFIG_PERMISSION and "directory %s" % trusted in p.message


def test_config_owned_by_someone_else_is_318(trusted):
    cfg = config(trusted, preScriptLocation="/opt/pre.sh")
    p = load_script_plan(config_path=cfg, hook_dir=None, owner_uid=UID + 1)
    if UID == 0:  # the directories are root's, which is always trusted: the file's owner decides
        assert p.error_code == codes.SCRIPT_CONFIG_OWNERSHIP and "owned by uid 0, not 1" in p.message
    else:  # the directories are ours, not root's nor owner_uid's
        assert p.error_code == codes.SCRIPT_CONFIG_PERMISSION


def test_to_dict_lists_every_unit(trusted):
    doc = plan(config(trusted, preScriptLocation="/opt/pre.sh", preScriptParams=["x"])).to_dict()
    assert doc["enabled"] and doc["error_code"] is None
    assert doc["units"] == [
        {
            "name": "ScriptRunner",
            "post": None,
            "pre": {"path": "/opt/pre.sh", "args": ["x"], "retries": 0, "timeout_s": 10.0, "origin": "config"},
        }
    ]


# -- hooks.d ------------------------------------------------------------------------------------


def test_hook_directory_rules(trusted):
    hooks = os.path.join(trusted, "hooks.d")
    os.mkdir(hooks, 0o755)
    for name, mode in (
        ("20-db", 0o700),
        ("10-app", 0o755),
        ("30-off.disabled", 0o700),
        ("40-x.dpkg-old", 0o700),
        (".hidden", 0o700),
        ("50-not-executable", 0o600),
        ("60-edit~", 0o700),
    ):
        write(os.path.join(hooks, name), "#!/bin/sh\n", mode)
    os.mkdir(os.path.join(hooks, "70-a-directory"))
    os.symlink(os.path.join(hooks, "10-app"), os.path.join(hooks, "80-link"))
    os.symlink("/nonexistent", os.path.join(hooks, "90-dangling"))
    p = plan(os.path.join(trusted, "none.json"), hook_dir=hooks, config_required=False, hook_timeout_s=7)
    assert p.error_code is None
    assert [u.name for u in p.units] == ["hook:10-app", "hook:20-db", "hook:80-link"]
    unit = p.units[0]
    assert (unit.pre.args, unit.post.args, unit.pre.timeout_s, unit.pre.origin) == (["freeze"], ["thaw"], 7, "hook")
    assert not unit.pre.sh_if_not_executable


def test_config_unit_comes_before_the_hooks(trusted):
    hooks = os.path.join(trusted, "hooks.d")
    os.mkdir(hooks, 0o755)
    write(os.path.join(hooks, "00-first"), "#!/bin/sh\n", 0o700)
    p = plan(config(trusted, postScriptLocation="/opt/post.sh"), hook_dir=hooks)
    assert [u.name for u in p.units] == ["ScriptRunner", "hook:00-first"]


def test_missing_hook_directory_is_no_hooks_an_untrusted_one_is_306(trusted):
    assert (
        plan(os.path.join(trusted, "none.json"), hook_dir=os.path.join(trusted, "nope"), config_required=False).units
        == []
    )
    hooks = os.path.join(trusted, "hooks.d")
    os.mkdir(hooks)
    os.chmod(hooks, 0o777)
    p = plan(os.path.join(trusted, "none.json"), hook_dir=hooks, config_required=False)
    assert p.error_code == codes.PRE_SCRIPT_PERMISSION and "no hook is run" in p.message


# -- descriptor checks --------------------------------------------------------------------------


def test_open_trusted_refuses_a_relative_path():
    with pytest.raises(Untrusted) as e:
        open_trusted("etc/passwd", UID)
    assert e.value.kind == "missing" and "not an absolute path" in e.value.message


def test_open_trusted_follows_symlinks_inside_trusted_directories(trusted):
    real = os.path.join(trusted, "real")
    os.mkdir(real, 0o755)
    target = write(os.path.join(real, "pre.sh"), "#!/bin/sh\n", 0o700)
    os.symlink(real, os.path.join(trusted, "relative-link"))  # relative to its directory
    os.symlink(target, os.path.join(trusted, "absolute-link"))  # walked again from /
    for path in (
        os.path.join(trusted, "relative-link", "pre.sh"),
        os.path.join(trusted, "absolute-link"),
        os.path.join(trusted, ".", "real", "pre.sh"),
    ):
        fd, shown = open_trusted(path, UID)
        try:
            assert os.path.samestat(os.fstat(fd), os.stat(target)) and shown == target
        finally:
            os.close(fd)


def test_open_trusted_symlink_loops_and_file_components(trusted):
    os.symlink("loop-b", os.path.join(trusted, "loop-a"))
    os.symlink("loop-a", os.path.join(trusted, "loop-b"))
    with pytest.raises(Untrusted) as e:
        open_trusted(os.path.join(trusted, "loop-a"), UID)
    assert e.value.kind == "permission" and "too many symbolic links" in e.value.message
    f = write(os.path.join(trusted, "file"), "", 0o600)
    with pytest.raises(Untrusted) as e:
        open_trusted(os.path.join(f, "below"), UID)
    assert e.value.kind == "missing"


def test_open_trusted_directory_mode(trusted):
    fd, shown = open_trusted(trusted, UID, "hook directory", directory=True)
    os.close(fd)
    assert shown == os.path.realpath(trusted)
    with pytest.raises(Untrusted) as e:
        open_trusted(trusted, UID)
    assert "is a directory" in e.value.message


def test_open_checked_script_reasons(trusted):
    fd, problem = open_checked_script(write(os.path.join(trusted, "ok.sh"), "#!/bin/sh\n", 0o755), UID)
    assert problem is None and stat.S_ISREG(os.fstat(fd).st_mode)
    os.close(fd)
    assert open_checked_script(os.path.join(trusted, "none.sh"), UID) == (
        None,
        ("missing", "script %s does not exist" % os.path.join(trusted, "none.sh")),
    )
    _, (kind, message) = open_checked_script(write(os.path.join(trusted, "w.sh"), "", 0o722), UID)
    assert kind == "permission" and "writable by group or others" in message and message.endswith("not run")
    fifo = os.path.join(trusted, "fifo")
    os.mkfifo(fifo, 0o600)
    _, (kind, message) = open_checked_script(fifo, UID)
    assert kind == "permission" and "not a regular file" in message

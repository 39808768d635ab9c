"""settings.py: the settings file to a JobSpec, every malformed field a coded SettingsError naming it."""

import json
import time

import pytest
from vmsnapshot import codes, settings
from vmsnapshot.settings import SettingsError

from harness.jobs import b64json, ticks

DISK = "https://acct.blob.core.windows.net/vhds/disk0.vhd?sv=2020-04-08&sr=b&sp=rw&sig=SECRETSIG"


def public(**overrides):
    doc = {
        "locale": "en-us",
        "taskId": " task-1 ",
        "commandToExecute": "snapshot",
        "commandStartTimeUTCTicks": ticks(),
        "vmType": "Microsoft.Compute/virtualMachines",
        "objectStr": b64json(
            {
                "backupMetadata": [{"Key": "BackupTaskId", "Value": "t"}, {"Key": "flag", "Value": True}],
                "includedDisks": {"dataDiskLunList": [0, 1], "isOSDiskIncluded": True},
            }
        ),
    }
    doc.update(overrides)
    return doc


def private(**overrides):
    doc = {"objectStr": b64json({"blobSASUri": [DISK]})}
    doc.update(overrides)
    return doc


def error_of(fn, *args, **kwargs):
    with pytest.raises(SettingsError) as e:
        fn(*args, **kwargs)
    assert "SECRETSIG" not in e.value.message
    return e.value.code, e.value.message


def test_a_good_snapshot_command():
    spec = settings.validate(3, public(), private())
    assert (spec.seq, spec.task_id, spec.vm_type, spec.blob_uris) == (
        3,
        "task-1",
        "microsoft.compute/virtualmachines",
        [DISK],
    )
    assert spec.backup_metadata == [["BackupTaskId", "t"], ["flag", "true"]]
    assert spec.included_disks["dataDiskLunList"] == [0, 1] and spec.method and spec.is_snapshot
    again = settings.JobSpec.from_wire(spec.to_wire())
    assert all(getattr(again, f) == getattr(spec, f) for f in settings.JobSpec.FIELDS)


def test_install_needs_nothing_else():
    spec = settings.validate(0, {"commandToExecute": "Install"}, {})
    assert not spec.is_snapshot and spec.blob_uris == []


@pytest.mark.parametrize(
    "pub, priv, code, field",
    [
        ({"commandToExecute": ""}, {}, codes.BAD_PARAMETER, "commandToExecute"),
        ({"commandToExecute": "reboot"}, {}, codes.BAD_PARAMETER, "commandToExecute"),
        (public(taskId=""), private(), codes.BAD_PARAMETER, "taskId"),
        (public(locale="not a locale!"), private(), codes.BAD_PARAMETER, "locale"),
        (public(vmType="microsoft.compute/somethingelse"), private(), codes.BAD_PARAMETER, "vmType"),
        (public(objectStr="%%%"), private(), codes.BAD_PARAMETER, "objectStr"),
        (
            public(objectStr=b64json({"backupMetadata": [{"Key": "1bad", "Value": "v"}]})),
            private(),
            codes.BAD_PARAMETER,
            "backupMetadata[0].Key",
        ),
        (
            public(
                objectStr=b64json(
                    {"backupMetadata": [{"Key": "k", "Value": "v"}], "includedDisks": {"dataDiskLunList": ["0"]}}
                )
            ),
            private(),
            codes.INVALID_LUN_LIST,
            "dataDiskLunList",
        ),
        (public(commandStartTimeUTCTicks="12ab"), private(), codes.BAD_PARAMETER, "commandStartTimeUTCTicks"),
        (
            public(commandStartTimeUTCTicks=ticks(time.time() - 3 * 3600)),
            private(),
            codes.COMMAND_TOO_LATE,
            "minutes ago",
        ),
        (public(), private(objectStr=b64json({"blobSASUri": "one"})), codes.BAD_PARAMETER, "blobSASUri"),
        (
            public(),
            private(objectStr=b64json({"blobSASUri": ["http://storage.example/c/b?sig=SECRETSIG"]})),
            codes.BAD_PARAMETER,
            "blobSASUri[0] uses plain http",
        ),
        (
            public(statusBlobUri="https://acct/c/status?sv=1"),
            private(),
            codes.BAD_PARAMETER,
            "statusBlobUri has no SAS signature",
        ),
        (public(customSettings="{not json"), private(), codes.BAD_PARAMETER, "customSettings"),
    ],
)
def test_each_bad_field_is_named_with_its_code(pub, priv, code, field):
    got_code, message = error_of(settings.validate, 0, pub, priv)
    assert got_code == code and field in message, message


@pytest.mark.parametrize(
    "uri, problem",
    [
        ("", "non-empty"),
        ("https://h/c/b", "query string"),
        ("https://h/c?sig=x", "container and a blob"),
        ("https://h:99999/c/b?sig=x", "query string"),
        ("x" * 9000, "longer than"),
    ],
)
def test_check_blob_uri(uri, problem):
    assert problem in error_of(settings.check_blob_uri, "statusBlobUri", uri)[1]


def test_check_blob_uri_accepts_loopback_http_and_strips_blanks():
    uri = "http://127.0.0.1:10000/devstoreaccount1/c/b?sig=x"
    assert settings.check_blob_uri("f", " %s " % uri) == uri


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "empty"),
        ("{", "not valid JSON"),
        ("[" * 100, "nests deeper"),
        ('{"runtimeSettings": []}', "non-empty"),
        ('{"runtimeSettings": [{"handlerSettings": 5}]}', "must be an object"),
    ],
)
def test_read_settings_file_problems(tmp_path, text, problem):
    path = tmp_path / "0.settings"
    path.write_text(text)
    code, message = error_of(settings.read_settings_file, str(path))
    assert code == codes.BAD_PARAMETER and problem in message


def test_read_settings_file(tmp_path):
    path = tmp_path / "0.settings"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + json.dumps(
            {"runtimeSettings": [{"handlerSettings": {"publicSettings": None, "protectedSettings": None}}]}
        ).encode()
    )
    assert settings.read_settings_file(str(path)) == {"publicSettings": None, "protectedSettings": None}
    assert error_of(settings.read_settings_file, str(tmp_path / "absent.settings"))[0] == codes.BAD_PARAMETER


def test_protected_settings_decrypt_with_the_tenant_certificate(tmp_path, tenant):
    tenant.install(str(tmp_path))
    handler = {
        "protectedSettings": tenant.encrypt(json.dumps(private())),
        "protectedSettingsCertThumbprint": tenant.thumbprint,
    }
    assert settings.decrypt_protected(handler, str(tmp_path)) == private()
    assert settings.decrypt_protected({"protectedSettings": ""}, str(tmp_path)) == {}
    code, _ = error_of(settings.decrypt_protected, handler, str(tmp_path / "no-certs"))
    assert code == codes.CERTIFICATE_NOT_FOUND
    assert error_of(settings.parse_protected, b"\xff")[0] == codes.BAD_PARAMETER

"""The bad-input corpus: every malformed setting ends in a coded status naming what is wrong,
with no traceback in the status and no secret on disk or in logs."""

import base64
import json
import os
import time

import pytest

from harness.jobs import b64json, ticks
from tests.runtime.conftest import grep_tree


def _public(vm, **kw):
    return vm.public(0, **kw)


def _private(vm, **kw):
    return vm.private(**kw)


def settings_text(vm, text):
    path = os.path.join(vm.agent.base, "config", "0.settings")
    with open(path, "w") as f:
        f.write(text)


# (id, builder(vm), expected code, text the message must contain)
CASES = [
    ("no-settings-file", lambda vm: None, 11, "no settings file"),
    ("empty-settings-file", lambda vm: settings_text(vm, ""), 11, "empty"),
    ("settings-not-json", lambda vm: settings_text(vm, "{runtimeSettings"), 11, "not valid JSON"),
    ("no-runtimeSettings", lambda vm: settings_text(vm, '{"x": 1}'), 11, "runtimeSettings"),
    ("runtimeSettings-empty", lambda vm: settings_text(vm, '{"runtimeSettings": []}'), 11, "runtimeSettings"),
    (
        "handlerSettings-not-object",
        lambda vm: settings_text(vm, '{"runtimeSettings": [{"handlerSettings": 3}]}'),
        11,
        "handlerSettings",
    ),
    ("publicSettings-null", lambda vm: vm.write(public={}), 11, "commandToExecute"),
    (
        "publicSettings-list",
        lambda vm: settings_text(vm, json.dumps({"runtimeSettings": [{"handlerSettings": {"publicSettings": [1]}}]})),
        11,
        "publicSettings",
    ),
    ("command-not-string", lambda vm: vm.write(public=_public(vm, commandToExecute=7)), 11, "commandToExecute"),
    ("command-unknown", lambda vm: vm.write(public=_public(vm, commandToExecute="backup")), 11, "commandToExecute"),
    ("taskId-missing", lambda vm: vm.write(public=_public(vm, taskId=None)), 11, "taskId"),
    ("taskId-not-string", lambda vm: vm.write(public=_public(vm, taskId={"a": 1})), 11, "taskId"),
    ("taskId-huge", lambda vm: vm.write(public=_public(vm, taskId="t" * 5000)), 11, "taskId"),
    ("locale-not-string", lambda vm: vm.write(public=_public(vm, locale=12)), 11, "locale"),
    ("locale-malformed", lambda vm: vm.write(public=_public(vm, locale="!!zz")), 11, "locale"),
    ("vmType-unknown", lambda vm: vm.write(public=_public(vm, vmType="microsoft.compute/containers")), 11, "vmType"),
    (
        "ticks-not-digits",
        lambda vm: vm.write(public=_public(vm, commandStartTimeUTCTicks="yesterday")),
        11,
        "commandStartTimeUTCTicks",
    ),
    (
        "ticks-bool",
        lambda vm: vm.write(public=_public(vm, commandStartTimeUTCTicks=True)),
        11,
        "commandStartTimeUTCTicks",
    ),
    (
        "ticks-too-late",
        lambda vm: vm.write(public=_public(vm, commandStartTimeUTCTicks=ticks(time.time() - 150 * 60))),
        402,
        "minutes",
    ),
    (
        "ticks-before-2000",
        lambda vm: vm.write(public=_public(vm, commandStartTimeUTCTicks="1000")),
        11,
        "commandStartTimeUTCTicks",
    ),
    ("objectStr-missing", lambda vm: vm.write(public=_public(vm, objectStr=None)), 11, "objectStr"),
    ("objectStr-not-base64", lambda vm: vm.write(public=_public(vm, objectStr="%%%not base64%%%")), 11, "base64"),
    (
        "objectStr-not-json",
        lambda vm: vm.write(public=_public(vm, objectStr=base64.b64encode(b"<xml/>").decode())),
        11,
        "JSON",
    ),
    ("objectStr-list", lambda vm: vm.write(public=_public(vm, objectStr=b64json([1, 2]))), 11, "object"),
    ("backupMetadata-missing", lambda vm: vm.write(public=_public(vm, objectStr=b64json({}))), 11, "backupMetadata"),
    (
        "backupMetadata-bad-entry",
        lambda vm: vm.write(public=_public(vm, objectStr=b64json({"backupMetadata": [{"Key": "a"}]}))),
        11,
        "backupMetadata[0]",
    ),
    (
        "backupMetadata-bad-key",
        lambda vm: vm.write(
            public=_public(vm, objectStr=b64json({"backupMetadata": [{"Key": "bad-key", "Value": "v"}]}))
        ),
        11,
        "Key",
    ),
    (
        "backupMetadata-control-chars",
        lambda vm: vm.write(
            public=_public(vm, objectStr=b64json({"backupMetadata": [{"Key": "k", "Value": "line\nbreak"}]}))
        ),
        11,
        "Value",
    ),
    (
        "lun-list-not-ints",
        lambda vm: vm.write(
            public=_public(
                vm,
                objectStr=b64json(
                    {"backupMetadata": [{"Key": "k", "Value": "v"}], "includedDisks": {"dataDiskLunList": ["a"]}}
                ),
            )
        ),
        17,
        "dataDiskLunList",
    ),
    ("customSettings-not-json", lambda vm: vm.write(public=_public(vm, customSettings="{oops")), 11, "customSettings"),
    ("protected-missing", lambda vm: vm.agent.write_settings(0, vm.public(0), None, None), 11, "protectedSettings"),
    (
        "protected-not-base64",
        lambda vm: vm.agent.write_settings(0, vm.public(0), "***", vm.tenant.thumbprint),
        16,
        "base64",
    ),
    (
        "thumbprint-malformed",
        lambda vm: vm.agent.write_settings(0, vm.public(0), vm.tenant.encrypt(json.dumps(vm.private())), "XYZ"),
        16,
        "Thumbprint",
    ),
    (
        "certificate-missing",
        lambda vm: vm.agent.write_settings(0, vm.public(0), vm.tenant.encrypt(json.dumps(vm.private())), "A" * 40),
        16,
        "not in",
    ),
    ("wrong-certificate", lambda vm: _wrong_cert(vm), 16, "could not decrypt"),
    (
        "protected-not-json",
        lambda vm: vm.agent.write_settings(0, vm.public(0), vm.tenant.encrypt("not json at all"), vm.tenant.thumbprint),
        11,
        "JSON",
    ),
    (
        "protected-objectStr-missing",
        lambda vm: vm.write(private={"statusBlobUri": "x"}),
        11,
        "protectedSettings.objectStr",
    ),
    (
        "blobSASUri-empty",
        lambda vm: vm.write(private=_private(vm, objectStr=b64json({"blobSASUri": []}))),
        11,
        "blobSASUri",
    ),
    (
        "blobSASUri-not-list",
        lambda vm: vm.write(private=_private(vm, objectStr=b64json({"blobSASUri": "u"}))),
        11,
        "blobSASUri",
    ),
    (
        "blobSASUri-entry-not-string",
        lambda vm: vm.write(private=_private(vm, objectStr=b64json({"blobSASUri": [5]}))),
        11,
        "blobSASUri[0]",
    ),
    (
        "blobSASUri-plain-http",
        lambda vm: vm.write(
            private=_private(vm, objectStr=b64json({"blobSASUri": ["http://example.invalid/c/b?sig=abc"]}))
        ),
        11,
        "plain http",
    ),
    (
        "blobSASUri-no-sig",
        lambda vm: vm.write(private=_private(vm, objectStr=b64json({"blobSASUri": ["https://127.0.0.1:1/c/b?sv=1"]}))),
        11,
        "sig=",
    ),
    (
        "blobSASUri-garbage",
        lambda vm: vm.write(private=_private(vm, objectStr=b64json({"blobSASUri": ["::::"]}))),
        11,
        "blobSASUri[0]",
    ),
    (
        "too-many-disks",
        lambda vm: vm.write(private=_private(vm, objectStr=b64json({"blobSASUri": vm.disk_uris()[:1] * 129}))),
        11,
        "more than 128",
    ),
    (
        "statusBlobUri-plain-http",
        lambda vm: vm.write(private=_private(vm, statusBlobUri="http://10.1.1.1/c/s?sig=x")),
        11,
        "statusBlobUri",
    ),
    ("huge-settings-file", lambda vm: settings_text(vm, " " * (4 * 1024 * 1024 + 10)), 11, "larger than"),
    (
        "settings-not-utf8",
        lambda vm: open(os.path.join(vm.agent.base, "config", "0.settings"), "wb").write(b"\xff\xfe\x00bad"),
        11,
        "UTF-8",
    ),
    ("config-file-malformed", lambda vm: _bad_config(vm), 11, "vmbackup.conf"),
]


def _wrong_cert(vm):
    from harness.certs import TenantCert

    other = TenantCert(os.path.join(vm.work, "other-tenant"))
    blob = other.encrypt(json.dumps(vm.private()))
    return vm.agent.write_settings(0, vm.public(0), blob, vm.tenant.thumbprint)


def _bad_config(vm):
    vm.write()
    with open(vm.config, "a") as f:
        f.write("[SnapshotThread]\ntimeout = soon\n")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_ends_in_coded_status(vm, case):
    _, build, code, text = case
    build(vm)
    started = time.monotonic()
    proc = vm.agent.run("enable")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 5
    doc = vm.agent.wait_terminal(0, timeout=15)
    status = doc[0]["status"]
    assert status["status"] == "error", status
    assert status["code"] == code, status["formattedMessage"]
    assert text in status["formattedMessage"]["message"], status["formattedMessage"]["message"]
    raw = json.dumps(doc)
    assert "Traceback" not in raw and "Traceback" not in proc.stdout + proc.stderr
    assert grep_tree(vm.work, vm.secrets()) == []


def test_cases_cover_at_least_forty_inputs():
    assert len(CASES) >= 40

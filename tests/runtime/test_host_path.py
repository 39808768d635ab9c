"""The host ("BHS") snapshot path end to end: the runtime, through the agent's commands, against the loopback
host backup service (harness/hostservice.py), which takes real snapshots in Azurite. No freezing here
(tests/runtime/test_host_freeze.py freezes loop mounts): the method choice, both host calls and their
fault matrix, the fallbacks, the status shape (§4), ADE secrets, the host clock and VM identity."""

import json
import os
import re
import time

import pytest

from harness.hostservice import Fault, HostService
from harness.jobs import b64json, safe_config
from tests.runtime.conftest import grep_tree

DES = "FAKE-ADE-DiskEncryptionSettings-6b1f0c2e9d4a47c8"  # must never reach disk, a log or a blob we write
TOKEN = "fake-snapshotTaskToken-0d9e8c7b6a5f4e3d"
LUN_MAP = {0: "disk1.vhd", -1: "disk0.vhd"}


def public(vm, seq=0, disks=None, custom=None, token=TOKEN, **extra_obj):
    obj = {
        "backupMetadata": [{"Key": "BackupTaskId", "Value": "task-%d" % seq}, {"Key": "Origin", "Value": "kit"}],
        "includedDisks": dict({"dataDiskLunList": [0], "isOSDiskIncluded": True}, **(disks or {})),
        "snapshotTaskToken": token,
    }
    obj.update(extra_obj)
    overrides = {"objectStr": b64json(obj)}
    if custom is not None:
        overrides["customSettings"] = json.dumps(custom)
    return vm.public(seq, **overrides)


def no_sas(vm):
    return vm.private(objectStr=b64json({"blobSASUri": []}))


def configure(vm, host, extra=""):
    """The VM's vmbackup.conf pointed at `host` (no freezing); `timeout` 4 s bounds a hung dosnapshot."""
    safe_config(vm.config, vm.work, host_endpoint=host.endpoint if host else "http://127.0.0.1:9", extra=extra)
    with open(vm.config) as f:
        text = f.read().replace("timeout = 20", "timeout = 4")
    with open(vm.config, "w") as f:
        f.write(text)


def run(vm, seq=0, public_settings=None, private=None, timeout=40):
    vm.write(seq, public=public_settings, private=private)
    assert vm.agent.run("enable", seq=seq).returncode == 0
    doc = vm.agent.wait_terminal(seq, timeout=timeout)
    report = json.loads(doc[0]["status"]["substatus"][0]["name"])[0]["status"]
    return doc[0]["status"], report, dict((t["Key"], t["Value"]) for t in report["telemetryData"])


def snapshots_of(vm):
    return sorted((name, meta.get("BackupTaskId")) for name, _, meta in vm.snapshots())


@pytest.fixture
def host(vm):
    with HostService(vm.azurite, vm.container, LUN_MAP) as h:
        configure(vm, h)
        yield h


def test_trusted_launch_vm_without_sas_is_snapshotted_by_the_host(vm, host):
    status, report, tel = run(vm, public_settings=public(vm, disks={"isVmgsBlobIncluded": True}), private=no_sas(vm))
    assert (status["status"], status["code"]) == ("success", 1), status["formattedMessage"]
    assert tel["snapshotCreator"] == "backupHostService"
    assert (tel["hostStatusCodePreSnapshot"], tel["hostStatusCodeDoSnapshot"]) == ("200", "200")
    assert tel["snapshotMethod"] == "onlyHost" and "guest-state" in tel["snapshotMethodReason"]
    message = json.loads(report["formattedMessage"]["message"])["messageStr"]
    assert "snapshotCreator=backupHostService," in message and "hostStatusCodeDoSnapshot=200," in message
    # Real snapshots in Azurite, taken by the host service, carrying the job's metadata.
    assert snapshots_of(vm) == [("disk0.vhd", "task-0"), ("disk1.vhd", "task-0")]
    info = report["snapshotInfo"]
    assert [i["isSuccessful"] for i in info] == [True, True]
    for i in info:
        assert "?snapshot=" in i["snapshotUri"] and i["blobUri"] == i["snapshotUri"].split("?")[0]
        assert i["directDriveSnapshotIdentifier"] is None and i["errorMessage"] == ""
    # The two host calls, exactly as the WireServer expects them.
    pre, do = host.calls_of("presnapshot"), host.calls_of("dosnapshot")
    assert len(pre) == 1 and len(do) == 1 and pre[0].arrived < do[0].arrived
    assert pre[0].body == {"taskId": vm.public(0)["taskId"], "snapshotTaskToken": TOKEN}
    body = do[0].body
    assert body["diskIds"] == [0, -1] and body["snapshotTaskToken"] == TOKEN
    assert [s["Key"] for s in body["settings"]] == [
        "isSnapshotTtlEnabled",
        "useMccfToFetchDsasForAllDisks",
        "useMccfForLad",
        "EnableVMSnapshotExtensionPolling",
        "isVmmdBlobIncluded",
    ]
    assert all(s["Value"] is False for s in body["settings"])
    assert body["snapshotMetadata"] == [{"Key": "BackupTaskId", "Value": "task-0"}, {"Key": "Origin", "Value": "kit"}]
    assert "instantAccessDurationMinutes" not in body
    headers = {k.lower(): v for k, v in do[0].headers.items()}
    assert headers["backup"] == "true" and headers["useragent"] == "VMSnapshot"
    assert headers["content-type"] == "application/json"
    assert grep_tree(vm.work, vm.secrets() + [TOKEN]) == []


def test_directdrive_disk_reports_its_identifier_and_no_snapshot_uri(vm, azurite):
    with HostService(azurite, vm.container, LUN_MAP, directdrive={1}) as host:
        configure(vm, host)
        settings = public(
            vm,
            disks={
                "dataDiskLunList": [0, 1],
                "isAnyDirectDriveDiskIncluded": True,
                "instantAccessDurationMinutes": 300,
            },
            dynamicConfigsFromCRP=[
                {"Key": "issnapshotttlenabled", "Value": "true"},
                {"Key": "somethingElse", "Value": True},
            ],
        )
        status, report, tel = run(vm, public_settings=settings)
        body = host.calls_of("dosnapshot")[0].body
    assert status["code"] == 1, status["formattedMessage"]
    assert body["diskIds"] == [0, 1, -1] and body["instantAccessDurationMinutes"] == 300
    assert body["settings"][0] == {"Key": "isSnapshotTtlEnabled", "Value": True}
    info = report["snapshotInfo"]
    dd = info[1]
    assert dd["snapshotUri"] is None and dd["isSuccessful"] is True
    assert dd["blobUri"].endswith("/dd-lun1") and "/snapshots" not in dd["blobUri"]
    ident = dd["directDriveSnapshotIdentifier"]
    assert re.match(r"^/Date\(\d{13}\)/$", ident["creationTime"]["DateTime"])
    assert abs(int(ident["creationTime"]["DateTime"][6:-2]) / 1000.0 - time.time()) < 300
    assert ident["creationTime"]["OffsetMinutes"] == 0 and ident["instantAccessDurationMinutes"] == 300
    assert ident["id"] and ident["token"]
    assert info[0]["directDriveSnapshotIdentifier"] is None and "?snapshot=" in info[0]["snapshotUri"]
    # The status blob writes .NET dates with escaped slashes, like the rest of the report.
    vm.final_status_blob()
    raw = vm.azurite.read_blob(vm.container, "status.json").decode()
    assert '"DateTime": "\\/Date(' in raw


def test_default_method_prefers_the_host_when_it_answers(vm, host):
    status, _, tel = run(vm, public_settings=public(vm))
    assert status["code"] == 1
    assert tel["snapshotMethod"] == "firstHostThenGuest" and tel["snapshotCreator"] == "backupHostService"


PRE_FAULTS = [
    ("refused", Fault("refuse"), "555"),
    ("500-no-error-body", Fault("plain500"), "556"),
    ("500-error-body", Fault("error500"), "500"),
    ("empty-200", Fault("empty"), "557"),
    ("not-json", Fault("garbage"), "558"),
    ("404", Fault("status", 404, "{}"), "404"),
]


@pytest.mark.parametrize("case", PRE_FAULTS, ids=[c[0] for c in PRE_FAULTS])
def test_first_host_then_guest_falls_back_to_the_guest(vm, azurite, case):
    _, fault, code = case
    with HostService(azurite, vm.container, LUN_MAP, pre=fault) as host:
        configure(vm, host)
        status, report, tel = run(vm, public_settings=public(vm))
        assert host.calls_of("dosnapshot") == []
    assert status["code"] == 1, status["formattedMessage"]
    assert tel["snapshotCreator"] == "guestExtension" and tel["hostStatusCodePreSnapshot"] == code
    assert "hostStatusCodeDoSnapshot" not in tel
    assert len(vm.snapshots()) == len(vm.disk_names)


def test_no_wireserver_at_all_is_555_and_the_guest_snapshots(vm):
    configure(vm, None)
    status, _, tel = run(vm)
    assert status["code"] == 1 and tel["hostStatusCodePreSnapshot"] == "555"
    assert tel["snapshotCreator"] == "guestExtension"


def test_host_forced_but_presnapshot_fails_is_76_before_any_snapshot(vm, azurite):
    with HostService(azurite, vm.container, LUN_MAP, pre=Fault("plain500")) as host:
        configure(vm, host)
        status, _, tel = run(vm, public_settings=public(vm, disks={"isAnyWADiskIncluded": True}), private=no_sas(vm))
        assert host.calls_of("dosnapshot") == []
    assert status["code"] == 76 and "presnapshot" in status["formattedMessage"]["message"]
    assert tel["hostStatusCodePreSnapshot"] == "556" and vm.snapshots() == []


DO_FAULTS = [
    ("refused", Fault("refuse"), 76, "555"),
    ("500-no-error-body", Fault("plain500"), 76, "556"),
    ("500-error-body", Fault("error500"), 76, "500"),
    ("empty-200", Fault("empty"), 76, "557"),
    ("not-json", Fault("garbage"), 76, "558"),
    ("400", Fault("status", 400, '{"error": "bad request"}'), 76, "400"),
    ("403", Fault("status", 403, "denied"), 76, "403"),
    ("partial", Fault(fail_luns={0}), 761, "200"),
    ("all-failed", Fault(fail_luns={0, -1}), 76, "200"),
    ("success-as-bool", Fault(bool_success=True), 1, "200"),
    ("partial-as-bool", Fault(fail_luns={-1}, bool_success=True), 761, "200"),
    ("slow-within-cap", Fault("slow", delay=1.0), 1, "200"),
    ("hang-cut-at-cap", Fault("hang"), 76, "555"),
]


@pytest.mark.parametrize("case", DO_FAULTS, ids=[c[0] for c in DO_FAULTS])
def test_dosnapshot_fault_matrix(vm, azurite, case):
    _, fault, code, host_code = case
    with HostService(azurite, vm.container, LUN_MAP, do=fault) as host:
        configure(vm, host)
        started = time.monotonic()
        status, report, tel = run(
            vm, public_settings=public(vm, disks={"isVmgsBlobIncluded": True}), private=no_sas(vm)
        )
        elapsed = time.monotonic() - started
    assert status["code"] == code, status["formattedMessage"]
    assert tel["hostStatusCodeDoSnapshot"] == host_code and tel["snapshotCreator"] == "backupHostService"
    info = report["snapshotInfo"]
    assert len(info) == 2 and all(
        set(i) == {"isSuccessful", "snapshotUri", "errorMessage", "blobUri", "directDriveSnapshotIdentifier"}
        for i in info
    )
    assert sum(i["isSuccessful"] for i in info) == {1: 2, 761: 1, 76: 0}[code]
    if code != 1:
        assert "Traceback" not in status["formattedMessage"]["message"]
        assert all(i["errorMessage"] for i in info if not i["isSuccessful"])
    assert elapsed < 4 + 15  # a hung host is cut at the freeze cap (timeout = 4 s here)


def test_first_guest_then_host_uses_the_host_when_every_guest_disk_fails(vm, host):
    bad = [u.replace("sig=", "sig=AAAA") for u in vm.disk_uris()]
    status, _, tel = run(
        vm,
        public_settings=public(vm, custom={"takeSnapshotFrom": "firstGuestThenHost"}),
        private=vm.private(objectStr=b64json({"blobSASUri": bad})),
    )
    assert status["code"] == 1, status["formattedMessage"]
    assert tel["snapshotMethod"] == "firstGuestThenHost" and tel["snapshotCreator"] == "backupHostService"
    assert len(host.calls_of("dosnapshot")) == 1


def test_first_guest_then_host_stays_on_the_guest_when_it_works(vm, host):
    status, _, tel = run(vm, public_settings=public(vm, custom={"takeSnapshotFrom": "firstGuestThenHost"}))
    assert status["code"] == 1 and tel["snapshotCreator"] == "guestExtension"
    assert host.calls == []


def test_config_method_overrides_custom_settings(vm, azurite):
    with HostService(azurite, vm.container, LUN_MAP) as host:
        configure(vm, host, extra="[SnapshotThread]\nSnapshotMethod = onlyGuest\n")
        status, _, tel = run(vm, public_settings=public(vm, custom={"takeSnapshotFrom": "onlyHost"}))
        assert host.calls == []
    assert status["code"] == 1 and tel["snapshotMethod"] == "onlyGuest"


def test_host_clock_decides_command_too_late(vm, azurite):
    with HostService(azurite, vm.container, LUN_MAP, clock_offset_s=150 * 60) as host:
        configure(vm, host)
        status, _, _ = run(vm, public_settings=public(vm))
        assert host.calls_of("dosnapshot") == []
    assert status["code"] == 402 and vm.snapshots() == []


@pytest.mark.parametrize("path", ["host", "guest"])
def test_ade_encryption_settings_travel_but_never_leak(vm, azurite, path):
    custom = {"takeSnapshotFrom": "onlyGuest"} if path == "guest" else None
    with HostService(azurite, vm.container, LUN_MAP, disk_encryption_settings=DES) as host:
        configure(vm, host)
        status, report, tel = run(vm, public_settings=public(vm, disks={"isVMADEEnabled": True}, custom=custom))
        pre, do = host.calls_of("presnapshot"), host.calls_of("dosnapshot")
    assert status["code"] == 1, status["formattedMessage"]
    assert pre[0].body["preSnapshotSettings"] == [{"Key": "isVMADEEnabled", "Value": True}]
    if path == "host":
        assert tel["snapshotCreator"] == "backupHostService"
        assert {"Key": "DiskEncryptionSettings", "Value": DES} in do[0].body["snapshotMetadata"]
        assert {"Key": "isOsDiskADEEncrypted", "Value": True} in do[0].body["settings"]
        assert {"Key": "areDataDisksADEEncrypted", "Value": True} in do[0].body["settings"]
    else:
        assert tel["snapshotCreator"] == "guestExtension" and do == []
    # Every snapshot carries the encryption settings as metadata (that is where Azure keeps them) ...
    snaps = vm.snapshots()
    assert len(snaps) == 2 and all(meta.get("DiskEncryptionSettings") == DES for _, _, meta in snaps)
    # ... and nothing the runtime writes does: not on disk, not in the status or log blobs.
    assert grep_tree(vm.work, vm.secrets() + [DES, TOKEN]) == []
    log_text = vm.job_log("ended: code 1")
    assert "ended: code 1" in log_text
    vm.final_status_blob()
    for blob_text in (log_text, vm.azurite.read_blob(vm.container, "status.json").decode()):
        assert DES not in blob_text and TOKEN not in blob_text


def _role(vm, guid):
    path = os.path.join(vm.work, "etc-azure", "HostingEnvironmentConfig.xml")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(
            '<?xml version="1.0"?><HostingEnvironmentConfig version="1.0.0.0" goalStateIncarnation="1">'
            '<Deployment name="d" guid="{dep}" incarnation="0"><Service name="s" guid="{0}" />'
            '<ServiceInstance name="x" guid="{1}" /></Deployment><Incarnation number="1" instance="r" '
            'guid="{2}" /><Role guid="%s" name="vm" hostingEnvironmentVersion="1" software="" '
            'softwareType="ApplicationPackage" entryPoint="" parameters="" settleTimeSeconds="10" />'
            "</HostingEnvironmentConfig>" % guid
        )


def test_restored_vm_with_a_new_role_guid_is_not_already_processed(vm):
    _role(vm, "11111111-2222-3333-4444-555555555555")
    status, _, _ = run(vm)
    assert status["code"] == 1
    vm.write(0)
    vm.agent.run("enable")  # the same VM again: nothing new
    time.sleep(0.3)
    assert len(vm.snapshots()) == len(vm.disk_names)
    _role(vm, "99999999-8888-7777-6666-555555555555")  # restored from this backup, or cloned
    status, _, _ = run(vm)
    assert status["code"] == 1
    assert len(vm.snapshots()) == 2 * len(vm.disk_names)


def test_diagnose_names_the_method_and_why(vm, host):

    vm.write(0, public=public(vm, disks={"isAnyDirectDriveDiskIncluded": True}), private=no_sas(vm))
    proc = vm.agent.handle("diagnose", "--offline")
    assert "snapshot method: onlyHost (only the host can snapshot a DirectDrive disk" in proc.stdout, proc.stdout
    assert host.endpoint in proc.stdout and host.calls == []  # diagnose never calls the host
    assert not any(s in proc.stdout + proc.stderr for s in vm.secrets() + [TOKEN])

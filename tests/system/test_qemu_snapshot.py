"""The whole-system proof (issue 8): an application-consistent backup of a running Linux VM under qemu.

One boot of the cached Debian guest runs three jobs of the kit as `make dist` builds it, against Azurite
on this machine over HTTPS:

- "app" (seq 0): the zip installed the way the guest agent installs it; a writer appends and fsyncs
  records to the guest's own root; a qemu-guest-agent style hook quiesces it; the job freezes the
  guest's root (`MountsToInclude = /`), snapshots the two disk page blobs, thaws, and uploads its
  status blob, which this test reads back from Azurite.
- "deb" (seq 2): the DEB installed with `dpkg -i` on the running VM; `vmsnapshot diagnose` must plan to
  freeze `/` only; `vmsnapshot snapshot` runs the same application-consistent job in the foreground.
- "kill" (seq 1, zip route): no hook; the snapshot requests go through a delaying proxy so the freeze
  lasts; the guest SIGKILLs the worker the moment its writer is blocked on the frozen root, and
  measures how long until the root takes writes again (must be under 1 s: the guardian thaws on the
  worker's death).
- "host" (seq 3, zip route): a "Trusted Launch" job (guest-state blob included, no SAS URIs) whose
  snapshots the loopback host backup service on this machine takes (harness/hostservice.py, reached
  from the guest as its HostEndpoint); the other jobs' presnapshots get "service not running" (556), so
  they take the guest path as before.

Root only (qemu itself does not need root, but the image build does); skipped with the reason when the
guest image, qemu or socat is missing. The boot with all three jobs takes about 2 minutes under TCG.
"""

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from harness.azurite import Azurite
from harness.certs import TenantCert, make_tls
from harness.delayproxy import DelayProxy
from harness.guest_image import GuestImage
from harness.handler import AgentSim
from harness.hostservice import HostService
from harness.jobs import b64json, ticks
from harness.qemu_vm import GUEST_ADDRESS, HOST_ALIAS, GuestVM
from harness.secretscan import sas_signatures

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUEST_FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guest")
FREEZE_CAP_S = 20  # [SnapshotThread] timeout in the guest: the hard cap on any freeze
KILL_THAW_LIMIT_MS = 1000.0
PROXY_RTT_MS = 600  # the kill scenario's storage latency: the freeze lasts at least this
GUEST_LIB = "/var/lib/waagent"
GUEST_LOG = "/var/log/azure"
GUEST_CONFIG = "/etc/azure/vmbackup.conf"
GUEST_HOOK_DIR = "/etc/azure/vmsnapshot/hooks.d"
DISKS = ("osdisk.vhd", "datadisk-0.vhd")
DEB_SEQ = 2  # the job run by the DEB's `vmsnapshot snapshot` instead of the agent
HOST_SEQ = 3  # the host-path job

pytestmark = [pytest.mark.root, pytest.mark.slow]


def skip_reason():
    if os.geteuid() != 0:
        return "not root: the qemu system test needs the guest image that only root can build"
    missing = [t for t in ("qemu-system-x86_64", "qemu-img", "socat") if shutil.which(t) is None]
    if missing:
        return "%s not installed (make apt-deps installs them as root)" % ", ".join(missing)
    image = GuestImage()
    if not image.ready():
        return image.why_not_ready()
    return None


def guest_uri(uri, azurite, guest_port):
    """Rewrite a SAS URI to the guest's view of the host; the signature does not cover the host."""
    return uri.replace("https://127.0.0.1:%d/" % azurite.port, "https://%s:%d/" % (HOST_ALIAS, guest_port), 1)


def settings_for(seq, azurite, guest_port):
    """Public and protected settings shaped as Azure Backup sends them (contract §4, reference §3)."""
    job_id = str(uuid.uuid4())
    obj = {"backupMetadata": [{"Key": "backupJobId", "Value": job_id}, {"Key": "scenario", "Value": "seq%d" % seq}]}
    if seq == HOST_SEQ:  # a Trusted Launch VM: only the host can snapshot, and Azure sends no SAS URIs
        obj.update(
            includedDisks={"dataDiskLunList": [0], "isOSDiskIncluded": True, "isVmgsBlobIncluded": True},
            snapshotTaskToken="qemu-task-token-%s" % job_id,
        )
    public = {
        "locale": "en-us",
        "taskId": job_id,
        "commandToExecute": "snapshot",
        "commandStartTimeUTCTicks": ticks(),
        "vmType": "microsoft.compute/virtualmachines",
        "objectStr": b64json(obj),
    }
    disks = [guest_uri(azurite.blob_sas_uri("vhds", d), azurite, guest_port) for d in DISKS]
    status, logs = (
        guest_uri(azurite.blob_sas_uri("status", "seq%d.%s" % (seq, kind)), azurite, guest_port)
        for kind in ("status", "log")
    )
    private = {
        "objectStr": b64json({"blobSASUri": [] if seq == HOST_SEQ else disks}),
        "statusBlobUri": status,
        "logsBlobUri": logs,
    }
    return public, private, job_id, sas_signatures(disks + [status, logs])


def write_text(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def build_dist(out):
    """The zip and the DEB exactly as `make dist` builds them."""
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "packaging", "make_dist.py"), "--out", out, "--work", out + ".work"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, "make_dist failed:\n" + proc.stdout[-3000:]
    found = {name.rsplit(".", 1)[-1]: os.path.join(out, name) for name in os.listdir(out)}
    return found["zip"], found["deb"]


def stage_guest(stage, work, azurite, tls, ports, host_port):
    """The seed: the extension laid out as the agent does, the DEB, settings, CA, config, scenario files."""
    zip_path, deb_path = build_dist(os.path.join(work, "dist"))
    sim = AgentSim(os.path.join(work, "agent"), zip_path)
    sim.lib = stage + GUEST_LIB
    sim.base = os.path.join(sim.lib, "%s-%s" % (sim.handler_name, sim.version))
    sim.log_dir = os.path.join(stage + GUEST_LOG, sim.handler_name)
    sim.events_dir = os.path.join(sim.log_dir, "events")
    sim.install_files()
    henv = os.path.join(sim.base, "HandlerEnvironment.json")
    with open(henv) as f:
        text = f.read()
    write_text(henv, text.replace(stage, ""))
    tenant = TenantCert(os.path.join(work, "tenant"))
    tenant.install(sim.lib)

    test_dir = os.path.join(stage, "vmsnap-test")
    shutil.copytree(GUEST_FILES, test_dir, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(tls["ca"], os.path.join(test_dir, "ca.pem"))
    shutil.copyfile(deb_path, os.path.join(test_dir, os.path.basename(deb_path)))
    jobs = {}
    for seq, port in ports.items():
        public, private, job_id, secrets = settings_for(seq, azurite, port)
        jobs[seq] = {"taskId": job_id, "signatures": secrets}
        if seq == DEB_SEQ:  # `vmsnapshot snapshot` reads clear-text settings from a root-only file
            write_text(
                os.path.join(test_dir, "manual", "%d.json" % seq),
                json.dumps({"publicSettings": public, "protectedSettings": private}),
                0o600,
            )
            continue
        path = sim.write_settings(seq, public, tenant.encrypt(json.dumps(private)), tenant.thumbprint)
        os.makedirs(os.path.join(test_dir, "settings"), exist_ok=True)
        shutil.move(path, os.path.join(test_dir, "settings", "%d.settings" % seq))
    write_text(
        stage + GUEST_CONFIG,
        (
            "# qemu system test: this VM is disposable, so the job freezes its own root.\n"
            "[SnapshotThread]\nfsfreeze = true\nMountsToInclude = /\ntimeout = %d\n\n"
            "[vmsnapshot]\nHookDir = %s\n"
            "# The host backup service: the loopback one on the host machine, through the guest's forward.\n"
            "HostEndpoint = http://%s:%d\n" % (FREEZE_CAP_S, GUEST_HOOK_DIR, HOST_ALIAS, host_port)
        ),
    )

    guest_base = sim.base[len(stage) :]
    # The agent's own variables (the guest runner adds ConfigSequenceNumber per job), in guest paths.
    agent_env = {k: v for k, v in sim.env(0).items() if k.startswith("AZURE_GUEST_AGENT_")}
    agent_env.update(
        {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "SSL_CERT_FILE": "/vmsnap-test/ca.pem",
            "AZURE_GUEST_AGENT_EXTENSION_PATH": guest_base,
        }
    )
    plan = {
        "handler_dir": guest_base,
        "log_dir": sim.log_dir[len(stage) :],
        "agent_env": agent_env,
        "settings_dir": "/vmsnap-test/settings",
        "hook_dir": GUEST_HOOK_DIR,
        "data_dir": "/srv/writer",
        "guest_address": GUEST_ADDRESS,
        "status_timeout": 120,
        "scenarios": [
            {"name": "app", "seq": 0, "hook": True, "install": True},
            {
                "name": "deb",
                "seq": DEB_SEQ,
                "hook": True,
                "deb": "/vmsnap-test/" + os.path.basename(deb_path),
                "settings": "/vmsnap-test/manual/%d.json" % DEB_SEQ,
                "job_settings": "/var/lib/vmsnap-manual/job.json",
            },
            {"name": "kill", "seq": 1, "hook": False, "kill": True},
            {"name": "host", "seq": HOST_SEQ, "hook": True},
        ],
    }
    write_text(os.path.join(test_dir, "plan.json"), json.dumps(plan, indent=1))
    return jobs


@pytest.fixture(scope="module")
def vm_run(tmp_path_factory):
    reason = skip_reason()
    if reason:
        print("qemu system test skipped: %s" % reason)
        pytest.skip(reason)
    work = str(tmp_path_factory.mktemp("qemu"))
    tls = make_tls(os.path.join(work, "tls"), hosts=(HOST_ALIAS, "127.0.0.1"))
    with Azurite(work, tls=tls, in_memory=True) as azurite:
        azurite.create_container("vhds")
        azurite.create_container("status")
        for d in DISKS:
            azurite.create_page_blob("vhds", d, 1 << 30)
        for seq in (0, 1, DEB_SEQ, HOST_SEQ):
            azurite.create_page_blob("status", "seq%d.status" % seq, 1 << 20)
            azurite.create_append_blob("status", "seq%d.log" % seq)
        with (
            DelayProxy(azurite.port, PROXY_RTT_MS) as proxy,
            HostService(azurite, "vhds", {-1: DISKS[0], 0: DISKS[1]}, serve_tasks=set()) as host,
        ):
            stage = os.path.join(work, "stage")
            ports = {0: azurite.port, 1: proxy.port, DEB_SEQ: azurite.port, HOST_SEQ: azurite.port}
            jobs = stage_guest(stage, work, azurite, tls, ports, host.port)
            host.serve_tasks.add(jobs[HOST_SEQ]["taskId"])
            vm = GuestVM(work)
            boot = vm.boot(
                stage,
                forwards=[(azurite.port, azurite.port), (proxy.port, proxy.port), (host.port, host.port)],
                timeout=360,
            )
            host_calls = [
                (c.name, c.status, (c.body or {}).get("taskId"), (c.body or {}).get("diskIds")) for c in host.calls
            ]
        blobs = {
            seq: azurite.read_blob("status", "seq%d.status" % seq).rstrip(b"\0").decode("utf-8", "replace")
            for seq in (0, DEB_SEQ, HOST_SEQ)
        }
        log_text = azurite.read_blob("status", "seq0.log").decode("utf-8", "replace")
        snapshots = azurite.list_snapshots("vhds")
    # pytest keeps only its last few temporary directories: keep the console where it survives.
    kept = os.path.join(GuestImage().cache, "last-console.log")
    shutil.copyfile(vm.console_log, kept)
    print("\nqemu boot: %.1f s wall, console log %s" % (boot.seconds, kept))
    for kind in ("INIT", "DONE"):
        print(kind, boot.records(kind))
    return {
        "boot": boot,
        "blobs": blobs,
        "log_text": log_text,
        "snapshots": snapshots,
        "jobs": jobs,
        "host_calls": host_calls,
    }


def scenario(vm_run, name):
    boot = vm_run["boot"]
    assert not boot.timed_out, "the guest did not power off in time; console:\n" + boot.console()
    assert boot.records("INIT"), "the guest never reached the scenario runner; console:\n" + boot.console()
    res = boot.result(name)
    assert res is not None, "no result for scenario %s; console:\n%s" % (name, boot.console())
    assert "error" not in res, "scenario %s failed in the guest: %s\n%s" % (
        name,
        res["error"],
        "\n".join(res.get("extensionLog", [])),
    )
    return res


def blob_report(local_status):
    """The status-blob report the runtime embeds in substatus[0].name of the local status."""
    return json.loads(local_status[0]["status"]["substatus"][0]["name"])[0]["status"]


def telemetry(report):
    return {item["Key"]: item["Value"] for item in report["telemetryData"]}


def test_guest_boots_and_agent_enable_runs(vm_run):
    """Infrastructure: the guest boots, reaches the scenario runner, and enable returns at once."""
    res = scenario(vm_run, "app")
    boot = vm_run["boot"]
    assert res["install"]["rc"] == 0, res["install"]
    assert res["enable"]["rc"] == 0, res["enable"]
    assert res["enable"]["seconds"] < 10, res["enable"]
    assert res["status"] is not None, "enable wrote no status/0.status"
    assert res["rootAfter"]["writable"], res["rootAfter"]
    assert res["data"]["intact"], res["data"]
    assert boot.records("DONE"), "the scenario runner did not finish; console:\n" + boot.console()


def check_app_consistent_job(vm_run, res, seq):
    """The job of `seq` froze the live root with the writer quiesced by the hook, snapshotted every disk
    once, and reported it where the agent and Azure Backup read it. Returns the job's telemetry."""
    log = "\n".join(res["extensionLog"])
    assert res["status"] is not None, "no status file for seq %d: %s\n%s" % (seq, res.get("statusError"), log)
    status = res["status"][0]["status"]
    report = blob_report(res["status"])
    tele = telemetry(report)
    assert status["status"] == "success", (status, log)
    assert status["code"] == 0, "expected application-consistent success (code 0): %s" % status
    assert tele["consistencyType"] == "applicationConsistent", tele
    assert json.loads(report["formattedMessage"]["message"])["snapshotConsistency"] == 2
    infos = report["snapshotInfo"]
    assert len(infos) == len(DISKS) and all(i["isSuccessful"] for i in infos), infos

    frozen_ms = float(tele["frozenWindowMs"])
    assert 0 < frozen_ms < FREEZE_CAP_S * 1000, tele
    assert res["writer"]["maxStallMs"] < FREEZE_CAP_S * 1000, res["writer"]
    assert [line.split()[0] for line in res["hookLog"]] == ["freeze", "thaw"], res["hookLog"]
    assert res["writer"]["quiesced"], "the hook never quiesced the writer"
    assert res["rootAfter"]["writable"], res["rootAfter"]
    assert res["data"]["intact"], res["data"]

    # What Azure Backup reads: the status blob in storage on the host, and the snapshots themselves.
    job = vm_run["jobs"][seq]
    blob = json.loads(vm_run["blobs"][seq])[0]["status"]
    assert blob["status"] == "success" and blob["code"] == "0", blob
    assert blob["taskId"] == job["taskId"]
    assert {i["snapshotUri"] for i in blob["snapshotInfo"]} == {i["snapshotUri"] for i in infos}
    mine = [s for s in vm_run["snapshots"] if s[2].get("scenario") == "seq%d" % seq]
    assert {s[0] for s in mine} == set(DISKS), vm_run["snapshots"]
    assert all(s[2].get("backupJobId") == job["taskId"] for s in mine)
    in_storage = {(name, when) for name, when, _ in mine}
    for info in infos:
        uri, _, query = info["snapshotUri"].partition("?")
        when = dict(p.split("=", 1) for p in query.split("&")).get("snapshot")
        assert (uri.rsplit("/", 1)[1], when) in in_storage, (info["snapshotUri"], in_storage)
    # One job, one snapshot per disk: a duplicate counts against Azure's snapshot limit per blob and
    # means a request was sent twice inside the frozen window.
    assert len(mine) == len(DISKS), "%d snapshots in storage for %d disks: %s" % (
        len(mine),
        len(DISKS),
        sorted(in_storage),
    )
    for sig in job["signatures"]:
        assert sig not in vm_run["blobs"][seq] + log, "a SAS signature was written out"
    return tele


def print_figures(name, res, tele):
    print(
        "\n%s: frozen window %s ms, writer max stall %.1f ms (quiesced by the hook), job %.1f s, timings %s"
        % (
            name,
            tele["frozenWindowMs"],
            res["writer"]["maxStallMs"],
            res["jobSeconds"],
            {k: v for k, v in tele.items() if k.endswith("Ms")},
        )
    )


def test_app_consistent_snapshot_of_running_vm(vm_run):
    """The agent's route: the zip under /var/lib/waagent, install + enable, encrypted settings."""
    res = scenario(vm_run, "app")
    assert res["wait"] == "terminal", "no terminal status: %s\n%s" % (res["wait"], "\n".join(res["extensionLog"]))
    tele = check_app_consistent_job(vm_run, res, 0)
    assert "job seq 0 ended: code 0" in vm_run["log_text"], vm_run["log_text"][-2000:]
    for sig in vm_run["jobs"][0]["signatures"]:
        assert sig not in vm_run["log_text"], "a SAS signature was written to the log blob"
    print_figures("agent route", res, tele)


def test_deb_installed_on_running_vm_takes_app_consistent_snapshot(vm_run):
    """The package route: dpkg -i on the running VM, diagnose's freeze plan, `vmsnapshot snapshot`."""
    res = scenario(vm_run, "deb")
    assert res["dpkg"]["rc"] == 0, res["dpkg"]
    with open(os.path.join(ROOT, "VERSION")) as f:
        assert f.read().strip() in res["version"]["stdout"], res["version"]
    assert res.get("freezeOrder") == ["/"], res.get("diagnose") or res.get("freezeOrder")
    assert res["snapshot"]["rc"] == 0, res["snapshot"]
    assert "success (code 0)" in res["snapshot"]["stdout"], res["snapshot"]
    tele = check_app_consistent_job(vm_run, res, DEB_SEQ)
    print_figures("DEB route (dpkg -i %.1f s)" % res["dpkg"]["seconds"], res, tele)


def test_sigkill_of_worker_while_frozen_thaws_guest_root(vm_run):
    res = scenario(vm_run, "kill")
    kill = res["kill"]
    assert kill["killed"], kill
    assert kill["writableAfterKillMs"] is not None, "root still frozen 5 s after the worker's SIGKILL"
    assert kill["writableAfterKillMs"] < KILL_THAW_LIMIT_MS, kill
    assert kill["writerWchanAfter"] != "percpu_rwsem_wait", kill
    # The writer was blocked when the kill came, and resumed within the limit.
    # The stall that the kill ended: short now that the freeze itself is fast, so the writer's longest gap
    # counts too (stalls under its 20 ms reporting threshold are not listed).
    gaps = res["writer"]["stalls"] + [[res["writer"]["maxStallStart"], res["writer"]["maxStallEnd"]]]
    resumed = [end for start, end in gaps if start is not None and start < kill["tKill"] < end]
    assert resumed, "the writer was not stalled across the kill: %s" % res["writer"]
    assert (resumed[0] - kill["tKill"]) * 1000 < KILL_THAW_LIMIT_MS, (resumed, kill)
    assert res["hookLog"] == [], "no hook was installed for this job: %s" % res["hookLog"]
    assert res["rootAfter"]["writable"], res["rootAfter"]
    assert res["data"]["intact"], res["data"]
    # The job's supervisor reports the death as an error naming the signal; an agent restart re-running
    # enable for the same sequence number keeps that status and starts no second job.
    assert res["wait"] == "terminal", res["wait"]
    final = res["status"][0]["status"]
    assert final["status"] == "error", final
    assert "signal 9" in final["formattedMessage"]["message"], final
    assert res["enableAgain"]["rc"] == 0, res["enableAgain"]
    assert res["statusAfterEnableAgain"][0]["status"]["status"] == "error"
    assert res["statusAfterEnableAgain"][0]["status"]["code"] == final["code"]
    print(
        "\nSIGKILL of the worker while frozen: root writable again after %.1f ms, guardian gone after "
        "%s ms; status: %s"
        % (kill["writableAfterKillMs"], kill["guardianGoneMs"], final["formattedMessage"]["message"])
    )


def test_trusted_launch_job_in_the_vm_goes_to_the_host_service_on_the_host(vm_run):
    res = scenario(vm_run, "host")
    job = vm_run["jobs"][HOST_SEQ]
    assert res["status"] is not None, res.get("statusError")
    status = res["status"][0]["status"]
    report = blob_report(res["status"])
    tele = telemetry(report)
    assert (status["status"], status["code"]) == ("success", 0), status  # the hook quiesced the writer
    assert tele["snapshotCreator"] == "backupHostService" and tele["hostStatusCodeDoSnapshot"] == "200", tele
    assert 0 < float(tele["frozenWindowMs"]) < FREEZE_CAP_S * 1000, tele
    assert [line.split()[0] for line in res["hookLog"]] == ["freeze", "thaw"], res["hookLog"]
    assert res["rootAfter"]["writable"] and res["data"]["intact"], res
    ours = [c for c in vm_run["host_calls"] if c[2] == job["taskId"]]
    assert [(name, code, disks) for name, code, _, disks in ours] == [
        ("presnapshot", 200, None),
        ("dosnapshot", 200, [0, -1]),
    ]
    others = [c for c in vm_run["host_calls"] if c[2] != job["taskId"]]
    assert others and all(c[0] == "presnapshot" and c[1] == 500 for c in others), others
    mine = [s for s in vm_run["snapshots"] if s[2].get("scenario") == "seq%d" % HOST_SEQ]
    assert sorted(s[0] for s in mine) == sorted(DISKS), vm_run["snapshots"]
    blob = json.loads(vm_run["blobs"][HOST_SEQ])[0]["status"]
    assert blob["code"] == "0" and all(i["isSuccessful"] for i in blob["snapshotInfo"]), blob

"""Snapshot jobs that really freeze: ext4, xfs and btrfs loop mounts made here, and only those.

Safety, before every job: `diagnose` with the job's configuration must plan to freeze exactly our own
mounts; an independent watchdog process thaws them; the session guard watches the machine's own
file systems. Covers the ordering proof, app consistency with a hook, the fault matrix (a fault
injecting proxy in front of Azurite) and the kill matrix (SIGKILL of the worker mid-job).
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from harness import loopfs
from harness.faultproxy import FaultProxy, Rule
from harness.jobs import SnapshotVM, b64json, freeze_plan, hook_dir, safe_config, wait_for

FSTYPES = ("ext4", "xfs", "btrfs")
REASON = loopfs.skip_reason(FSTYPES)
pytestmark = [pytest.mark.root, pytest.mark.skipif(REASON is not None, reason=REASON or "")]
CAP_S = 4  # [SnapshotThread] timeout for these jobs: the most anything may stay frozen


@pytest.fixture(scope="module")
def loops(tmp_path_factory):
    if REASON:
        print("SKIP freeze jobs: %s" % REASON)
        pytest.skip(REASON)
    with loopfs.LoopFilesystems(str(tmp_path_factory.mktemp("loops")), FSTYPES) as fs:
        yield fs


@pytest.fixture
def fvm(tmp_path, azurite, tenant, built_zip, tls, loops, monkeypatch, runtime_python):
    monkeypatch.setenv("SSL_CERT_FILE", tls["ca"])
    vm = SnapshotVM(str(tmp_path), azurite, tenant, built_zip, python=runtime_python, disks=3)
    safe_config(vm.config, str(tmp_path), fsfreeze=True, include=loops.mountpoints, extra="[SnapshotThread]\n")
    with open(vm.config) as f:
        text = f.read().replace("timeout = 20", "timeout = %d" % CAP_S)
    with open(vm.config, "w") as f:
        f.write(text)
    vm.mounts = loops.mountpoints
    return vm


def assert_plan_is_ours(vm):
    """The safety check every freezing test runs first (and a skip when a foreign session would thaw
    our mounts behind our back: an older machine thaw guard on a shared development machine)."""
    intruders = loopfs.foreign_openers(vm.mounts)
    if intruders:
        print("SKIP: another test session holds our loop mounts open: %s" % intruders)
        pytest.skip("another test session holds our loop mounts open: %s" % intruders)
    plan = freeze_plan(vm)
    assert plan["fsfreeze"] is True
    assert sorted(plan["would_freeze"]) == sorted(vm.mounts), plan["would_freeze"]


class Writer(object):
    def __init__(self, mounts, out):
        self.out = out
        self.proc = subprocess.Popen(
            [sys.executable, "-B", "-m", "harness.writer", out] + list(mounts),
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout.readline().strip() == "ready"
        time.sleep(0.1)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(20)
        with open(self.out) as f:
            return json.load(f)


def run_job(vm, seq=0, private=None, timeout=40):
    assert_plan_is_ours(vm)
    vm.write(seq, private=private)
    with loopfs.ThawWatchdog(vm.mounts, seconds=CAP_S + 20):
        assert vm.agent.run("enable", seq=seq).returncode == 0
        doc = vm.agent.wait_terminal(seq, timeout=timeout)
    ok, took = loopfs.probe_writable(vm.mounts, timeout_s=1.0)
    assert ok, "mounts not writable after the job (%.2fs)" % took
    return doc


def report_of(doc):
    return json.loads(doc[0]["status"]["substatus"][0]["name"])[0]["status"]


def telemetry(report):
    return dict((t["Key"], t["Value"]) for t in report["telemetryData"])


def parse_snapshot_time(ts):
    import calendar
    import datetime

    dt = datetime.datetime.strptime(ts[:26], "%Y-%m-%dT%H:%M:%S.%f")
    return calendar.timegm(dt.timetuple()) + dt.microsecond / 1e6


def test_fs_consistent_job_snapshots_while_writers_are_blocked(fvm, tmp_path, machine_guard):
    writer = Writer(fvm.mounts, str(tmp_path / "writer.json"))
    try:
        doc = run_job(fvm)
    finally:
        stalls = writer.stop()
    status = doc[0]["status"]
    assert (status["status"], status["code"]) == ("success", 1), status["formattedMessage"]
    report = report_of(doc)
    assert json.loads(report["formattedMessage"]["message"])["snapshotConsistency"] == 1
    frozen_ms = float(telemetry(report)["frozenWindowMs"])
    assert 0 < frozen_ms < CAP_S * 1000
    # Ordering proof: every snapshot was taken while every writer was blocked.
    times = [parse_snapshot_time(s) for _, s, _ in fvm.snapshots()]
    assert len(times) == 3
    for mount, rec in stalls.items():
        assert rec["writes"] > 0
        # No write completed on this file system while the snapshot requests were being served.
        blocked = [g for g in rec["gaps"] if g[0] - 0.002 <= min(times) and max(times) <= g[1] + 0.002]
        assert blocked, (mount, times, rec["gaps"][-5:])
    assert machine_guard.incidents == []


def test_app_consistent_job_runs_hooks_around_the_freeze(fvm, tmp_path):
    hooks = hook_dir(str(tmp_path))
    os.makedirs(hooks, mode=0o700, exist_ok=True)
    marker = str(tmp_path / "hook.log")
    hook = os.path.join(hooks, "10-quiesce")
    with open(hook, "w") as f:
        f.write('#!/bin/sh\necho "$1 $(date +%%s.%%N)" >> %s\n' % marker)
    os.chmod(hook, 0o700)
    doc = run_job(fvm)
    status = doc[0]["status"]
    assert (status["status"], status["code"]) == ("success", 0), status["formattedMessage"]
    assert json.loads(report_of(doc)["formattedMessage"]["message"])["snapshotConsistency"] == 2
    with open(marker) as f:
        assert [line.split()[0] for line in f] == ["freeze", "thaw"]


SNAP = "comp=snapshot"
FAULTS = [
    ("500-once-retried", [Rule(SNAP, "status", 500, times=1)], 1),
    ("503-retry-after", [Rule(SNAP, "status", 503, headers={"Retry-After": "1"}, times=1)], 1),
    ("reset-once", [Rule(SNAP, "reset", times=1)], 1),
    ("slow-body", [Rule(SNAP, "slow", times=None, chunk_delay=0.05)], 1),
    ("hang-forever", [Rule(SNAP, "hang", times=None)], 76),
    ("403-expired-sas", [Rule(SNAP, "status", 403, body="AuthenticationFailed", times=None)], 76),
    (
        "409-count-exceeded",
        [
            Rule(
                SNAP,
                "status",
                409,
                body="<Error><Code>SnapshotCountExceeded</Code><Message>"
                "The snapshot count against this blob has been exceeded.</Message></Error>",
                headers={"x-ms-error-code": "SnapshotCountExceeded"},
                times=None,
            )
        ],
        85,
    ),
    (
        "rate-exceeded",
        [
            Rule(
                SNAP,
                "status",
                503,
                body="The rate of snapshot blob calls is exceeded.",
                headers={"x-ms-error-code": "SnapshotOperationRateExceeded"},
                times=None,
            )
        ],
        173,
    ),
    ("one-disk-500s", [Rule(("/disk1.vhd?", SNAP), "status", 500, times=None)], 761),
]


@pytest.mark.parametrize("case", FAULTS, ids=[c[0] for c in FAULTS])
def test_fault_matrix(fvm, tls, azurite, case):
    _, rules, code = case
    for rule in rules:
        rule.hits = 0  # the parametrized rules are shared between interpreters
    with FaultProxy(azurite.port, tls, rules) as proxy:
        uris = [proxy.rewrite(u) for u in fvm.disk_uris()]
        started = time.monotonic()
        doc = run_job(fvm, private=fvm.private(objectStr=b64json({"blobSASUri": uris})))
        elapsed = time.monotonic() - started
    status = doc[0]["status"]
    assert status["code"] == code, status["formattedMessage"]
    report = report_of(doc)
    tel = telemetry(report)
    if "frozenWindowMs" in tel:
        assert float(tel["frozenWindowMs"]) <= CAP_S * 1000 + 100, tel
    assert elapsed < CAP_S + 20


def _job_pids(vm):
    with open(os.path.join(vm.agent.base, "job.json")) as f:
        return json.load(f)


def _snapshot_sent(proxy):
    """Snapshot requests only leave after the freeze: the first one reaching the proxy means frozen."""
    return any(SNAP in line for _, _, line, _ in proxy.log)


@pytest.mark.parametrize("when", ["during-pre-script", "while-frozen"])
def test_kill_matrix_sigkill_worker(fvm, tls, azurite, tmp_path, when):
    rules = []
    if when == "during-pre-script":
        hooks = hook_dir(str(tmp_path))
        os.makedirs(hooks, mode=0o700, exist_ok=True)
        hook = os.path.join(hooks, "10-slow")
        with open(hook, "w") as f:
            f.write('#!/bin/sh\n[ "$1" = freeze ] && sleep 30\nexit 0\n')
        os.chmod(hook, 0o700)
    else:
        rules = [Rule(SNAP, "hang", times=None)]
    assert_plan_is_ours(fvm)
    with FaultProxy(azurite.port, tls, rules) as proxy, loopfs.ThawWatchdog(fvm.mounts, seconds=CAP_S + 20):
        uris = [proxy.rewrite(u) for u in fvm.disk_uris()]
        fvm.write(0, private=fvm.private(objectStr=b64json({"blobSASUri": uris})))
        assert fvm.agent.run("enable").returncode == 0
        pid = wait_for(
            lambda: _job_pids(fvm).get("pid") if os.path.exists(os.path.join(fvm.agent.base, "job.json")) else None
        )
        if when == "while-frozen":
            wait_for(lambda: _snapshot_sent(proxy))
            assert not loopfs.probe_writable(fvm.mounts[:1], timeout_s=0.3)[0], "expected to be frozen"
        else:
            time.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        ok, took = loopfs.probe_writable(fvm.mounts, timeout_s=1.0)
        assert ok and time.monotonic() - killed < 1.0, "not writable within 1 s of SIGKILL (%.2fs)" % took
        doc = fvm.agent.wait_terminal(0, timeout=20)
    status = doc[0]["status"]
    assert status["status"] == "error" and status["code"] == 2
    assert "killed by signal 9" in status["formattedMessage"]["message"]
    expected_phase = "pre-scripts" if when == "during-pre-script" else "snapshots while frozen"
    assert expected_phase in status["formattedMessage"]["message"]


def test_guardian_stopped_and_worker_killed_the_supervisor_thaws(fvm, tls, azurite):
    """Issue 15: with the guardian stopped (SIGSTOP) nothing thawed a killed worker's freeze until SIGCONT;
    the supervisor knows the phase and the planned mounts from its pipe and thaws them itself."""
    assert_plan_is_ours(fvm)
    guardian = None
    with (
        FaultProxy(azurite.port, tls, [Rule(SNAP, "hang", times=None)]) as proxy,
        loopfs.ThawWatchdog(fvm.mounts, seconds=CAP_S + 20),
    ):
        try:
            uris = [proxy.rewrite(u) for u in fvm.disk_uris()]
            fvm.write(0, private=fvm.private(objectStr=b64json({"blobSASUri": uris})))
            assert fvm.agent.run("enable").returncode == 0
            wait_for(lambda: _snapshot_sent(proxy))
            job = _job_pids(fvm)
            guardian = job["guardian_pid"]
            os.kill(guardian, signal.SIGSTOP)
            assert not loopfs.probe_writable(fvm.mounts[:1], timeout_s=0.3)[0], "expected to be frozen"
            with loopfs.WriteProbe(fvm.mounts) as probe:
                os.kill(job["pid"], signal.SIGKILL)
                killed = time.monotonic()
                took = loopfs.wait_writable(fvm.mounts, within_s=1.0, since=killed, probe=probe)
            assert took is not None and took < 1.0, "not writable within 1 s of the SIGKILL"
            doc = fvm.agent.wait_terminal(0, timeout=20)
        finally:
            if guardian:
                os.kill(guardian, signal.SIGCONT)  # it sees end-of-file and exits
                if not _gone_within(guardian, 5):
                    os.kill(guardian, signal.SIGKILL)
    message = doc[0]["status"]["formattedMessage"]["message"]
    assert "killed by signal 9" in message and "by the supervisor" in message, message


def _gone_within(pid, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        time.sleep(0.02)
    return False


def test_disable_during_a_frozen_job_thaws_before_returning(fvm, tls, azurite):
    assert_plan_is_ours(fvm)
    with (
        FaultProxy(azurite.port, tls, [Rule(SNAP, "hang", times=None)]) as proxy,
        loopfs.ThawWatchdog(fvm.mounts, seconds=CAP_S + 20),
    ):
        uris = [proxy.rewrite(u) for u in fvm.disk_uris()]
        fvm.write(0, private=fvm.private(objectStr=b64json({"blobSASUri": uris})))
        assert fvm.agent.run("enable").returncode == 0
        wait_for(lambda: _snapshot_sent(proxy))
        assert fvm.agent.run("disable").returncode == 0
        ok, _ = loopfs.probe_writable(fvm.mounts, timeout_s=0.5)
        assert ok, "disable returned with a frozen file system"
        doc = fvm.agent.wait_terminal(0, timeout=20)
    assert doc[0]["status"]["status"] == "error"
    assert "cancelled" in doc[0]["status"]["formattedMessage"]["message"]


CHECKERS = {
    "ext4": ["fsck.ext4", "-n", "-f"],
    "xfs": ["xfs_repair", "-n", "-f"],
    "btrfs": ["btrfs", "check", "--readonly"],
}


def test_images_copied_during_the_frozen_window_are_clean(fvm, tls, azurite, loops, tmp_path):
    """What a disk snapshot captures while frozen is a clean file system, writers running or not."""
    writer = Writer(fvm.mounts, str(tmp_path / "writer.json"))
    copies = {}
    try:
        assert_plan_is_ours(fvm)
        with (
            FaultProxy(azurite.port, tls, [Rule(SNAP, "delay", delay=1.5, times=None)]) as proxy,
            loopfs.ThawWatchdog(fvm.mounts, seconds=CAP_S + 20),
        ):
            uris = [proxy.rewrite(u) for u in fvm.disk_uris()]
            fvm.write(0, private=fvm.private(objectStr=b64json({"blobSASUri": uris})))
            assert fvm.agent.run("enable").returncode == 0
            wait_for(lambda: _snapshot_sent(proxy))
            for fs in loops.filesystems:  # the images live on the unfrozen root: copying cannot block
                copies[fs.fstype] = str(tmp_path / ("%s.copy" % fs.fstype))
                subprocess.run(["cp", "--sparse=always", fs.image, copies[fs.fstype]], check=True, timeout=30)
            still_frozen = not loopfs.probe_writable(fvm.mounts[:1], timeout_s=0.2)[0]
            doc = fvm.agent.wait_terminal(0, timeout=30)
    finally:
        writer.stop()
    assert still_frozen, "the copies were not all taken inside the frozen window"
    assert doc[0]["status"]["code"] == 1, doc[0]["status"]["formattedMessage"]
    for fstype, copy in copies.items():
        if fstype == "xfs":
            # A frozen xfs keeps committed changes in its (clean, replayable) log: a restore mounts the disk,
            # which replays it. Do the same (nouuid: the original is still mounted), then check read-only.
            target = str(tmp_path / "xfs-replay")
            os.makedirs(target)
            subprocess.run(["mount", "-o", "loop,nouuid", copy, target], check=True, timeout=60)
            subprocess.run(["umount", target], check=True, timeout=60)
        proc = subprocess.run(CHECKERS[fstype] + [copy], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (fstype, proc.stdout[-2000:], proc.stderr[-2000:])

"""The host path with real freezes of loop mounts made here (root only), the same safety as
test_freeze_jobs.py: the freeze plan is checked first (only our mounts), a ThawWatchdog is armed, the
session's machine guard watches the machine's own file systems.

Proofs: the dosnapshot request reaches the host service while every chosen file system is frozen (a writer
on each is blocked at that moment) and the thaw follows its answer; a hung host is cut at the freeze cap and
the file systems are writable again; SIGKILL of the worker while the dosnapshot is in flight thaws within
1 s; firstGuestThenHost freezes a second time for the host.
"""

import json
import os
import select
import signal
import time

import pytest

from harness import loopfs
from harness.faultproxy import FaultProxy, Rule
from harness.hostservice import Fault, HostService
from harness.jobs import b64json, safe_config
from tests.runtime import test_freeze_jobs
from tests.runtime.test_freeze_jobs import CAP_S, REASON, assert_plan_is_ours, report_of, telemetry
from tests.runtime.test_host_path import LUN_MAP, no_sas, public

pytestmark = [pytest.mark.root, pytest.mark.skipif(REASON is not None, reason=REASON or "")]


loops = test_freeze_jobs.loops  # the same loop mounts fixture (one set per module)


@pytest.fixture
def hvm(vm, loops):
    vm.mounts = loops.mountpoints
    return vm


def configure(vm, host):
    safe_config(vm.config, vm.work, fsfreeze=True, include=vm.mounts, host_endpoint=host.endpoint)
    with open(vm.config) as f:
        text = f.read().replace("timeout = 20", "timeout = %d" % CAP_S)
    with open(vm.config, "w") as f:
        f.write(text)


class FrozenProof(object):
    """One pre-started write probe per mount. At the moment a dosnapshot arrives, each probe's write must
    block (frozen); when it later completes, that is when the mount was thawed."""

    def __init__(self, mounts):
        self.probes = [loopfs.WriteProbe([m]) for m in mounts]
        self.blocked = None

    def at_dosnapshot(self, call):
        for p in self.probes:
            p.proc.stdin.write(b"go\n")
            p.proc.stdin.flush()
        ready, _, _ = select.select([p.proc.stdout for p in self.probes], [], [], 0.3)
        self.blocked = len(self.probes) - len(ready)
        return self.blocked

    def thawed_at(self, timeout=10):
        """time.monotonic() when the last blocked write completed (the mount was thawed)."""
        out = []
        for p in self.probes:
            ready, _, _ = select.select([p.proc.stdout], [], [], timeout)
            assert ready, "a probe's write never completed"
            out.append(float(p.proc.stdout.readline()))
        return max(out)

    def close(self):
        for p in self.probes:
            p.stuck = True  # never wait on a probe here
            p.close()


def enable_and_wait(vm, public_settings, private=None, timeout=40):
    vm.write(0, public=public_settings, private=private)
    assert vm.agent.run("enable").returncode == 0
    return vm.agent.wait_terminal(0, timeout=timeout)


def test_dosnapshot_arrives_while_frozen_and_the_thaw_follows_its_answer(hvm, azurite, machine_guard):
    proof = FrozenProof(hvm.mounts)
    try:
        with HostService(azurite, hvm.container, LUN_MAP, on_dosnapshot=proof.at_dosnapshot) as host:
            configure(hvm, host)
            assert_plan_is_ours(hvm)
            with loopfs.ThawWatchdog(hvm.mounts, seconds=CAP_S + 20):
                doc = enable_and_wait(hvm, public(hvm, disks={"isVmgsBlobIncluded": True}), no_sas(hvm))
                thawed = proof.thawed_at()
            do = host.calls_of("dosnapshot")[0]
    finally:
        proof.close()
    status = doc[0]["status"]
    assert (status["status"], status["code"]) == ("success", 1), status["formattedMessage"]
    report = report_of(doc)
    tel = telemetry(report)
    assert tel["snapshotCreator"] == "backupHostService" and tel["hostStatusCodeDoSnapshot"] == "200"
    assert json.loads(report["formattedMessage"]["message"])["snapshotConsistency"] == 1
    # Every file system was frozen when the request arrived: each probe's write was blocked then.
    assert do.hook_result == len(hvm.mounts), "only %s of %d mounts were frozen" % (do.hook_result, len(hvm.mounts))
    # The thaw came after the answer, and right after it (parsing and everything else waits for the thaw).
    assert do.answered < thawed < do.answered + 0.5, (do.answered, thawed)
    assert float(tel["frozenWindowMs"]) < CAP_S * 1000
    assert len(hvm.snapshots()) == 2
    assert machine_guard.incidents == []


def test_hung_host_is_cut_at_the_freeze_cap_and_the_mounts_are_writable(hvm, azurite):
    with HostService(azurite, hvm.container, LUN_MAP, do=Fault("hang")) as host:
        configure(hvm, host)
        assert_plan_is_ours(hvm)
        started = time.monotonic()
        with loopfs.ThawWatchdog(hvm.mounts, seconds=CAP_S + 20):
            doc = enable_and_wait(hvm, public(hvm, disks={"isAnyDirectDriveDiskIncluded": True}), no_sas(hvm))
            elapsed = time.monotonic() - started
            ok, took = loopfs.probe_writable(hvm.mounts, timeout_s=1.0)
    assert ok, "mounts not writable after the job (%.2fs)" % took
    status = doc[0]["status"]
    assert status["code"] == 76, status["formattedMessage"]
    tel = telemetry(report_of(doc))
    assert tel["hostStatusCodeDoSnapshot"] == "555"
    assert float(tel["frozenWindowMs"]) <= CAP_S * 1000 + 100
    assert elapsed < CAP_S + 15


def test_sigkill_while_dosnapshot_is_in_flight_thaws_within_a_second(hvm, azurite):
    with HostService(azurite, hvm.container, LUN_MAP, do=Fault("hang")) as host:
        configure(hvm, host)
        assert_plan_is_ours(hvm)
        with loopfs.ThawWatchdog(hvm.mounts, seconds=CAP_S + 20):
            hvm.write(0, public=public(hvm, disks={"isVmgsBlobIncluded": True}), private=no_sas(hvm))
            probe = loopfs.WriteProbe(hvm.mounts)  # started ahead: its start-up is not measured
            try:
                assert hvm.agent.run("enable").returncode == 0
                deadline = time.monotonic() + 20
                while not host.calls_of("dosnapshot") and time.monotonic() < deadline:
                    time.sleep(0.005)
                assert host.calls_of("dosnapshot"), "no dosnapshot arrived"
                with open(os.path.join(hvm.agent.base, "job.json")) as f:
                    pid = json.load(f)["pid"]
                os.kill(pid, signal.SIGKILL)
                killed = time.monotonic()
                took = loopfs.wait_writable(hvm.mounts, within_s=1.0, since=killed, probe=probe)
            finally:
                probe.close()
            assert took is not None and took < 1.0, "not writable within 1 s of SIGKILL"
            doc = hvm.agent.wait_terminal(0, timeout=20)
    status = doc[0]["status"]
    assert status["code"] == 2 and "killed by signal 9" in status["formattedMessage"]["message"]
    assert "snapshots while frozen" in status["formattedMessage"]["message"]


def test_first_guest_then_host_freezes_again_for_the_host(hvm, azurite, tls):
    proof = FrozenProof(hvm.mounts)
    rule = Rule("comp=snapshot", "status", 403, body="AuthorizationFailure", times=None)
    try:
        with (
            HostService(azurite, hvm.container, LUN_MAP, on_dosnapshot=proof.at_dosnapshot) as host,
            FaultProxy(azurite.port, tls, [rule]) as proxy,
        ):
            configure(hvm, host)
            assert_plan_is_ours(hvm)
            uris = [proxy.rewrite(u) for u in hvm.disk_uris()]
            with loopfs.ThawWatchdog(hvm.mounts, seconds=2 * CAP_S + 20):
                doc = enable_and_wait(
                    hvm,
                    public(hvm, custom={"takeSnapshotFrom": "firstGuestThenHost"}),
                    hvm.private(objectStr=b64json({"blobSASUri": uris})),
                )
                proof.thawed_at()
            do = host.calls_of("dosnapshot")
    finally:
        proof.close()
    status = doc[0]["status"]
    assert status["code"] == 1, status["formattedMessage"]
    assert rule.hits == 2  # both guest snapshots were tried (and refused) inside the first freeze
    assert len(do) == 1 and do[0].hook_result == len(hvm.mounts)  # the second freeze held for the host
    tel = telemetry(report_of(doc))
    assert tel["snapshotCreator"] == "backupHostService" and tel["snapshotMethod"] == "firstGuestThenHost"

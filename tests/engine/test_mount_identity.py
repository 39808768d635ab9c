"""Issue 15, defect 4: a planned mount that disappears before the freeze must not freeze what is underneath.

Loop ext4 B is mounted inside loop ext4 A; the plan selects only B; `umount -l B` between plan and freeze
makes the path A/B lead to a directory of A. The guardian compares each opened directory with the plan
(st_dev, and the mount id from /proc/self/fdinfo) and refuses with 123; A is never frozen (a write probe
in another process checks it; a ThawWatchdog is armed on both mounts).
"""

import os
import subprocess

import pytest
from vmsnapshot import mounts
from vmsnapshot.freezeproto import CODE_OPEN_FAILED
from vmsnapshot.guardian_client import GuardianClient

from harness import loopfs

REASON = loopfs.skip_reason(("ext4",))
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


@pytest.fixture
def nested(tmp_path):
    """(A, B): B mounted on the directory B inside A."""
    a = loopfs.LoopFs(str(tmp_path), "ext4", name="A", size_mb=64)
    b = loopfs.LoopFs(str(tmp_path), "ext4", name="B", size_mb=64)
    try:
        a.create()
        b.mountpoint = os.path.join(a.mountpoint, "B")
        b.create()
        yield a, b
    finally:
        errors = b.destroy() + a.destroy()
        assert not errors, errors


def plan_only(mountpoint):
    """The safety check: the live plan with include = B selects B, a loop device, and nothing else."""
    plan = mounts.plan_freeze(mounts.read_mountinfo(), include=[mountpoint])
    assert plan.mountpoints == [mountpoint] and plan.selected[0].source.startswith("/dev/loop"), plan.to_dict()
    return plan


def lazy_umount(fs):
    subprocess.run(["umount", "-l", fs.mountpoint], check=True, timeout=30)
    fs.mounted = False


def freeze_and_probe(plan, a, b):
    """Try to freeze the plan through a guardian; returns (open_failures, FreezeOutcome, A writable)."""
    with loopfs.ThawWatchdog([a.mountpoint, b.mountpoint], 20), loopfs.WriteProbe([a.mountpoint]) as probe:
        with GuardianClient.for_plan(plan, hard_deadline_s=3, lock_path=None) as g:
            g.start()
            outcome = g.freeze()
            a_writable = probe.check(1.0) is not None  # while the freeze would hold
            g.thaw()
    return g.open_failures, outcome, a_writable


def test_umount_between_plan_and_freeze_is_refused_with_123(nested):
    a, b = nested
    plan = mounts.pin(plan_only(b.mountpoint))
    (planned,) = plan.selected
    assert planned.st_dev == os.stat(b.mountpoint).st_dev != os.stat(a.mountpoint).st_dev
    lazy_umount(b)  # the path B now leads to A's directory
    failures, outcome, a_writable = freeze_and_probe(plan, a, b)
    assert a_writable, "A, never planned, was frozen"
    assert (outcome.ok, outcome.code, outcome.frozen) == (False, CODE_OPEN_FAILED, [])
    assert failures and failures[0][0] == b.mountpoint and "no longer the planned" in failures[0][1]


def test_umount_between_mountinfo_and_pin_is_refused_too(nested):
    a, b = nested
    plan = plan_only(b.mountpoint)
    lazy_umount(b)
    mounts.pin(plan)  # opens A's directory: another mount id (and device) than mountinfo said
    assert plan.selected[0].st_dev == mounts.UNPINNED_DEV
    failures, outcome, a_writable = freeze_and_probe(plan, a, b)
    assert a_writable and outcome.code == CODE_OPEN_FAILED and not outcome.frozen
    assert "not the planned mount" in failures[0][1]

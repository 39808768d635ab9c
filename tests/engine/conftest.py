"""Fixtures for the freeze engine tests.

Safety first: the machine's `/` is a real block device. Freeze tests only ever freeze the loop
filesystems created by `loopfs` below, and every freeze test goes through `freeze_safety`, which
(1) recomputes the freeze plan from the LIVE /proc/self/mountinfo with include = our mounts and asserts
it contains exactly our mounts and nothing of the machine, (2) arms an independent watchdog process
that thaws our mounts after WATCHDOG_S even if this process is stuck, and (3) after the test thaws
our mounts and checks they take writes again.
"""

import pytest
from vmsnapshot.mounts import plan_from_mountinfo

from harness import loopfs

WATCHDOG_S = 20
ROOT_SKIP = loopfs.skip_reason()


def assert_plan_is_only_ours(mountpoints):
    """The planner, fed the live mountinfo and include = our mounts, must select exactly those."""
    plan = plan_from_mountinfo("/proc/self/mountinfo", include=mountpoints)
    selected = sorted(plan.mountpoints)
    assert selected == sorted(mountpoints), "plan %s is not exactly our mounts %s" % (selected, mountpoints)
    machine = [m for m in plan.selected if not m.source.startswith("/dev/loop")]
    assert not machine, "plan would freeze machine filesystems: %s" % machine
    return plan


@pytest.fixture(scope="session")
def loopfs_set(tmp_path_factory):
    """ext4, xfs and btrfs images on loop devices, mounted for the whole session (root only)."""
    if ROOT_SKIP:
        print("engine freeze tests skipped: %s" % ROOT_SKIP)
        pytest.skip(ROOT_SKIP)
    base = str(tmp_path_factory.mktemp("loopfs"))
    fs = loopfs.LoopFilesystems(base)
    fs.filesystems[0].size_mb = 512  # ext4 large enough to hold dirty data for slow-freeze tests
    with fs:
        yield fs


@pytest.fixture
def freeze_safety(loopfs_set):
    """Plan check + independent watchdog around one freeze test; thaws and re-checks afterwards."""
    mounts = loopfs_set.mountpoints
    assert_plan_is_only_ours(mounts)
    intruders = loopfs.foreign_openers(mounts)
    if intruders:
        reason = (
            "another test session holds our loop mounts open and thaws them (an older machine thaw "
            "guard): %s" % intruders
        )
        print(reason)
        pytest.skip(reason)
    with loopfs.ThawWatchdog(mounts, WATCHDOG_S):
        try:
            yield loopfs_set
        finally:
            for fs in loopfs_set.filesystems:
                fs.thaw()
    assert loopfs.wait_writable(mounts, within_s=5.0) is not None, "our mounts did not take writes after the test"

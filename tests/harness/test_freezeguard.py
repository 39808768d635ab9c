import os

import pytest

from harness.freezeguard import MachineThawGuard, machine_filesystems


def test_machine_filesystems_includes_root_once(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        "42 27 254:0 /run/netns /run/netns rw shared:1 - ext4 /dev/vda rw\n"
        "50 27 8:1 / /mnt/with\\040space rw - xfs /dev/sdb1 rw\n"
        "51 27 7:0 / /tmp/test-loop rw - ext4 /dev/loop0 rw\n"
    )
    assert machine_filesystems(str(info)) == ["/", "/mnt/with space"]


def test_guard_is_quiet_when_nothing_is_frozen(machine_guard):
    assert machine_guard is not None and machine_guard.is_alive()
    assert machine_guard.incidents == []
    assert "/" in machine_guard.mountpoints


@pytest.mark.skipif(os.geteuid() != 0, reason="FITHAW needs root")
def test_guard_treats_einval_as_not_frozen():
    guard = MachineThawGuard(["/"])
    guard.sweep()
    guard.stop()
    assert guard.incidents == [] and guard.errors == []

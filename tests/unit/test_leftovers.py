"""vmsnapshot.leftovers: what a phase's processes left running is found and killed, and nothing else."""

import os
import subprocess
import time

from vmsnapshot import subp
from vmsnapshot.leftovers import LeftoverReaper

from harness.procs import alive


def test_nothing_armed_nothing_scanned_nothing_killed():
    assert LeftoverReaper().kill_leftovers() == []


def test_an_escaped_grandchild_is_killed_and_an_earlier_child_is_left_alone():
    bystander = subprocess.Popen(["sleep", "60"])
    reaper = LeftoverReaper()
    try:
        reaper.arm()
        assert bystander.pid in reaper.before
        # a script's child that leaves the script's group and session: only the subreaper still finds it
        out, _ = subp.run(["sh", "-c", "setsid sleep 300 >/dev/null 2>&1 & echo $!"])
        escaped = int(out)
        time.sleep(0.1)
        assert alive(escaped)
        assert reaper.subreaper, "prctl(PR_SET_CHILD_SUBREAPER) refused"
        killed = reaper.kill_leftovers()
        assert escaped in killed and bystander.pid not in killed
        assert not alive(escaped) and bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_arming_twice_keeps_the_first_snapshot():
    reaper = LeftoverReaper()
    reaper.arm()
    first = set(reaper.before)
    later = subprocess.Popen(["sleep", "60"])
    try:
        reaper.arm()
        assert reaper.before == first and later.pid not in reaper.before
        assert later.pid in reaper.kill_leftovers()  # started after the first arm: a leftover
        assert later.wait(5) is not None
    finally:
        if later.poll() is None:
            later.kill()
            later.wait()
    assert os.getpid() == reaper.me

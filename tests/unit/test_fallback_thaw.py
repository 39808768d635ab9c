"""vmsnapshot.fallback_thaw: the thaws that do not go through the guardian. Nothing here is frozen:
FITHAW of a file system that is not frozen answers EINVAL, which is what these tests look at."""

import json
import os
import subprocess
import sys

import pytest
from vmsnapshot import fallback_thaw
from vmsnapshot.freezeproto import CODE_INCONSISTENT

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="FITHAW needs CAP_SYS_ADMIN")


class Planned(object):
    """What targets_line reads of a GuardianClient: its mount points and their pinned identities."""

    def __init__(self, mountpoints, expect):
        self.mountpoints = mountpoints
        self.expect = expect


def test_targets_line_round_trip():
    line = fallback_thaw.targets_line(Planned(["/data", "/"], {"/": {"dev": "8:1", "mnt_id": 1}}))
    assert line.startswith(fallback_thaw.TARGETS_PREFIX) and "\n" not in line and line.isascii()
    assert fallback_thaw.parse_targets_line(line) == {"/data": {}, "/": {"dev": "8:1", "mnt_id": 1}}
    assert list(fallback_thaw.parse_targets_line(line)) == ["/data", "/"]  # freeze order kept


@pytest.mark.parametrize(
    "line",
    [
        "freeze",
        "snapshots while frozen",
        fallback_thaw.TARGETS_PREFIX + "{broken",
        fallback_thaw.TARGETS_PREFIX + json.dumps(["/"]),
    ],
)
def test_other_phase_lines_are_not_targets(line):
    assert fallback_thaw.parse_targets_line(line) is None


def test_thaw_targets_never_thaws_a_mount_point_that_changed(tmp_path):
    moved = {"dev": os.stat(str(tmp_path)).st_dev + 1, "mnt_id": -1}  # the plan saw another file system there
    results = dict(fallback_thaw.thaw_targets({str(tmp_path): moved, "/nonexistent/mount": {}}))
    assert results["/nonexistent/mount"].startswith("cannot open:")
    assert "no longer the planned file system" in results[str(tmp_path)]


@needs_root
def test_thaw_targets_of_a_mount_that_is_not_frozen(tmp_path):
    assert fallback_thaw.thaw_targets({str(tmp_path): {}}) == [(str(tmp_path), "not frozen")]


def test_fallback_thaw_without_descriptors_reports_inconsistent():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    t = fallback_thaw.FallbackThaw(["/a", "/b"], {}, proc)
    t.start()
    outcome = t.outcome(wait_s=5)
    assert (outcome.ok, outcome.code, outcome.reason, outcome.thawed) == (False, CODE_INCONSISTENT, "guardian-lost", [])
    assert outcome.thaw_failures == [
        ("/b", "no descriptor for a fallback thaw"),
        ("/a", "no descriptor for a fallback thaw"),
    ]
    assert "the freeze guardian died" in outcome.message


@needs_root
def test_fallback_thaw_keeps_trying_until_the_guardian_has_exited(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        t = fallback_thaw.FallbackThaw([str(tmp_path)], {str(tmp_path): fd}, proc, reason="no-reply")
        t.start()
        assert not t.done.wait(0.2), "stopped retrying while the guardian was still alive"
        proc.wait()
        outcome = t.outcome(wait_s=5)
    finally:
        os.close(fd)
    assert t.done.is_set() and outcome.thawed == [] and outcome.reason == "no-reply"
    assert "did not answer" in outcome.message

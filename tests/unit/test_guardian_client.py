"""vmsnapshot.guardian_client: the worker's client of the guardian process, with a real guardian.

Nothing is frozen here: the only mount points given do not exist (the freeze cycle on real file systems is
in tests/engine/test_freezer.py)."""

import os
import signal
import time

import pytest
from vmsnapshot import guardian_client
from vmsnapshot.guardian_client import GuardianClient

from harness.procs import wait_gone

MISSING = "/nonexistent/unit-test-mount"


def test_the_guardian_runs_in_its_own_session_and_exits_on_close():
    g = GuardianClient([MISSING], hard_deadline_s=5, lock_path=None)
    g.start()
    try:
        assert g.pid == g.proc.pid and os.getsid(g.pid) == g.pid != os.getsid(0)
        assert g.open_failures == [(MISSING, g.open_failures[0][1])] and "cannot open" in g.open_failures[0][1]
    finally:
        g.close()
    assert g.proc.returncode is not None or wait_gone(g.pid, 5)
    g.close()  # idempotent


def test_waves_and_options_reach_the_guardian_command_line():
    g = GuardianClient([], waves=[["/a", "/b"], ["/"]], hard_deadline_s=7, per_mount_timeout_s=2, lock_path=None)
    assert g.mountpoints == ["/a", "/b", "/"]
    g.start()
    try:
        with open("/proc/%d/cmdline" % g.pid, "rb") as f:
            args = f.read().decode().split("\0")
    finally:
        g.close()
    assert args[args.index("--") + 1 : -1] == ["::", "/a", "/b", "::", "/"]
    assert args[args.index("--deadline") + 1] == "7.0" and args[args.index("--lock-path") + 1] == ""


def test_calls_out_of_order_are_refused():
    g = GuardianClient([MISSING], lock_path=None)
    with pytest.raises(RuntimeError):
        g.freeze()
    with g:
        g.start()
        with pytest.raises(RuntimeError):
            g.start()
        assert g.freeze().code == 123
        with pytest.raises(RuntimeError):
            g.freeze()


def test_a_guardian_that_dies_before_the_freeze_is_reported_not_waited_for():
    with GuardianClient([MISSING], hard_deadline_s=5, lock_path=None) as g:
        g.start()
        os.kill(g.pid, signal.SIGKILL)
        t0 = time.monotonic()
        r = g.freeze()
        assert time.monotonic() - t0 < 3 * guardian_client.LIVENESS_POLL_S + 2
        assert (r.ok, r.code) == (False, 121) and "guardian" in r.message
        t = g.thaw()
        assert (t.ok, t.code, t.reason) == (False, 2, "guardian-lost")


def test_a_guardian_that_cannot_start_is_a_runtime_error(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o700)
    g = GuardianClient([MISSING], lock_path=None, python=str(fake))
    with pytest.raises(RuntimeError) as e:
        g.start()
    g.close()
    assert "freeze guardian did not start" in str(e.value)

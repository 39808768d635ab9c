"""The freeze guardian on real loop-mounted ext4, xfs and btrfs (root only).

Every freezing test uses the `freeze_safety` fixture: live-plan check (only our mounts), independent
watchdog, thaw + write check afterwards. Writers and write probes always run in separate processes.
"""

import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
from vmsnapshot.freezeproto import FITHAW
from vmsnapshot.guardian_client import GuardianClient
from vmsnapshot.syncfs import syncfs_all

from harness.freezeguard import MachineThawGuard
from harness.loopfs import WriteProbe, probe_writable, wait_writable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXTENSION = os.path.join(ROOT, "extension")
DRIVER = os.path.join(HERE, "freeze_driver.py")


def fsfreeze(flag, mountpoint):
    subprocess.run(["fsfreeze", flag, mountpoint], check=True, timeout=30)


def make_dirty(mountpoint, mib):
    """Leave `mib` MiB of dirty page cache on the filesystem so its next FIFREEZE has to flush."""
    path = os.path.join(mountpoint, "dirty.bin")
    block = b"d" * (1024 * 1024)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(block)
    return path


def is_frozen(mountpoint, probe_s=0.25):
    ok, _ = probe_writable([mountpoint], timeout_s=probe_s)
    return not ok


def process_gone(pid, within_s=2.0):
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                return True
        except (IOError, OSError):
            return True
        time.sleep(0.02)
    return False


def test_open_failure_is_code_123_and_nothing_frozen():
    with GuardianClient(["/nonexistent/engine-test-mount"], hard_deadline_s=5, lock_path=None) as g:
        g.start()
        assert g.open_failures and g.open_failures[0][0] == "/nonexistent/engine-test-mount"
        r = g.freeze()
        assert (r.ok, r.code, r.frozen) == (False, 123, [])
        assert "cannot open" in r.failures[0][1]
        t = g.thaw()
        assert t.ok and t.reason == "not-frozen"


def test_freeze_thaw_with_concurrent_writers(freeze_safety, capsys):
    mounts = freeze_safety.mountpoints
    writers = [
        subprocess.Popen(
            [sys.executable, "-B", "-m", "harness.fswriter", os.path.join(mp, "writer.dat"), "1.6"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        for mp in mounts
    ]
    time.sleep(0.4)
    t_sync = time.monotonic()
    assert syncfs_all(mounts, timeout_s=10)
    sync_ms = (time.monotonic() - t_sync) * 1000
    g = GuardianClient(mounts, hard_deadline_s=10, lock_path=None)
    try:
        g.start()
        r = g.freeze()
        time.sleep(0.4)
        t = g.thaw()
    finally:
        g.close()
    results = [json.loads(w.communicate(timeout=30)[0]) for w in writers]
    assert r.ok and r.code is None and r.frozen == mounts and not r.failures
    assert t.ok and t.code is None and t.reason == "requested" and t.thawed == list(reversed(mounts))
    assert 400 <= t.frozen_window_ms < 2000
    thaw_began = t.thawed_at - t.thaw_ms / 1000.0
    for mp, res in zip(mounts, results):
        during = [s for s in res["stamps"] if r.frozen_at < s < thaw_began]
        assert not during, "%s: %d writes completed while frozen" % (mp, len(during))
        assert res["max_gap_ms"] >= 380, res["max_gap_ms"]
        assert res["max_gap_ms"] <= t.frozen_window_ms + 250
        after = [s for s in res["stamps"] if s > t.thawed_at]
        assert after and after[0] - t.thawed_at < 0.25, "%s: writer did not resume promptly" % mp
    with capsys.disabled():
        print(
            "\nfreeze figures: syncfs %.1f ms, freeze %.2f ms, thaw %.2f ms, frozen window %.1f ms, "
            "writer max stall %s ms (hold 400 ms)"
            % (
                sync_ms,
                r.freeze_ms,
                t.thaw_ms,
                t.frozen_window_ms,
                ", ".join("%s %.1f" % (os.path.basename(m), x["max_gap_ms"]) for m, x in zip(mounts, results)),
            )
        )


def test_unsupported_filesystem_is_skipped_not_failed(freeze_safety, tmp_path):
    tmpfs = str(tmp_path / "memfs")
    os.mkdir(tmpfs)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "engine_test_tmpfs", tmpfs], check=True)
    try:
        ext4 = freeze_safety.filesystems[0].mountpoint
        with GuardianClient([tmpfs, ext4], hard_deadline_s=10, lock_path=None) as g:
            g.start()
            r = g.freeze()
            assert r.ok and r.frozen == [ext4]
            assert r.skipped[0][0] == tmpfs and "does not support freezing" in r.skipped[0][1]
            assert g.thaw().ok
    finally:
        subprocess.run(["umount", tmpfs], check=True)


def test_ebusy_already_frozen_by_someone_else_is_121_and_left_alone(freeze_safety):
    ext4, xfs = freeze_safety.filesystems[0].mountpoint, freeze_safety.filesystems[1].mountpoint
    fsfreeze("-f", ext4)
    try:
        with GuardianClient([xfs, ext4], hard_deadline_s=10, lock_path=None) as g:
            g.start()
            r = g.freeze()
            assert (r.ok, r.code, r.frozen) == (False, 121, [])
            assert r.failures[0][0] == ext4 and "EBUSY" in r.failures[0][1]
            assert wait_writable([xfs], within_s=1.0) is not None  # what we froze was thawed
        assert is_frozen(ext4), "the guardian thawed a freeze it did not make"
    finally:
        fsfreeze("-u", ext4)
    assert wait_writable([ext4], within_s=1.0) is not None


def test_hard_deadline_thaws_and_thaw_reports_inconsistent(freeze_safety):
    mounts = freeze_safety.mountpoints
    with GuardianClient(mounts, hard_deadline_s=0.6, lock_path=None) as g:
        g.start()
        r = g.freeze()
        assert r.ok
        took = wait_writable(mounts, within_s=3.0)
        assert took is not None
        writable_at = time.monotonic()
        # counted from BEFORE the first FIFREEZE: writable again at most shortly after start + 0.6 s
        assert writable_at - r.freeze_started_at < 0.6 + 0.5
        t = g.thaw()
        assert (t.ok, t.code, t.reason) == (False, 2, "deadline")
        assert 600 <= t.frozen_window_ms < 900
        assert t.thawed == list(reversed(mounts))


def test_freeze_that_does_not_return_in_time_is_122_and_thawed_when_it_returns(freeze_safety):
    ext4 = freeze_safety.filesystems[0].mountpoint
    dirty = make_dirty(ext4, 300)
    try:
        with GuardianClient([ext4], hard_deadline_s=10, per_mount_timeout_s=0.005, lock_path=None) as g:
            g.start()
            t0 = time.monotonic()
            r = g.freeze()
            answered = time.monotonic() - t0
            assert (r.ok, r.code, r.frozen) == (False, 122, [])
            assert "did not return within" in r.failures[0][1]
            assert answered < 1.0, "the worker waited for the blocked FIFREEZE"
            deadline = time.monotonic() + 10
            while not g.late_thaws and time.monotonic() < deadline:
                time.sleep(0.01)
            assert g.late_thaws == [(ext4, "froze late; thawed")]
            assert wait_writable([ext4], within_s=1.0) is not None
            assert g.thaw().reason == "not-frozen"
    finally:
        os.unlink(dirty)


def _hold_lock(path):
    """Another process holding the lock until a line arrives on its stdin."""
    code = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout.readline().strip() == b"locked"
    return p


def _release_lock(holder):
    if holder.poll() is None:
        holder.stdin.write(b"\n")
        holder.stdin.flush()
    holder.wait(timeout=10)


def test_lock_held_by_another_process_bounded_wait_then_freeze(freeze_safety, tmp_path):
    lock = str(tmp_path / "lockdir" / "SafeFreezeLockFile")
    os.mkdir(os.path.dirname(lock))
    holder = _hold_lock(lock)
    try:
        with GuardianClient(freeze_safety.mountpoints, hard_deadline_s=10, lock_path=lock, lock_wait_s=0.3) as g:
            g.start()
            t0 = time.monotonic()
            r = g.freeze()
            assert time.monotonic() - t0 < 1.5
            assert r.ok and r.lock_held is False and 300 <= r.lock_wait_ms < 1000
            assert g.thaw().ok
    finally:
        _release_lock(holder)


def test_lock_released_during_the_wait_is_taken(freeze_safety, tmp_path):
    lock = str(tmp_path / "SafeFreezeLockFile")
    holder = _hold_lock(lock)
    try:
        with GuardianClient(freeze_safety.mountpoints, hard_deadline_s=10, lock_path=lock, lock_wait_s=5) as g:
            g.start()
            outcome = []
            t = threading.Thread(target=lambda: outcome.append(g.freeze()))
            t.start()
            time.sleep(0.3)
            assert not outcome, "froze while another process held the lock"
            _release_lock(holder)
            t.join(10)
            r = outcome[0]
            assert r.ok and r.lock_held is True and r.lock_wait_ms >= 250
            # held while frozen: another locker cannot get it
            fd = os.open(lock, os.O_RDWR)
            try:
                with pytest.raises(OSError) as e:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                assert e.value.errno in (errno.EACCES, errno.EAGAIN)
            finally:
                os.close(fd)
            assert g.thaw().ok
        assert os.path.exists(lock), "the shared lock file must not be deleted"
    finally:
        _release_lock(holder)


@pytest.mark.parametrize("step", ["started", "freezing", "frozen", "thawing"])
def test_kill_matrix_worker_sigkilled_filesystems_writable_within_1s(freeze_safety, step):
    mounts = freeze_safety.mountpoints
    dirty = make_dirty(mounts[0], 100) if step == "freezing" else None
    driver = None
    probe = WriteProbe(mounts)  # started ahead: its start-up must not count in the 1 s
    try:
        driver = subprocess.Popen([sys.executable, "-B", DRIVER, step, "20"] + mounts, cwd="/", stdout=subprocess.PIPE)
        report = json.loads(driver.stdout.readline())
        guardian = report["guardian_pid"]
        if step in ("frozen", "thawing"):
            report = json.loads(driver.stdout.readline())
        if step == "frozen":
            assert report["outcome"]["ok"], report
            assert is_frozen(mounts[1]), report
        if step in ("started", "frozen"):
            os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=10)
        killed_at = time.monotonic()  # for self-kills, a little after the death: errs on the strict side
        took = wait_writable(mounts, within_s=1.0, since=killed_at, probe=probe)
        assert took is not None, "not writable within 1 s of the worker's death (%s)" % step
        assert process_gone(guardian, within_s=3.0), "guardian outlived the worker"
    finally:
        probe.close()
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.wait()
        if dirty:
            os.unlink(dirty)


@pytest.mark.parametrize(
    "sig, reason",
    [
        (signal.SIGKILL, "guardian-lost"),  # the worker thaws through its own descriptors
        (signal.SIGTERM, "signal"),  # the guardian thaws, then exits
    ],
)
def test_guardian_killed_or_signalled_while_frozen(freeze_safety, sig, reason):
    mounts = freeze_safety.mountpoints
    with GuardianClient(mounts, hard_deadline_s=20, lock_path=None) as g:
        g.start()
        assert g.freeze().ok
        with WriteProbe(mounts) as probe:
            signalled_at = time.monotonic()
            os.kill(g.pid, sig)
            assert wait_writable(mounts, within_s=1.0, since=signalled_at, probe=probe) is not None
        t = g.thaw()
        assert (t.ok, t.code, t.reason) == (False, 2, reason)
        assert sorted(t.thawed) == sorted(mounts)


def test_close_without_thaw_still_thaws(freeze_safety):
    mounts = freeze_safety.mountpoints
    g = GuardianClient(mounts, hard_deadline_s=20, lock_path=None)
    g.start()
    assert g.freeze().ok
    assert is_frozen(mounts[2])
    g.close()
    g.close()  # idempotent
    assert probe_writable(mounts, timeout_s=1.0)[0]


def test_second_freeze_is_refused(freeze_safety):
    with GuardianClient(freeze_safety.mountpoints, hard_deadline_s=20, lock_path=None) as g:
        g.start()
        assert g.freeze().ok
        with pytest.raises(RuntimeError):
            g.freeze()
        assert g.thaw().ok


def test_machine_thaw_guard_detects_and_thaws_our_loop_mount(freeze_safety):
    ext4 = freeze_safety.filesystems[0].mountpoint
    guard = MachineThawGuard([ext4])
    guard.start()
    try:
        fsfreeze("-f", ext4)
        frozen_at = time.monotonic()
        deadline = frozen_at + 2.0
        while not guard.incidents and time.monotonic() < deadline:
            time.sleep(0.005)
        assert guard.incidents, "the guard never noticed the freeze"
        assert guard.incidents[0][0] - frozen_at < 0.3
        assert guard.incidents[0][1] == ext4
    finally:
        guard.stop()
    assert wait_writable([ext4], within_s=1.0) is not None
    with open(os.devnull):
        fd = os.open(ext4, os.O_RDONLY)
        try:  # EINVAL: not frozen any more
            with pytest.raises(OSError) as e:
                fcntl.ioctl(fd, FITHAW, 0)
            assert e.value.errno == errno.EINVAL
        finally:
            os.close(fd)


def test_extension_path_is_the_one_under_test():
    import vmsnapshot

    assert os.path.dirname(os.path.dirname(vmsnapshot.__file__)) == EXTENSION


def _start_blocker(mountpoint):
    """A writer stuck inside write(2) with freeze protection held: FIFREEZE of its filesystem blocks."""
    b = subprocess.Popen(
        [sys.executable, "-B", "-m", "harness.writeblocker", os.path.join(mountpoint, "blocker")],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    line = b.stdout.readline().decode().strip()
    if line != "blocked":
        b.kill()
        b.wait()
        pytest.skip("cannot make FIFREEZE block here: %s" % line)
    return b


def _release(blocker):
    if blocker.poll() is None:
        blocker.stdin.write(b"go\n")
        blocker.stdin.flush()
        assert blocker.stdout.readline().strip() == b"released"
    blocker.wait(timeout=10)


def test_blocked_freeze_fapolicyd_case_122_thaws_others_and_late_one(freeze_safety):
    ext4, xfs, btrfs = freeze_safety.mountpoints
    blocker = _start_blocker(ext4)
    try:
        with GuardianClient([xfs, ext4, btrfs], hard_deadline_s=10, per_mount_timeout_s=0.3, lock_path=None) as g:
            g.start()
            t0 = time.monotonic()
            r = g.freeze()
            assert time.monotonic() - t0 < 1.0, "the worker hung on the blocked FIFREEZE"
            assert (r.ok, r.code, r.frozen) == (False, 122, [])
            assert r.failures[0][0] == ext4 and "did not return within 0.3 s" in r.failures[0][1]
            assert wait_writable([xfs, btrfs], within_s=1.0) is not None  # frozen before: thawed
            assert is_frozen(ext4) and g.late_thaws == []  # FIFREEZE still pending
            _release(blocker)
            deadline = time.monotonic() + 5
            while not g.late_thaws and time.monotonic() < deadline:
                time.sleep(0.005)
            assert g.late_thaws == [(ext4, "froze late; thawed")]
            assert wait_writable([ext4], within_s=1.0) is not None
    finally:
        _release(blocker)


def test_worker_killed_while_freeze_blocked_guardian_waits_to_thaw_it(freeze_safety):
    ext4, xfs, btrfs = freeze_safety.mountpoints
    blocker = _start_blocker(ext4)
    driver = None
    try:
        driver = subprocess.Popen(
            [sys.executable, "-B", DRIVER, "frozen", "20", xfs, ext4, btrfs], cwd="/", stdout=subprocess.PIPE
        )
        guardian = json.loads(driver.stdout.readline())["guardian_pid"]
        time.sleep(0.5)  # xfs frozen, FIFREEZE of ext4 blocked, the driver waiting in freeze()
        assert is_frozen(xfs)
        with WriteProbe([xfs, btrfs]) as probe:
            killed_at = time.monotonic()
            os.kill(driver.pid, signal.SIGKILL)
            driver.wait()
            assert wait_writable([xfs, btrfs], within_s=1.0, since=killed_at, probe=probe) is not None
        assert not process_gone(guardian, within_s=0.3), "guardian exited with a FIFREEZE pending"
        _release(blocker)
        assert wait_writable([ext4], within_s=1.0) is not None
        assert process_gone(guardian, within_s=3.0)
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.wait()
        _release(blocker)


def test_guardian_sigkilled_while_its_freeze_is_blocked_worker_thaws_everything(freeze_safety):
    """The nastiest case: the guardian is SIGKILLed while one FIFREEZE is stuck. Its process cannot finish
    dying (no end-of-file on the socket) until that ioctl returns, and then that filesystem is frozen
    with nobody left to thaw it. The worker notices the death (the main thread is a zombie), thaws what
    was frozen at once and thaws the late one the moment its FIFREEZE completes."""
    ext4, xfs, btrfs = freeze_safety.mountpoints
    blocker = _start_blocker(ext4)
    try:
        with GuardianClient([xfs, ext4, btrfs], hard_deadline_s=20, per_mount_timeout_s=15, lock_path=None) as g:
            g.start()
            outcome = []
            worker = threading.Thread(target=lambda: outcome.append(g.freeze()))
            worker.start()
            time.sleep(0.5)
            assert is_frozen(xfs)
            with WriteProbe([xfs, btrfs]) as probe:
                killed_at = time.monotonic()
                os.kill(g.pid, signal.SIGKILL)
                assert wait_writable([xfs, btrfs], within_s=1.0, since=killed_at, probe=probe) is not None
            worker.join(5)
            assert outcome and (outcome[0].ok, outcome[0].code) == (False, 121)
            assert "died during the freeze" in outcome[0].message
            with WriteProbe([ext4]) as probe:
                released_at = time.monotonic()
                _release(blocker)
                assert wait_writable([ext4], within_s=1.0, since=released_at, probe=probe) is not None
            t = g.thaw()
            assert (t.ok, t.code, t.reason) == (False, 2, "guardian-lost")
            assert sorted(t.thawed) == sorted([xfs, ext4])
    finally:
        _release(blocker)


def test_hung_guardian_worker_thaws_itself_when_the_thaw_is_not_confirmed(freeze_safety):
    mounts = freeze_safety.mountpoints
    with GuardianClient(mounts, hard_deadline_s=30, per_mount_timeout_s=0.2, lock_path=None) as g:
        g.start()
        assert g.freeze().ok
        os.kill(g.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            t = g.thaw()
            assert time.monotonic() - t0 < 10
            assert (t.ok, t.code, t.reason) == (False, 2, "no-reply")
            assert sorted(t.thawed) == sorted(mounts)
            assert wait_writable(mounts, within_s=1.0) is not None
        finally:
            os.kill(g.pid, signal.SIGCONT)


def test_engine_installed_on_a_filesystem_it_freezes(freeze_safety, tmp_path):
    """As on a VM, where the extension lives on `/`, which it freezes last: the worker and the guardian
    run from a copy of the runtime on our ext4, with their temp dir there, and freeze that filesystem.
    Any write they made to it between freeze and thaw (a .pyc, a log, a temp file) would hang the cycle."""
    ext4 = freeze_safety.filesystems[0].mountpoint
    install = os.path.join(ext4, "opt-extension")
    shutil.rmtree(install, ignore_errors=True)
    shutil.copytree(
        os.path.join(EXTENSION, "vmsnapshot"),
        os.path.join(install, "vmsnapshot"),
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    os.mkdir(os.path.join(install, "tmp"))
    code = (
        "import json, logging, sys\n"
        "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)\n"
        "from vmsnapshot.guardian_client import GuardianClient\n"
        "from vmsnapshot.syncfs import syncfs_all\n"
        "mounts = sys.argv[1:]\n"
        "syncfs_all(mounts)\n"
        "with GuardianClient(mounts, hard_deadline_s=5, lock_path=None) as g:\n"
        "    g.start()\n"
        "    r = g.freeze()\n"
        "    t = g.thaw()\n"
        "print(json.dumps([r.to_dict(), t.to_dict()]))\n"
    )
    env = dict(os.environ, PYTHONPATH=install, TMPDIR=os.path.join(install, "tmp"), HOME=install)
    mounts = [m for m in freeze_safety.mountpoints if m != ext4] + [ext4]  # ours last, like `/`
    p = subprocess.run(
        [sys.executable, "-B", "-c", code] + mounts,
        cwd=install,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr.decode()
    frozen, thawed = json.loads(p.stdout.decode())
    assert frozen["ok"] and frozen["frozen"] == mounts
    assert thawed["ok"] and thawed["reason"] == "requested" and thawed["frozen_window_ms"] < 3000
    assert not any(name.endswith(".pyc") for _, _, files in os.walk(install) for name in files)
    shutil.rmtree(install)

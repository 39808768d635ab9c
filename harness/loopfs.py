"""Loop-mounted test filesystems and the independent thaw watchdog (root only).

The machine's own `/` is a real ext4 block device: freezing it hangs the machine. Freeze tests
therefore only ever freeze filesystems created here, and every freeze is backed by a ThawWatchdog:
a `sleep N; fsfreeze -u MNT...` process in its own session that thaws even if the test process
itself is stuck on a frozen filesystem. Teardown always thaws, unmounts and detaches, even after a
failure.
"""

import os
import select
import shlex
import signal
import subprocess
import sys
import time

from harness.freezeguard import FITHAW  # noqa: F401  (re-exported for tests)

MKFS = {
    "ext4": ["mkfs.ext4", "-q", "-F"],
    "ext3": ["mkfs.ext3", "-q", "-F"],
    "xfs": ["mkfs.xfs", "-q", "-f"],
    "btrfs": ["mkfs.btrfs", "-q", "-f"],
}
# Sparse images; xfs refuses filesystems smaller than 300 MiB.
DEFAULT_SIZE_MB = {"ext4": 64, "ext3": 64, "xfs": 320, "btrfs": 128}


def _run(cmd, timeout=60):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(
            "%s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stdout.decode("utf-8", "replace").strip())
        )
    return p.stdout.decode("utf-8", "replace").strip()


def missing_tools(fstypes=("ext4", "xfs", "btrfs")):
    need = ["losetup", "mount", "umount", "fsfreeze"] + [MKFS[t][0] for t in fstypes]
    return [
        t
        for t in need
        if not any(
            os.access(os.path.join(d, t), os.X_OK)
            for d in os.environ.get("PATH", "/usr/sbin:/usr/bin").split(":") + ["/sbin", "/usr/sbin"]
        )
    ]


def skip_reason(fstypes=("ext4", "xfs", "btrfs")):
    """Why real loop-mount tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (loop devices, mount, FIFREEZE)"
    missing = missing_tools(fstypes)
    if missing:
        return "missing tools: %s" % ", ".join(missing)
    supported = open("/proc/filesystems").read().split()
    absent = [t for t in fstypes if t not in supported]
    if absent:
        return "kernel lacks filesystems: %s" % ", ".join(absent)
    return None


class LoopFs(object):
    """One filesystem image, attached to a loop device and mounted under `base`."""

    def __init__(self, base, fstype, name=None, size_mb=None):
        self.fstype = fstype
        self.name = name or fstype
        self.image = os.path.join(base, "img", self.name + ".img")
        self.mountpoint = os.path.join(base, "mnt", self.name)
        self.size_mb = size_mb or DEFAULT_SIZE_MB.get(fstype, 128)
        self.device = None
        self.mounted = False

    def create(self):
        os.makedirs(os.path.dirname(self.image), exist_ok=True)
        os.makedirs(self.mountpoint, exist_ok=True)
        with open(self.image, "wb") as f:
            f.truncate(self.size_mb * 1024 * 1024)
        _run(MKFS[self.fstype] + [self.image])
        self.device = _run(["losetup", "-f", "--show", self.image])
        _run(["mount", self.device, self.mountpoint])
        self.mounted = True
        return self

    def thaw(self):
        subprocess.run(
            ["fsfreeze", "-u", self.mountpoint], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30
        )

    def destroy(self):
        errors = []
        if self.mounted:
            self.thaw()
            for _attempt in range(20):
                r = subprocess.run(
                    ["umount", self.mountpoint], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30
                )
                if r.returncode == 0:
                    break
                time.sleep(0.1)
                self.thaw()
            else:
                r = subprocess.run(
                    ["umount", "-l", self.mountpoint], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30
                )
                if r.returncode != 0:
                    errors.append("umount %s: %s" % (self.mountpoint, r.stdout.decode().strip()))
            self.mounted = False
        if self.device:
            r = subprocess.run(
                ["losetup", "-d", self.device], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30
            )
            if r.returncode != 0:
                errors.append("losetup -d %s: %s" % (self.device, r.stdout.decode().strip()))
            self.device = None
        try:
            os.unlink(self.image)
        except OSError:
            pass
        return errors


class LoopFilesystems(object):
    """Context manager: create loop filesystems, always thaw + unmount + detach on exit."""

    def __init__(self, base, fstypes=("ext4", "xfs", "btrfs")):
        self.base = base
        self.filesystems = [LoopFs(base, t) for t in fstypes]

    @property
    def mountpoints(self):
        return [fs.mountpoint for fs in self.filesystems]

    def __enter__(self):
        try:
            for fs in self.filesystems:
                fs.create()
        except BaseException:
            self.close()
            raise
        return self

    def close(self):
        errors = []
        for fs in reversed(self.filesystems):
            errors.extend(fs.destroy())
        return errors

    def __exit__(self, *exc):
        errors = self.close()
        if errors and exc[0] is None:
            raise RuntimeError("loop filesystem teardown: %s" % "; ".join(errors))
        return False


class ThawWatchdog(object):
    """Independent process, in its own session, that thaws `mountpoints` after `seconds`.

    Started before a test freezes anything; disarmed (killed) after the test thawed. It survives the
    test process being killed or stuck in uninterruptible sleep on a frozen filesystem.
    """

    def __init__(self, mountpoints, seconds=20):
        self.mountpoints = list(mountpoints)
        self.seconds = seconds
        self.proc = None

    def arm(self):
        script = 'sleep %d; for m in %s; do fsfreeze -u "$m" 2>/dev/null; done' % (
            self.seconds,
            " ".join(shlex.quote(m) for m in self.mountpoints),
        )
        self.proc = subprocess.Popen(
            ["bash", "-c", script],
            start_new_session=True,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def disarm(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def __enter__(self):
        return self.arm()

    def __exit__(self, *exc):
        self.disarm()
        return False


_PROBE = r"""
import os, sys, time
mountpoints = sys.argv[1:]
sys.stdout.write("ready\n")
sys.stdout.flush()
for _ in sys.stdin:
    for mp in mountpoints:
        path = os.path.join(mp, ".probe-%d" % os.getpid())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, b"probe")
        os.fsync(fd)
        os.close(fd)
        os.unlink(path)
    sys.stdout.write("%r\n" % time.monotonic())
    sys.stdout.flush()
"""


class WriteProbe(object):
    """A separate, already started process that writes + fsyncs a file on each mount point on demand.

    Started ahead of time so that measurements ("writable within 1 s of the kill") do not include
    interpreter start-up, which on a loaded 2-core machine can itself take hundreds of milliseconds.
    A probe stuck on a frozen filesystem stays stuck until the thaw, then completes.
    """

    def __init__(self, mountpoints):
        self.proc = subprocess.Popen(
            [sys.executable, "-B", "-c", _PROBE] + list(mountpoints),
            cwd="/",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        if self.proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("write probe did not start")
        self.stuck = False

    def check(self, timeout_s):
        """Write now; the time.monotonic() at which every write completed, or None after timeout_s."""
        if self.stuck:
            raise RuntimeError("probe still stuck from an earlier check")
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, timeout_s))
        if not ready:
            self.stuck = True
            return None
        line = self.proc.stdout.readline().strip()
        return float(line) if line else None

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()  # delivered once a thaw lets it run
        self.proc.stdin.close()
        self.proc.stdout.close()
        if not self.stuck:
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def probe_writable(mountpoints, timeout_s=1.0):
    """One write + fsync on each mount point from a separate process. Returns (ok, seconds taken)."""
    with WriteProbe(mountpoints) as probe:
        t0 = time.monotonic()
        done = probe.check(timeout_s)
    return done is not None, (done if done is not None else time.monotonic()) - t0


def wait_writable(mountpoints, within_s=1.0, since=None, probe=None):
    """Seconds from `since` (default: now) until every mount point took a write, or None if not within_s.

    Pass a probe started before the event being measured to keep interpreter start-up out of it.
    """
    own = probe is None
    if own:
        probe = WriteProbe(mountpoints)
    try:
        t0 = time.monotonic() if since is None else since
        done = probe.check(t0 + within_s - time.monotonic())
        return None if done is None else done - t0
    finally:
        if own:
            probe.close()


def foreign_openers(mountpoints):
    """Other pytest sessions holding one of our mount points open: [(pid, command line)].

    On a machine shared by several test sessions, a session-wide machine thaw guard from an older
    checkout (one that also guards loop mounts) opens every freezable mount present when it starts,
    ours included, and thaws it every 100 ms: freeze tests cannot give meaningful results then.
    """
    ours = set(os.path.realpath(m) for m in mountpoints)
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
            if "pytest" not in cmd:
                continue
            fds = os.listdir("/proc/%s/fd" % name)
        except (IOError, OSError):
            continue
        for fd in fds:
            try:
                target = os.readlink("/proc/%s/fd/%s" % (name, fd))
            except OSError:
                continue
            if target in ours:
                found.append((int(name), cmd[:160]))
                break
    return found

"""A session-long guard against the one unrecoverable mistake: freezing a filesystem of this machine.

Every 100 ms it issues FITHAW on each freezable filesystem that existed before the tests started
(the machine's own `/` among them). FITHAW on a filesystem that is not frozen fails with EINVAL,
which is the normal, harmless case. A FITHAW that *succeeds* means something froze a machine
filesystem: the guard has just thawed it, records it, and the run must fail loudly.
"""

import errno
import fcntl
import os
import threading
import time

FITHAW = 0xC0045878
FREEZABLE_TYPES = {"ext2", "ext3", "ext4", "xfs", "btrfs", "jfs", "reiserfs", "f2fs"}


def _decode(path):
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def machine_filesystems(mountinfo="/proc/self/mountinfo"):
    """Mount points of freezable filesystems, one per superblock (major:minor).

    Loop-device mounts are left out: on these machines they are always test filesystems (ours, or
    those of another test session running at the same time, which may legitimately freeze them).
    """
    seen, points = set(), []
    with open(mountinfo) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(fields) < 5 or not rfields or rfields[0] not in FREEZABLE_TYPES:
                continue
            if len(rfields) > 1 and rfields[1].startswith("/dev/loop"):
                continue
            if fields[2] in seen:
                continue
            seen.add(fields[2])
            points.append(_decode(fields[4]))
    return points


class MachineThawGuard(threading.Thread):
    """Thread that thaws the machine's own filesystems every `interval` seconds and remembers any it had to thaw."""

    def __init__(self, mountpoints=None, interval=0.1):
        super().__init__(name="machine-thaw-guard", daemon=True)
        self.mountpoints = list(mountpoints if mountpoints is not None else machine_filesystems())
        self.interval = interval
        self.incidents = []  # (monotonic time, mount point)
        self.errors = []
        self._stop_event = threading.Event()
        self._fds = {}

    def _fd(self, mnt):
        fd = self._fds.get(mnt)
        if fd is None:
            fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
            self._fds[mnt] = fd
        return fd

    def sweep(self):
        for mnt in self.mountpoints:
            try:
                fcntl.ioctl(self._fd(mnt), FITHAW, 0)
            except OSError as e:
                if e.errno in (errno.EINVAL, errno.EPERM, errno.EOPNOTSUPP, errno.ENOTTY):
                    continue  # not frozen (or we may not thaw: then nobody here could freeze either)
                self.errors.append((mnt, str(e)))
                continue
            self.incidents.append((time.monotonic(), mnt))

    def run(self):
        while not self._stop_event.wait(self.interval):
            self.sweep()

    def stop(self):
        self._stop_event.set()
        if self.ident is not None:
            self.join(timeout=5)
        self.sweep()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def report(self):
        if not self.incidents:
            return ""
        where = ", ".join(sorted({m for _, m in self.incidents}))
        return "MACHINE FILESYSTEM WAS FROZEN (%d times) and had to be thawed by the guard: %s" % (
            len(self.incidents),
            where,
        )

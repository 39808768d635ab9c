"""What a phase's processes left running: found and killed once the phase is over.

A script's background child that calls setsid leaves the script's process group, so a group kill does not
reach it, and when the script exits it is re-parented to init and forgotten. The runner therefore makes
itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER, Linux 3.4+): such orphans are re-parented to it
instead, and LeftoverReaper finds every descendant that did not exist before the phase began and kills it.
Without prctl (other systems, old kernels) only descendants still attached to us are found.
"""

import ctypes
import logging
import os
import signal
import time

log = logging.getLogger(__name__)

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    """Make this process the reaper of its orphaned descendants. True when the kernel agreed."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError, TypeError):
        return False


def _parent_map():
    parents = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return parents
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (IOError, OSError, IndexError):
            continue
        if fields and fields[0] != b"Z":
            parents[int(name)] = int(fields[1])
        elif fields:
            parents[int(name)] = -int(fields[1])  # a zombie: only to be reaped
    return parents


def _descendants(root, parents, exclude=()):
    """Living descendants of `root` not under any pid in `exclude`, and zombie children of root."""
    children = {}
    for pid, ppid in parents.items():
        children.setdefault(abs(ppid), []).append(pid)
    found, zombies, todo = [], [], [root]
    while todo:
        for pid in children.get(todo.pop(), ()):
            if pid in exclude:
                continue
            if parents[pid] < 0:
                zombies.append(pid)
                continue
            found.append(pid)
            todo.append(pid)
    return found, zombies


class LeftoverReaper(object):
    """Around one phase: remembers our children before the first script starts, kills every new
    descendant at the end (nothing to do, and no /proc scan, when no script was started)."""

    def __init__(self):
        self.me = os.getpid()
        self.before = None
        self.subreaper = False

    def arm(self):
        """Called before each script starts; the first call records the children we already have."""
        if self.before is None:
            self.subreaper = become_subreaper()
            self.before = set(pid for pid, ppid in _parent_map().items() if ppid == self.me)

    def kill_leftovers(self, rounds=50):
        """SIGKILL every descendant started during the phase and reap it. Returns the pids killed."""
        if self.before is None:
            return []
        killed = []
        for _ in range(rounds):
            alive, zombies = _descendants(self.me, _parent_map(), self.before)
            for pid in zombies:
                _reap(pid)
            if not alive:
                break
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except OSError:
                    pass
            time.sleep(0.01)
        if killed:
            log.warning("killed %d process(es) the scripts left running: %s", len(set(killed)), sorted(set(killed)))
        return sorted(set(killed))


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except OSError:
        pass

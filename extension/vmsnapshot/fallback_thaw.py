"""The two thaws that do not go through the freeze guardian, for when it cannot act.

* the worker's own (FallbackThaw), through descriptors it opened before the freeze, when the guardian
  died or stopped answering while holding a freeze;
* the supervisor's (thaw_targets), when the worker died while frozen and its guardian cannot run
  (stopped, or killed as well): the worker tells it what to thaw before freezing (targets_line).
"""

import errno
import fcntl
import json
import os
import threading
import time

from vmsnapshot.freeze_results import ThawOutcome
from vmsnapshot.freezeproto import CODE_INCONSISTENT, FITHAW
from vmsnapshot.mounts import identity_problem

TARGETS_PREFIX = "thaw-targets "


def targets_line(guardian):
    """The line the worker sends its supervisor over the phase pipe before freezing: what to thaw should
    the worker die while frozen with its guardian unable to act (stopped, say). ASCII JSON, one line."""
    return TARGETS_PREFIX + json.dumps(dict((mp, guardian.expect.get(mp, {})) for mp in guardian.mountpoints))


def parse_targets_line(line):
    """{mountpoint: identity} from a targets_line, None for any other line."""
    if not line.startswith(TARGETS_PREFIX):
        return None
    try:
        targets = json.loads(line[len(TARGETS_PREFIX) :])
    except ValueError:
        return None
    return targets if isinstance(targets, dict) else None


def thaw_targets(targets):
    """FITHAW each planned mount point that still leads to its planned file system (the supervisor's thaw).
    Returns [(mountpoint, result)]. Never blocks on a frozen file system: opening a directory and FITHAW
    do not write."""
    results = []
    for mp in reversed(list(targets)):
        try:
            fd = os.open(mp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            results.append((mp, "cannot open: %s" % os.strerror(e.errno)))
            continue
        try:
            problem = identity_problem(fd, mp, targets[mp])
            if problem:
                results.append((mp, problem))
                continue
            try:
                fcntl.ioctl(fd, FITHAW, 0)
                results.append((mp, "thawed"))
            except OSError as e:
                results.append((mp, "not frozen" if e.errno == errno.EINVAL else "FITHAW: %s" % os.strerror(e.errno)))
        finally:
            os.close(fd)
    return results


class FallbackThaw(threading.Thread):
    """The worker's own thaw, through its own descriptors, when the guardian died holding a freeze.

    Repeats FITHAW on every target that answers EINVAL ("not frozen") until the guardian process has
    fully exited: a FIFREEZE it had in flight may still complete after its death (the process cannot
    finish exiting while that ioctl is stuck), and must then be thawed at once.
    """

    def __init__(self, targets, fds, proc, reason="guardian-lost"):
        threading.Thread.__init__(self, name="freeze-fallback-thaw", daemon=True)
        self.reason = reason
        self.targets = list(reversed(targets))
        self.fds = fds
        self.proc = proc
        self.thawed, self.failures = [], []
        self.started_at = time.monotonic()
        self.last_thaw_at = None
        self.done = threading.Event()

    def run(self):
        pending = []
        for mp in self.targets:
            if mp in self.fds:
                pending.append(mp)
            else:
                self.failures.append((mp, "no descriptor for a fallback thaw"))
        try:
            while pending:
                exited = self.proc.poll() is not None
                for mp in list(pending):
                    try:
                        fcntl.ioctl(self.fds[mp], FITHAW, 0)
                        self.thawed.append(mp)
                        self.last_thaw_at = time.monotonic()
                        pending.remove(mp)
                    except OSError as e:
                        if e.errno != errno.EINVAL:  # EINVAL: not frozen (yet); try again
                            self.failures.append((mp, "FITHAW: %s" % os.strerror(e.errno)))
                            pending.remove(mp)
                if exited:
                    break
                time.sleep(0.02)
        finally:
            self.done.set()

    def outcome(self, wait_s=1.0):
        self.done.wait(wait_s)
        end = self.last_thaw_at or time.monotonic()
        still = "" if self.done.is_set() else "; still watching for a late FIFREEZE of the dying guardian"
        return ThawOutcome(
            ok=False,
            code=CODE_INCONSISTENT,
            reason=self.reason,
            thawed=list(self.thawed),
            thaw_failures=list(self.failures),
            thaw_ms=(end - self.started_at) * 1000.0,
            thawed_at=end,
            message="the freeze guardian %s; the worker thawed %s itself%s"
            % ("died" if self.reason == "guardian-lost" else "did not answer", self.thawed or "nothing", still),
        )

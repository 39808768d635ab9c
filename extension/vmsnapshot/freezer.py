"""Safe filesystem freezing: the worker's side of the freeze guardian.

Why a guardian process: a freeze is a property of the superblock and outlives the process that set it.
The Microsoft extension's freezer thaws only on its own timer (started after the last FIFREEZE) or on
a catchable signal, so a SIGKILL, an OOM kill, the agent's `killpg` or a FIFREEZE that never returns
leaves the VM frozen until it is deallocated. Here the freeze is held by a separate process
(`vmsnapshot.guardian`) that

* runs in its own session, so a process-group kill of the extension does not reach it;
* thaws everything, in reverse order, when the worker asks, when the worker dies for any reason
  (end-of-file on the socketpair, or its parent pid changing), when it receives a termination signal,
  or when its own hard deadline expires; the deadline is counted from *before* the first FIFREEZE;
* runs every FIFREEZE/FITHAW in a helper thread with a bounded wait, so a blocked ioctl (the fapolicyd
  case) cannot stall the control loop: it reports code 122, thaws what it froze, and thaws the blocked
  filesystem itself the moment that FIFREEZE returns.

The worker side below never touches a frozen filesystem: it only talks over the socketpair, measures
time with time.monotonic and logs through `logging` (the runtime's handler buffers while frozen).
"""

import ctypes
import errno
import fcntl
import json
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time

from vmsnapshot.config import DEFAULTS as CONFIG_DEFAULTS
from vmsnapshot.freezeproto import (  # noqa: F401  (re-exported: the runtime's names for them)
    CODE_FREEZE_FAILED,
    CODE_FREEZE_TIMEOUT,
    CODE_INCONSISTENT,
    CODE_OPEN_FAILED,
    FIFREEZE,
    FITHAW,
    NOT_SUPPORTED_ERRNOS,
    MessageReader,
    encode_message,
)
from vmsnapshot.mounts import freeze_waves, identities, identity_problem

log = logging.getLogger(__name__)

# Defaults: the configuration's (config.DEFAULTS). The hard deadline is the longest time any filesystem may
# stay frozen, counted from before the first FIFREEZE ([SnapshotThread] timeout). Snapshots of all disks
# normally finish in well under a second, so 30 s leaves room for retries while bounding the worst case an
# application can see.
SAFE_FREEZE_LOCK = CONFIG_DEFAULTS["safe_freeze_lock"]
DEFAULT_HARD_DEADLINE_S = CONFIG_DEFAULTS["timeout"]
DEFAULT_PER_MOUNT_TIMEOUT_S = CONFIG_DEFAULTS["freeze_wait"]
DEFAULT_LOCK_WAIT_S = CONFIG_DEFAULTS["lock_wait"]
GUARDIAN_START_TIMEOUT_S = 15.0

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FreezeOutcome(object):
    """Result of FreezeGuardian.freeze().

    ok: every selected filesystem is frozen. code: None, 121 (FIFREEZE failed, e.g. EBUSY: already
    frozen by someone else), 122 (FIFREEZE did not return in time), 123 (a mount point could not be
    opened). frozen: mount points frozen by us, in freeze order. failures: [(mountpoint, reason)].
    skipped: [(mountpoint, reason)] for filesystems that refused FIFREEZE as unsupported (not an error).
    freeze_ms: time of all FIFREEZE calls. lock_held / lock_wait_ms: the Azure Site Recovery freeze lock.
    freeze_started_at / frozen_at: time.monotonic() stamps (system-wide clock) of the first FIFREEZE
    call and of the last one returning.
    """

    def __init__(self, ok, code=None, frozen=(), failures=(), skipped=(), freeze_ms=0.0, lock_held=False,
                 lock_wait_ms=0.0, freeze_started_at=None, frozen_at=None, message=""):
        self.ok = ok
        self.code = code
        self.frozen = list(frozen)
        self.failures = [tuple(f) for f in failures]
        self.skipped = [tuple(s) for s in skipped]
        self.freeze_ms = freeze_ms
        self.lock_held = lock_held
        self.lock_wait_ms = lock_wait_ms
        self.freeze_started_at = freeze_started_at
        self.frozen_at = frozen_at
        self.message = message

    @classmethod
    def from_message(cls, msg):
        return cls(ok=bool(msg.get("ok")), code=msg.get("code"), frozen=msg.get("frozen", ()),
                   failures=msg.get("failures", ()), skipped=msg.get("skipped", ()),
                   freeze_ms=msg.get("freeze_ms", 0.0), lock_held=bool(msg.get("lock_held")),
                   lock_wait_ms=msg.get("lock_wait_ms", 0.0),
                   freeze_started_at=msg.get("freeze_started_at"), frozen_at=msg.get("frozen_at"),
                   message=msg.get("message", ""))

    def to_dict(self):
        return dict((k, getattr(self, k)) for k in (
            "ok", "code", "frozen", "failures", "skipped", "freeze_ms", "lock_held", "lock_wait_ms",
            "freeze_started_at", "frozen_at", "message"))

    def __repr__(self):
        return "FreezeOutcome(%r)" % self.to_dict()


class ThawOutcome(object):
    """Result of FreezeGuardian.thaw().

    ok: everything we froze was thawed on request. code: None, or 2 (inconsistent: the guardian had
    already thawed on its own deadline or a signal, or the guardian was lost) . reason: 'requested',
    'deadline', 'signal', 'peer-eof', 'parent-died', 'guardian-lost', 'not-frozen', 'no-reply'.
    thawed: mount points thawed (thaw order). thaw_failures: [(mountpoint, reason)].
    thaw_ms: time of the FITHAW calls. frozen_window_ms: from the first FIFREEZE call to the last FITHAW
    return. thawed_at: time.monotonic() when the last FITHAW returned.
    """

    def __init__(self, ok, code=None, reason="requested", thawed=(), thaw_failures=(), thaw_ms=0.0,
                 frozen_window_ms=0.0, thawed_at=None, message=""):
        self.ok = ok
        self.code = code
        self.reason = reason
        self.thawed = list(thawed)
        self.thaw_failures = [tuple(f) for f in thaw_failures]
        self.thaw_ms = thaw_ms
        self.frozen_window_ms = frozen_window_ms
        self.thawed_at = thawed_at
        self.message = message

    @classmethod
    def from_message(cls, msg):
        reason = msg.get("reason", "requested")
        failures = msg.get("thaw_failures", ())
        inconsistent = reason not in ("requested", "not-frozen")
        ok = not inconsistent and not failures
        return cls(ok=ok, code=CODE_INCONSISTENT if inconsistent else None, reason=reason,
                   thawed=msg.get("thawed", ()), thaw_failures=failures, thaw_ms=msg.get("thaw_ms", 0.0),
                   frozen_window_ms=msg.get("frozen_window_ms", 0.0), thawed_at=msg.get("thawed_at"),
                   message=msg.get("message", ""))

    def to_dict(self):
        return dict((k, getattr(self, k)) for k in (
            "ok", "code", "reason", "thawed", "thaw_failures", "thaw_ms", "frozen_window_ms", "thawed_at",
            "message"))

    def __repr__(self):
        return "ThawOutcome(%r)" % self.to_dict()


def _load_syncfs():
    # CDLL(None): the symbols already loaded into this process, libc among them. Not
    # ctypes.util.find_library, which runs ldconfig/gcc subprocesses.
    fn = None
    for name in (None, "libc.so.6"):
        try:
            fn = ctypes.CDLL(name, use_errno=True).syncfs
            break
        except (OSError, AttributeError):
            continue
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_syncfs = _load_syncfs()


def syncfs_all(mountpoints, timeout_s=None):
    """Flush dirty data of each filesystem before freezing, so the flush happens outside the window.

    Uses syncfs(2) per filesystem; falls back to one global sync() where syncfs is unavailable.
    With timeout_s, waits at most that long (the flush continues in the background) and returns False
    if it did not finish. Returns True when every flush completed.
    """
    def run():
        if _syncfs is None:
            os.sync()
            return
        for mp in mountpoints:
            try:
                fd = os.open(mp, os.O_RDONLY)
            except OSError as e:
                log.warning("syncfs: cannot open %s: %s", mp, e)
                continue
            try:
                if _syncfs(fd) != 0:
                    log.warning("syncfs(%s) failed: %s", mp, os.strerror(ctypes.get_errno()))
            finally:
                os.close(fd)

    if timeout_s is None:
        run()
        return True
    t = threading.Thread(target=run, name="syncfs", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        log.warning("syncfs of %d filesystems still running after %.1f s", len(mountpoints), timeout_s)
        return False
    return True


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
        targets = json.loads(line[len(TARGETS_PREFIX):])
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


LIVENESS_POLL_S = 0.1  # how often a waiting worker checks that the guardian is still alive


class _FallbackThaw(threading.Thread):
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
            ok=False, code=CODE_INCONSISTENT, reason=self.reason, thawed=list(self.thawed),
            thaw_failures=list(self.failures), thaw_ms=(end - self.started_at) * 1000.0, thawed_at=end,
            message="the freeze guardian %s; the worker thawed %s itself%s" % (
                "died" if self.reason == "guardian-lost" else "did not answer", self.thawed or "nothing", still))


# Worker-side states.
_IDLE, _FREEZING, _FROZEN, _DONE = "idle", "freezing", "frozen", "done"


class FreezeGuardian(object):
    """Worker-side handle of the guardian process. One freeze/thaw cycle per instance.

    g = FreezeGuardian(mountpoints, hard_deadline_s)
    g.start()          # spawn the guardian before the freeze (it opens every mount point up front)
    r = g.freeze()     # FreezeOutcome
    ...                # snapshots
    t = g.thaw()       # ThawOutcome
    g.close()          # idempotent; thaws if still frozen

    mountpoints are frozen in the given order (use FreezePlan.mountpoints: `/` last) and thawed in
    reverse. lock_path=None disables the Azure Site Recovery lock (tests); the lock is taken with a
    bounded wait of lock_wait_s; when it cannot be taken the freeze still proceeds (like Microsoft's
    extension) and FreezeOutcome.lock_held says so.
    """

    def __init__(self, mountpoints, hard_deadline_s=DEFAULT_HARD_DEADLINE_S,
                 per_mount_timeout_s=DEFAULT_PER_MOUNT_TIMEOUT_S, lock_path=SAFE_FREEZE_LOCK,
                 lock_wait_s=DEFAULT_LOCK_WAIT_S, python=None, waves=None, expect=None):
        # waves: [[mp, ...], ...] frozen one after the other, the mount points of a wave in parallel
        # (see mounts.freeze_waves). Default: one mount point per wave, in the given order.
        # expect: {mountpoint: {"dev", "mnt_id"}} from a pinned plan (mounts.pin, mounts.identities): the
        # guardian and the fallback thaw refuse a mount point that now leads to another file system.
        self.expect = dict(expect or {})
        self.waves = [list(w) for w in waves] if waves else [[mp] for mp in mountpoints]
        self.mountpoints = [mp for w in self.waves for mp in w]
        self.hard_deadline_s = float(hard_deadline_s)
        self.per_mount_timeout_s = float(per_mount_timeout_s)
        self.lock_path = lock_path
        self.lock_wait_s = float(lock_wait_s)
        self.python = python or sys.executable
        self.proc = None
        self.pid = None
        self.open_failures = []
        self.late_thaws = []  # (mountpoint, result) for FIFREEZE calls that returned after their timeout
        self._sock = None
        self._reader_thread = None
        self._messages = queue.Queue()
        self._state = _IDLE
        self._state_lock = threading.Lock()
        self._frozen = []
        self._reported_frozen = None
        self._thawed_msg = None
        self._freeze_outcome = None
        self._fallback_fds = {}
        self._fallback = None  # _FallbackThaw once the guardian was lost while holding a freeze
        self._closing = False
        self._closed = False

    # -- life cycle ------------------------------------------------------------------------------

    @classmethod
    def for_plan(cls, plan, **kwargs):
        """A guardian for a pinned FreezePlan (mounts.pin): its waves and each mount's identity."""
        return cls([m.mountpoint for m in plan.selected], waves=freeze_waves(plan.selected),
                   expect=identities(plan.selected), **kwargs)

    def start(self):
        """Spawn the guardian and wait until it has opened every mount point (before any freeze)."""
        if self.proc is not None:
            raise RuntimeError("FreezeGuardian.start() called twice")
        for mp in self.mountpoints:  # a fallback thaw path should the guardian itself be killed
            try:
                fd = os.open(mp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                continue
            if identity_problem(fd, mp, self.expect.get(mp)):
                os.close(fd)  # not the planned file system: never thawed from here either
            else:
                self._fallback_fds[mp] = fd
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        cmd = [self.python, "-B", "-s", "-m", "vmsnapshot.guardian", "--fd", str(theirs.fileno()),
               "--deadline", repr(self.hard_deadline_s),
               "--per-mount-timeout", repr(self.per_mount_timeout_s),
               "--lock-path", self.lock_path or "", "--lock-wait", repr(self.lock_wait_s),
               "--expect", json.dumps(self.expect), "--"]
        for wave in self.waves:  # "::" opens each wave (guardian.split_waves)
            cmd.extend(["::"] + wave)
        env = dict(os.environ)
        inherited = [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []
        env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_PARENT] + inherited)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        try:
            self.proc = subprocess.Popen(cmd, pass_fds=[theirs.fileno()], start_new_session=True,
                                         close_fds=True, cwd="/", env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            theirs.close()
        self.pid = self.proc.pid
        self._sock = ours
        self._reader_thread = threading.Thread(target=self._read_loop, name="freeze-guardian-reader",
                                               daemon=True)
        self._reader_thread.start()
        msg = self._wait_for(("ready",), GUARDIAN_START_TIMEOUT_S)
        if msg is None or msg.get("ev") != "ready":
            self._state = _DONE
            raise RuntimeError("freeze guardian did not start: %s" % (msg or "no answer"))
        self.open_failures = [tuple(f) for f in msg.get("open_failures", ())]
        log.debug("freeze guardian pid %d ready for %s", self.pid, self.mountpoints)
        return self

    def freeze(self):
        """Freeze every mount point (in order). Returns a FreezeOutcome; never raises for freeze errors."""
        if self.proc is None:
            raise RuntimeError("FreezeGuardian.freeze() before start()")
        with self._state_lock:
            if self._state != _IDLE:
                raise RuntimeError("FreezeGuardian.freeze() called in state %s" % self._state)
            self._state = _FREEZING
        if not self._send({"op": "freeze"}):
            return self._freeze_lost("the freeze guardian is gone")
        budget = self.lock_wait_s + self.hard_deadline_s + 5.0
        msg = self._wait_for(("frozen",), budget)
        if msg is not None and msg.get("ev") == "eof":
            return self._freeze_lost("the freeze guardian died during the freeze; the worker thaws whatever "
                                     "it had frozen")
        if msg is None or msg.get("ev") != "frozen":
            # The guardian bounds all of its waits: no answer means it is hung (stopped, say). Ask it for
            # a thaw and thaw from here as well.
            self._send({"op": "thaw"})
            self._guardian_lost(reason="no-reply")
            return self._freeze_lost("no answer from the freeze guardian within %.1f s (%s)"
                                     % (budget, msg and msg.get("ev")), code=CODE_FREEZE_TIMEOUT)
        outcome = FreezeOutcome.from_message(msg)
        with self._state_lock:
            self._frozen = list(outcome.frozen)
            self._state = _FROZEN if outcome.ok else _DONE
        self._freeze_outcome = outcome
        return outcome

    def thaw(self):
        """Thaw (reverse order) and report. Code 2 when the guardian had already thawed on its own."""
        with self._state_lock:
            state = self._state
        if self._fallback is not None:
            return self._fallback.outcome()
        if state == _IDLE or (state == _DONE and self._thawed_msg is None):
            self._state = _DONE
            return ThawOutcome(ok=True, reason="not-frozen", message="nothing was frozen")
        if self._thawed_msg is None:
            self._send({"op": "thaw"})
            budget = self.per_mount_timeout_s * max(1, len(self._frozen)) + 5.0
            self._wait_for(("thawed",), budget)
        self._state = _DONE
        if self._fallback is not None:
            return self._fallback.outcome()
        if self._thawed_msg is None:
            self._guardian_lost(reason="no-reply", state=state)
            if self._fallback is not None:
                return self._fallback.outcome()
            return ThawOutcome(ok=False, code=CODE_INCONSISTENT, reason="no-reply",
                               message="the freeze guardian did not confirm the thaw")
        return ThawOutcome.from_message(self._thawed_msg)

    def close(self, wait_s=5.0):
        """Idempotent clean-up: thaw if still frozen, let the guardian exit, release fds."""
        if self._closing:
            return
        self._closing = True
        try:
            if self.proc is not None and self._state in (_FREEZING, _FROZEN):
                self.thaw()
        finally:
            if self._sock is not None:
                self._send({"op": "quit"})
                try:
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self._sock.close()
            if self.proc is not None:
                try:
                    self.proc.wait(timeout=wait_s)
                except subprocess.TimeoutExpired:
                    # Never kill it: it may be waiting for a blocked FIFREEZE to return so it can thaw.
                    log.warning("freeze guardian pid %d still running after %.1f s; left to finish its thaw",
                                self.pid, wait_s)
            with self._state_lock:  # from here on no fallback thaw may start: its descriptors go
                self._closed = True
                if self._fallback is None or self._fallback.done.is_set():
                    for fd in self._fallback_fds.values():
                        os.close(fd)
                    self._fallback_fds.clear()  # else the running fallback thread still owns them

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- internals -------------------------------------------------------------------------------

    def _send(self, obj):
        try:
            self._sock.sendall(encode_message(obj))
            return True
        except OSError:
            return False

    def _wait_for(self, events, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                msg = self._messages.get(timeout=min(left, LIVENESS_POLL_S))
            except queue.Empty:
                if self._guardian_dying():
                    self._guardian_lost()
                    return {"ev": "eof"}
                continue
            if msg.get("ev") in events or msg.get("ev") in ("eof", "error"):
                if msg.get("ev") == "error":
                    log.error("freeze guardian error: %s", msg.get("message"))
                return msg

    def _guardian_dying(self):
        """True once the guardian's main thread is dead, even while the process cannot finish exiting.

        A SIGKILLed guardian whose helper thread is stuck in an uninterruptible FIFREEZE keeps its socket
        open (so no end-of-file) until that ioctl returns; its main thread already shows as a zombie.
        """
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (IOError, OSError, IndexError):
            return self.proc.poll() is not None
        return state in ("Z", "X", "x")

    def _read_loop(self):
        reader = MessageReader(self._sock)
        while True:
            msg = reader.pop()
            if msg is None:
                try:
                    if not reader.feed_once():
                        break
                except OSError:
                    break
                continue
            ev = msg.get("ev")
            if ev == "frozen":
                self._reported_frozen = list(msg.get("frozen", ()))
            if ev == "thawed":
                self._thawed_msg = msg
            elif ev == "late-thaw":
                self.late_thaws.append((msg.get("mountpoint"), msg.get("result")))
                log.warning("freeze guardian: blocked FIFREEZE of %s returned late: %s",
                            msg.get("mountpoint"), msg.get("result"))
                continue
            self._messages.put(msg)
        self._guardian_lost()
        self._messages.put({"ev": "eof"})

    def _guardian_lost(self, reason="guardian-lost", state=None):
        """The guardian is gone, dying or hung. If it may hold a freeze it never reported thawed, thaw here."""
        with self._state_lock:
            state = state or self._state
            if (self._fallback is not None or self._closed or state not in (_FREEZING, _FROZEN)
                    or self._thawed_msg is not None):
                return
            # What the guardian reported frozen; if it died before reporting, everything it was asked
            # to freeze (a stuck freeze is worse than thawing a freeze someone else might hold).
            targets = (list(self._reported_frozen) if self._reported_frozen is not None
                       else list(self.mountpoints))
            self._fallback = _FallbackThaw(targets, self._fallback_fds, self.proc, reason)
        log.error("freeze guardian pid %d %s while holding a freeze: thawing %s from the worker",
                  self.pid, "lost" if reason == "guardian-lost" else "not answering", targets)
        self._fallback.start()

    def _freeze_lost(self, message, code=CODE_FREEZE_FAILED):
        # State stays FREEZING: thaw()/close() ask the guardian to undo whatever it managed to freeze,
        # and if the guardian is dead the reader thread has already thawed through our own descriptors.
        return FreezeOutcome(ok=False, code=code, message=message)

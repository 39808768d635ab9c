"""Safe filesystem freezing: GuardianClient, the worker's side of the freeze guardian process.

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

import json
import logging
import os
import queue
import socket
import sys
import threading
import time

from vmsnapshot import subp
from vmsnapshot.config import DEFAULTS as CONFIG_DEFAULTS
from vmsnapshot.fallback_thaw import FallbackThaw
from vmsnapshot.freeze_results import FreezeOutcome, ThawOutcome
from vmsnapshot.freezeproto import (
    CODE_FREEZE_FAILED,
    CODE_FREEZE_TIMEOUT,
    CODE_INCONSISTENT,
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

LIVENESS_POLL_S = 0.1  # how often a waiting worker checks that the guardian is still alive

# Worker-side states.
_IDLE, _FREEZING, _FROZEN, _DONE = "idle", "freezing", "frozen", "done"


class GuardianClient(object):
    """Worker-side handle of the guardian process. One freeze/thaw cycle per instance.

    g = GuardianClient(mountpoints, hard_deadline_s)
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

    def __init__(
        self,
        mountpoints,
        hard_deadline_s=DEFAULT_HARD_DEADLINE_S,
        per_mount_timeout_s=DEFAULT_PER_MOUNT_TIMEOUT_S,
        lock_path=SAFE_FREEZE_LOCK,
        lock_wait_s=DEFAULT_LOCK_WAIT_S,
        python=None,
        waves=None,
        expect=None,
    ):
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
        self._fallback = None  # FallbackThaw once the guardian was lost while holding a freeze
        self._closing = False
        self._closed = False

    # -- life cycle ------------------------------------------------------------------------------

    @classmethod
    def for_plan(cls, plan, **kwargs):
        """A guardian for a pinned FreezePlan (mounts.pin): its waves and each mount's identity."""
        return cls(
            [m.mountpoint for m in plan.selected],
            waves=freeze_waves(plan.selected),
            expect=identities(plan.selected),
            **kwargs,
        )

    def start(self):
        """Spawn the guardian and wait until it has opened every mount point (before any freeze)."""
        if self.proc is not None:
            raise RuntimeError("GuardianClient.start() called twice")
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
        cmd = [
            self.python,
            "-B",
            "-s",
            "-m",
            "vmsnapshot.guardian",
            "--fd",
            str(theirs.fileno()),
            "--deadline",
            repr(self.hard_deadline_s),
            "--per-mount-timeout",
            repr(self.per_mount_timeout_s),
            "--lock-path",
            self.lock_path or "",
            "--lock-wait",
            repr(self.lock_wait_s),
            "--expect",
            json.dumps(self.expect),
            "--",
        ]
        for wave in self.waves:  # "::" opens each wave (guardian.split_waves)
            cmd.extend(["::"] + wave)
        env = subp.runtime_env()
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        try:
            self.proc = subp.spawn(cmd, pass_fds=[theirs.fileno()], cwd="/", env=env)
        finally:
            theirs.close()
        self.pid = self.proc.pid
        self._sock = ours
        self._reader_thread = threading.Thread(target=self._read_loop, name="freeze-guardian-reader", daemon=True)
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
            raise RuntimeError("GuardianClient.freeze() before start()")
        with self._state_lock:
            if self._state != _IDLE:
                raise RuntimeError("GuardianClient.freeze() called in state %s" % self._state)
            self._state = _FREEZING
        if not self._send({"op": "freeze"}):
            return self._freeze_lost("the freeze guardian is gone")
        budget = self.lock_wait_s + self.hard_deadline_s + 5.0
        msg = self._wait_for(("frozen",), budget)
        if msg is not None and msg.get("ev") == "eof":
            return self._freeze_lost(
                "the freeze guardian died during the freeze; the worker thaws whatever it had frozen"
            )
        if msg is None or msg.get("ev") != "frozen":
            # The guardian bounds all of its waits: no answer means it is hung (stopped, say). Ask it for
            # a thaw and thaw from here as well.
            self._send({"op": "thaw"})
            self._guardian_lost(reason="no-reply")
            return self._freeze_lost(
                "no answer from the freeze guardian within %.1f s (%s)" % (budget, msg and msg.get("ev")),
                code=CODE_FREEZE_TIMEOUT,
            )
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
            return ThawOutcome(
                ok=False,
                code=CODE_INCONSISTENT,
                reason="no-reply",
                message="the freeze guardian did not confirm the thaw",
            )
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
            if self.proc is not None and not subp.wait(self.proc, wait_s):
                # Never kill it: it may be waiting for a blocked FIFREEZE to return so it can thaw.
                log.warning(
                    "freeze guardian pid %d still running after %.1f s; left to finish its thaw", self.pid, wait_s
                )
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
                log.warning(
                    "freeze guardian: blocked FIFREEZE of %s returned late: %s",
                    msg.get("mountpoint"),
                    msg.get("result"),
                )
                continue
            self._messages.put(msg)
        self._guardian_lost()
        self._messages.put({"ev": "eof"})

    def _guardian_lost(self, reason="guardian-lost", state=None):
        """The guardian is gone, dying or hung. If it may hold a freeze it never reported thawed, thaw here."""
        with self._state_lock:
            state = state or self._state
            if (
                self._fallback is not None
                or self._closed
                or state not in (_FREEZING, _FROZEN)
                or self._thawed_msg is not None
            ):
                return
            # What the guardian reported frozen; if it died before reporting, everything it was asked
            # to freeze (a stuck freeze is worse than thawing a freeze someone else might hold).
            targets = list(self._reported_frozen) if self._reported_frozen is not None else list(self.mountpoints)
            self._fallback = FallbackThaw(targets, self._fallback_fds, self.proc, reason)
        log.error(
            "freeze guardian pid %d %s while holding a freeze: thawing %s from the worker",
            self.pid,
            "lost" if reason == "guardian-lost" else "not answering",
            targets,
        )
        self._fallback.start()

    def _freeze_lost(self, message, code=CODE_FREEZE_FAILED):
        # State stays FREEZING: thaw()/close() ask the guardian to undo whatever it managed to freeze,
        # and if the guardian is dead the reader thread has already thawed through our own descriptors.
        return FreezeOutcome(ok=False, code=code, message=message)

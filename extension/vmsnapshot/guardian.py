"""The freeze guardian: the separate process that holds a freeze and guarantees the thaw.

Started by vmsnapshot.guardian_client.GuardianClient as `python -B -m vmsnapshot.guardian --fd N ... -- MP...`
in its own session. It talks to the worker over one end of a socketpair (newline-delimited JSON).

Guarantees, in the order they matter:
* every mount point is opened before any freeze; nothing is written to disk, ever;
* the hard deadline is counted from before the first FIFREEZE: whatever happens to the worker,
  nothing stays frozen longer than `--deadline` seconds (plus one FITHAW);
* end-of-file on the socket (the worker died, even by SIGKILL), a changed parent pid, or a termination
  signal thaw at once;
* each FIFREEZE/FITHAW runs in its own thread with a bounded wait; a FIFREEZE that does not return in
  time is reported as code 122 and, when it finally returns, is thawed immediately by that thread
  (the process does not exit before: the threads are not daemons);
* a filesystem that answers EBUSY was frozen by someone else: we never thaw a freeze we did not make.
"""

import errno
import fcntl
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback

from vmsnapshot.codes import FREEZE_FAILED as CODE_FREEZE_FAILED
from vmsnapshot.codes import FREEZE_TIMEOUT as CODE_FREEZE_TIMEOUT
from vmsnapshot.codes import UNABLE_TO_OPEN_MOUNT as CODE_OPEN_FAILED
from vmsnapshot.fileutil import NOFOLLOW
from vmsnapshot.freezeproto import (
    FIFREEZE,
    FITHAW,
    NOT_SUPPORTED_ERRNOS,
    MessageReader,
    encode_message,
)
from vmsnapshot.mounts import identity_problem

LINGER_S = 600.0  # after the thaw, wait this long at most for the worker's last word
MIN_THAW_WAIT_S = 1.0  # a FITHAW normally takes well under a millisecond
POLL_SLICE_S = 0.25  # parent-pid check granularity; socket EOF and signals wake us at once

_TERMINATING_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def _now():
    return time.monotonic()


def _ms(seconds):
    return round(seconds * 1000.0, 3)


class IoctlCall(threading.Thread):
    """One FIFREEZE/FITHAW in its own (non-daemon) thread, so the caller can stop waiting for it."""

    def __init__(self, fd, request, mountpoint, on_late=None):
        threading.Thread.__init__(self, name="ioctl-%s" % mountpoint)
        self.fd = fd
        self.request = request
        self.mountpoint = mountpoint
        self.on_late = on_late
        self.error = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._finished = False
        self._abandoned = False

    @property
    def abandoned(self):
        with self._lock:
            return self._abandoned

    def run(self):
        err = None
        try:
            fcntl.ioctl(self.fd, self.request, 0)
        except OSError as e:
            err = e.errno
        with self._lock:
            self._finished = True
            self.error = err
            abandoned = self._abandoned
        self._done.set()
        if abandoned and self.on_late is not None:
            self.on_late(self)

    def wait(self, timeout):
        """True once the ioctl has returned (waits at most `timeout` s)."""
        return self._done.wait(max(0.0, timeout))

    def abandon(self):
        """Stop waiting. True if the ioctl is still running: on_late then runs when it returns."""
        with self._lock:
            if self._finished:
                return False
            self._abandoned = True
            return True

    def finished_within(self, timeout):
        """True if the ioctl returned in time; otherwise the call is abandoned (see on_late)."""
        self.wait(timeout)
        return not self.abandon()


class Guardian(object):
    def __init__(self, sock, mountpoints, deadline_s, per_mount_timeout_s, lock_path, lock_wait_s, expect=None):
        self.sock = sock
        self.expect = expect or {}  # mountpoint -> {"dev": st_dev, "mnt_id": id} from the plan
        self.reader = MessageReader(sock)
        self.waves = split_waves(mountpoints)
        self.mountpoints = [mp for wave in self.waves for mp in wave]
        self.deadline_s = deadline_s
        self.per_mount_timeout_s = per_mount_timeout_s
        self.lock_path = lock_path
        self.lock_wait_s = lock_wait_s
        self.ppid = os.getppid()
        self.fds = {}
        self.open_failures = []
        self.frozen = []
        self.thaw_record = None
        self.lock_fd = None
        self.lock_error = None
        self.signalled = None
        self.deferred_abort = None
        self._send_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()

    # -- plumbing ------------------------------------------------------------------------------

    def send(self, obj):
        with self._send_lock:
            try:
                self.sock.sendall(encode_message(obj))
                return True
            except OSError:
                return False

    def install_signal_handlers(self):
        os.set_blocking(self._wake_w, False)
        signal.set_wakeup_fd(self._wake_w)

        def handler(signum, frame):
            self.signalled = signum

        signums = [getattr(signal, name) for name in _TERMINATING_SIGNALS]
        for signum in signums:
            signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signums)  # a blocked mask is inherited across exec

    def poll(self, timeout):
        """Wait up to `timeout` s for the next event.

        Returns ('msg', dict), ('eof', None), ('parent', None), ('signal', None) or (None, None).
        """
        deadline = _now() + max(0.0, timeout)
        while True:
            msg = self.reader.pop()
            if msg is not None:
                return "msg", msg
            if self.reader.eof:
                return "eof", None
            if self.signalled is not None:
                return "signal", None
            if os.getppid() != self.ppid:
                return "parent", None
            left = deadline - _now()
            if left <= 0:
                return None, None
            readable, _, _ = select.select([self.sock, self._wake_r], [], [], min(left, POLL_SLICE_S))
            if self._wake_r in readable:
                try:
                    os.read(self._wake_r, 512)
                except OSError:
                    pass
            if self.sock in readable:
                self.reader.feed_once()

    # -- set-up --------------------------------------------------------------------------------

    def open_everything(self):
        for mp in self.mountpoints:
            try:
                fd = os.open(mp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as e:
                self.open_failures.append((mp, "cannot open: %s" % os.strerror(e.errno)))
                continue
            problem = identity_problem(fd, mp, self.expect.get(mp))
            if problem:  # the planned mount went away: this path now leads to another file system
                os.close(fd)
                self.open_failures.append((mp, problem))
            else:
                self.fds[mp] = fd
        if self.lock_path:
            try:
                parent = os.path.dirname(self.lock_path)
                if parent and not os.path.isdir(parent):
                    os.makedirs(parent, 0o755)
                self.lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | NOFOLLOW, 0o600)
            except OSError as e:
                self.lock_error = "cannot open lock file %s: %s" % (self.lock_path, os.strerror(e.errno))
        try:  # the OOM killer must never pick the process that holds a freeze
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("-1000")
        except (IOError, OSError):
            pass

    def take_lock(self):
        """Bounded wait for the Azure Site Recovery freeze lock. Returns (held, waited_ms, abort_reason)."""
        if self.lock_fd is None:
            return False, 0.0, None
        t0 = _now()
        deadline = t0 + self.lock_wait_s
        while True:
            try:
                fcntl.lockf(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True, _ms(_now() - t0), None
            except OSError as e:
                if e.errno not in (errno.EACCES, errno.EAGAIN):
                    self.lock_error = "lockf(%s): %s" % (self.lock_path, os.strerror(e.errno))
                    return False, _ms(_now() - t0), None
            left = deadline - _now()
            if left <= 0:
                return False, _ms(_now() - t0), None
            kind, msg = self.poll(min(0.05, left))
            if kind in ("eof", "parent", "signal"):
                return False, _ms(_now() - t0), kind
            if kind == "msg" and msg.get("op") in ("thaw", "quit"):
                return False, _ms(_now() - t0), "requested"

    def release_lock(self):
        if self.lock_fd is not None:
            try:
                fcntl.lockf(self.lock_fd, fcntl.LOCK_UN)
            except OSError:
                pass
            os.close(self.lock_fd)  # the file stays: deleting a lock file others may wait on is a race
            self.lock_fd = None

    # -- freeze and thaw -----------------------------------------------------------------------

    def _late_freeze_returned(self, call):
        """A FIFREEZE we stopped waiting for has returned: if it froze, thaw it right now."""
        if call.error is not None:
            result = "FIFREEZE failed late: %s" % os.strerror(call.error)
        else:
            result = "froze late; thawed"
            for _ in range(100):
                try:
                    fcntl.ioctl(call.fd, FITHAW, 0)
                    break
                except OSError as e:
                    if e.errno == errno.EINVAL:
                        result = "froze late; already thawed by someone else"
                        break
                    time.sleep(0.01)
            else:
                result = "froze late; FITHAW kept failing"
        self.send({"ev": "late-thaw", "mountpoint": call.mountpoint, "result": result})

    def _wait_for_freeze(self, call, wait):
        """Wait for one FIFREEZE while still watching the worker. Returns None when the call returned,
        'timeout', or the abort reason (worker gone, signal, thaw request) with the call abandoned."""
        end = _now() + wait
        while True:
            if call.wait(min(POLL_SLICE_S / 5, end - _now())):
                return None
            kind, msg = self.poll(0)
            if kind in ("eof", "parent", "signal") or (kind == "msg" and msg.get("op") in ("thaw", "quit")):
                reason = kind if kind != "msg" else "requested"
                if call.abandon():
                    return reason
                self.deferred_abort = reason  # it returned meanwhile: handle it, then abort
                return None
            if _now() >= end:
                return "timeout" if call.abandon() else None

    def freeze_all(self, t0, deadline_at):
        """FIFREEZE wave by wave; the calls of one wave run in parallel (each waits for its own RCU grace
        periods, so three file systems cost about one). Returns (code, failures, skipped, abort_reason)."""
        failures, skipped = [], []
        for wave in self.waves:
            left = deadline_at - _now()
            if left <= 0:
                failures.extend((mp, "hard deadline reached before its FIFREEZE") for mp in wave)
                return CODE_FREEZE_TIMEOUT, failures, skipped, None
            wait = min(self.per_mount_timeout_s, left)
            calls = [IoctlCall(self.fds[mp], FIFREEZE, mp, on_late=self._late_freeze_returned) for mp in wave]
            for call in calls:
                call.start()
            pending_abort = self._wait_for_wave(calls, wait)
            code = None
            for call in calls:
                mp = call.mountpoint
                if call.abandoned:
                    failures.append(
                        (
                            mp,
                            "FIFREEZE did not return within %.3g s; it is thawed as soon as it does" % wait
                            if pending_abort == "timeout"
                            else "FIFREEZE still pending when the freeze was abandoned; it is thawed as "
                            "soon as it returns",
                        )
                    )
                    code = code or (CODE_FREEZE_TIMEOUT if pending_abort == "timeout" else CODE_FREEZE_FAILED)
                elif call.error is None:
                    self.frozen.append(mp)
                elif call.error in NOT_SUPPORTED_ERRNOS:
                    skipped.append((mp, "filesystem does not support freezing (%s)" % os.strerror(call.error)))
                elif call.error == errno.EBUSY:
                    failures.append(
                        (
                            mp,
                            "already frozen (EBUSY): another process holds a freeze on it, "
                            "or the same filesystem was listed twice; left as it is",
                        )
                    )
                    code = code or CODE_FREEZE_FAILED
                else:
                    failures.append((mp, "FIFREEZE failed: %s" % os.strerror(call.error)))
                    code = code or CODE_FREEZE_FAILED
            if pending_abort not in (None, "timeout"):
                return CODE_FREEZE_FAILED, failures, skipped, pending_abort
            if code is not None:
                return code, failures, skipped, None
            if self.deferred_abort:
                return CODE_FREEZE_FAILED, failures, skipped, self.deferred_abort
            kind, msg = self.poll(0)
            if kind in ("eof", "parent", "signal"):
                return CODE_FREEZE_FAILED, failures, skipped, kind
            if kind == "msg" and msg.get("op") in ("thaw", "quit"):
                return CODE_FREEZE_FAILED, failures, skipped, "requested"
        return None, failures, skipped, None

    def _wait_for_wave(self, calls, wait):
        """Wait for every FIFREEZE of a wave (all started together) while still watching the worker.
        Returns None when all returned, 'timeout', or the abort reason; calls still pending then are
        abandoned (and thawed by _late_freeze_returned the moment they return)."""
        end = _now() + wait
        reason = None
        for call in calls:
            if reason is None:
                reason = self._wait_for_freeze(call, max(0.0, end - _now()))
            else:
                call.abandon()
        return reason

    def thaw_all(self, reason, t0):
        """FITHAW in reverse order; records and returns the 'thawed' message."""
        ts = _now()
        thawed, failures, notes = [], [], []
        for mp in reversed(self.frozen):
            call = IoctlCall(self.fds[mp], FITHAW, mp)
            call.start()
            wait = max(self.per_mount_timeout_s, MIN_THAW_WAIT_S)
            if not call.finished_within(wait):
                failures.append((mp, "FITHAW did not return within %.3g s (still waiting for it)" % wait))
            elif call.error is None:
                thawed.append(mp)
            elif call.error == errno.EINVAL:
                thawed.append(mp)
                notes.append("%s was already thawed by someone else" % mp)
            else:
                failures.append((mp, "FITHAW failed: %s" % os.strerror(call.error)))
        end = _now()
        self.frozen = []
        self.release_lock()
        self.thaw_record = {
            "ev": "thawed",
            "reason": reason,
            "thawed": thawed,
            "thaw_failures": failures,
            "thaw_ms": _ms(end - ts),
            "frozen_window_ms": _ms(end - t0),
            "thawed_at": end,
            "message": "; ".join(notes),
        }
        return self.thaw_record

    def hold(self, deadline_at):
        """Frozen: wait for the thaw request, the worker's death, a signal or the deadline."""
        while True:
            left = deadline_at - _now()
            if left <= 0:
                return "deadline"
            kind, msg = self.poll(left)
            if kind == "eof":
                return "peer-eof"
            if kind == "parent":
                return "parent-died"
            if kind == "signal":
                return "signal"
            if kind == "msg" and msg.get("op") in ("thaw", "quit"):
                return "requested"

    def linger(self, answer):
        """After the cycle: answer thaw requests with `answer` until the worker hangs up."""
        deadline = _now() + LINGER_S
        while True:
            kind, msg = self.poll(deadline - _now())
            if kind is None or kind in ("eof", "parent", "signal"):
                return
            if msg.get("op") == "quit":
                return
            if msg.get("op") == "thaw":
                self.send(answer)
            elif msg.get("op") == "freeze":
                self.send(
                    {"ev": "frozen", "ok": False, "code": CODE_FREEZE_FAILED, "message": "one freeze per guardian"}
                )

    def run(self):
        self.install_signal_handlers()
        self.open_everything()
        self.send(
            {"ev": "ready", "pid": os.getpid(), "open_failures": self.open_failures, "lock_error": self.lock_error}
        )
        while True:
            kind, msg = self.poll(LINGER_S)
            if kind in ("eof", "parent", "signal", None) or msg.get("op") == "quit":
                return
            if msg.get("op") == "freeze":
                break
            if msg.get("op") == "thaw":
                self.send({"ev": "thawed", "reason": "not-frozen", "thawed": [], "thaw_failures": []})

        not_frozen = {"ev": "thawed", "reason": "not-frozen", "thawed": [], "thaw_failures": []}
        if self.open_failures:
            self.send(
                {
                    "ev": "frozen",
                    "ok": False,
                    "code": CODE_OPEN_FAILED,
                    "failures": self.open_failures,
                    "message": "could not open every mount point; nothing was frozen",
                }
            )
            return self.linger(not_frozen)

        lock_held, lock_wait_ms, abort = self.take_lock()
        if abort is not None:
            self.release_lock()
            self.send(
                {
                    "ev": "frozen",
                    "ok": False,
                    "code": CODE_FREEZE_FAILED,
                    "lock_held": lock_held,
                    "lock_wait_ms": lock_wait_ms,
                    "message": "freeze abandoned (%s) while waiting for the freeze lock; nothing was frozen" % abort,
                }
            )
            return self.linger(not_frozen)

        t0 = _now()  # the hard deadline counts from here: before the first FIFREEZE
        deadline_at = t0 + self.deadline_s
        code, failures, skipped, abort = self.freeze_all(t0, deadline_at)
        t1 = _now()
        frozen_msg = {
            "ev": "frozen",
            "ok": code is None and abort is None,
            "code": code,
            "frozen": list(self.frozen),
            "failures": failures,
            "skipped": skipped,
            "freeze_ms": _ms(t1 - t0),
            "lock_held": lock_held,
            "lock_wait_ms": lock_wait_ms,
            "freeze_started_at": t0,
            "frozen_at": t1,
            "message": self.lock_error or "",
        }
        if not frozen_msg["ok"]:
            record = self.thaw_all("freeze-failed" if abort is None else abort, t0)
            frozen_msg["frozen"] = []
            frozen_msg["message"] = (
                "freeze abandoned (%s); " % abort if abort else ""
            ) + "thawed what had been frozen: %s" % (record["thawed"] or "nothing")
            self.send(frozen_msg)
            return self.linger(not_frozen)

        self.send(frozen_msg)
        reason = self.hold(deadline_at)
        record = self.thaw_all(reason, t0)
        self.send(record)
        if reason in ("requested", "deadline"):
            self.linger(record)

    def emergency_thaw(self):
        if self.frozen:
            self.thaw_all("error", _now())


class UsageError(Exception):
    pass


def split_waves(mountpoints):
    """ ":: a b :: c" -> [[a, b], [c]]. Without any "::" every mount point is its own wave (sequential)."""
    items = list(mountpoints)
    if "::" not in items:
        return [[mp] for mp in items]
    waves, current = [], []
    for item in items:
        if item == "::":
            if current:
                waves.append(current)
            current = []
        else:
            current.append(item)
    if current:
        waves.append(current)
    return waves


def parse_args(argv):
    """--fd N --deadline S --per-mount-timeout S [--lock-path P] [--lock-wait S] [--expect JSON] -- MOUNTPOINT...

    --expect: {mountpoint: {"dev": st_dev, "mnt_id": mount id}} from the plan (mounts.identities).

    Hand-parsed (no argparse): the guardian is started right before a freeze and should start fast.
    """
    opts = {"--lock-path": "", "--lock-wait": "0", "--expect": "{}"}
    args = list(argv)
    while args and args[0] != "--":
        key = args.pop(0)
        if (
            key not in ("--fd", "--deadline", "--per-mount-timeout", "--lock-path", "--lock-wait", "--expect")
            or not args
        ):
            raise UsageError("bad argument %r" % key)
        opts[key] = args.pop(0)
    missing = [k for k in ("--fd", "--deadline", "--per-mount-timeout") if k not in opts]
    if missing:
        raise UsageError("missing %s" % ", ".join(missing))
    try:
        expect = json.loads(opts["--expect"])
        if not isinstance(expect, dict):
            raise ValueError("--expect must be a JSON object")
        return (
            int(opts["--fd"]),
            float(opts["--deadline"]),
            float(opts["--per-mount-timeout"]),
            opts["--lock-path"],
            float(opts["--lock-wait"]),
            args[1:],
            expect,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


def main(argv=None):
    try:
        fd, deadline, per_mount, lock_path, lock_wait, mountpoints, expect = parse_args(
            sys.argv[1:] if argv is None else argv
        )
    except UsageError as e:
        sys.stderr.write("vmsnapshot.guardian: %s\n%s" % (e, parse_args.__doc__))
        return 2
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fd)
    guardian = Guardian(sock, mountpoints, deadline, per_mount, lock_path, lock_wait, expect)
    try:
        guardian.run()
    except BaseException:
        try:
            guardian.emergency_thaw()
        finally:
            guardian.send({"ev": "error", "message": traceback.format_exc()[-2000:]})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The one way the runtime starts a process (the cloud-init way): list arguments, never a shell, a bound
on every wait, and the whole process group killed when that bound is reached.

Four shapes, for the four ways the runtime uses a process:
* run(): a short command whose output we want (openssl); raises ProcessError on failure;
* run_supervised(): an operator's script, its output drained continuously into a bounded tail (no pipe
  deadlock), SIGTERM then SIGKILL to its whole group on timeout or when the caller is interrupted;
* spawn(): a long-lived process that outlives the call (supervisor, worker, freeze guardian);
* start_session(): a long-lived process we talk to over pipes (a database client session, its watchdog).
"""

import os
import select
import signal
import subprocess
import time

OUTPUT_TAIL_BYTES = 4096
KILL_GRACE_S = 2.0  # between SIGTERM and SIGKILL of a timed-out process group
DRAIN_AFTER_EXIT_S = 0.5  # a background child may keep the pipe open; stop reading after this
UNKILLABLE_WAIT_S = 5.0  # after SIGKILL: a process in uninterruptible sleep is given up on after this

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ProcessError(Exception):
    """A command failed, timed out or could not start; carries what a status message needs."""

    def __init__(self, cmd, exit_code=None, stdout=b"", stderr=b"", reason=""):
        self.cmd = list(cmd)
        self.exit_code = exit_code
        self.stdout = stdout or b""
        self.stderr = stderr or b""
        self.reason = reason
        Exception.__init__(self, self.describe())

    def describe(self):
        name = os.path.basename(self.cmd[0]) if self.cmd else "?"
        if self.reason:
            return "%s: %s" % (name, self.reason)
        tail = self.stderr.decode("utf-8", "replace").strip().splitlines()
        return "%s exited %s%s" % (name, self.exit_code, (": " + tail[-1][:200]) if tail else "")


def kill_group(pgid, sig):
    """Signal a whole process group; a group that is already gone is not an error."""
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass


def wait(proc, timeout_s):
    """Wait up to timeout_s for a started process to exit. True when it did."""
    try:
        proc.wait(timeout=timeout_s)
        return True
    except subprocess.TimeoutExpired:
        return False


def run(cmd, *, data=None, timeout=30, env=None, cwd=None, check=True, preexec_fn=None):
    """Run `cmd` (a list), feed `data` on stdin, return (stdout, stderr) bytes.

    The command runs in its own process group, which is killed whole on timeout. ProcessError when it
    cannot start, times out or (with check) exits non-zero. preexec_fn: e.g. a switch to another user
    (workload.RunAs).
    """
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
            preexec_fn=preexec_fn,
        )
    except OSError as e:
        raise ProcessError(cmd, reason="cannot run (%s)" % (e.strerror or e))
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise ProcessError(cmd, reason="timed out after %ss" % timeout)
    if check and proc.returncode != 0:
        raise ProcessError(cmd, proc.returncode, out, err)
    return out, err


def runtime_env():
    """A copy of our environment in which `python -m vmsnapshot...` imports this very package, whatever
    the directory it starts in."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_PARENT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def spawn(cmd, *, data=None, pass_fds=(), cwd="/", env=None, new_session=True):
    """Start `cmd` to outlive this call and return its Popen; stdout and stderr go to /dev/null.

    data: bytes written to its stdin, which is then closed (stdin is /dev/null without it); a process
    that dies before reading them is not an error here, its exit status tells. new_session: its own
    session and process group, so a group kill of ours does not reach it. pass_fds: descriptors it
    inherits (every other one is closed). Raises OSError when it cannot start.
    """
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=tuple(pass_fds),
        close_fds=True,
        cwd=cwd,
        env=env,
        start_new_session=new_session,
    )
    if data is not None:
        _feed(proc.stdin, data)
    return proc


def start_session(cmd, *, env=None, cwd="/", preexec_fn=None, new_session=False, stderr=True):
    """Start a long-lived process we talk to over pipes (a database client session, the database
    watchdog) and return its Popen: stdin and stdout are pipes, stderr too unless stderr=False (then
    /dev/null). preexec_fn: e.g. a switch to another user. Raises OSError when it cannot start."""
    return subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if stderr else subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        preexec_fn=preexec_fn,
        close_fds=True,
        start_new_session=new_session,
    )


def _feed(pipe, data):
    """Write `data` and close the pipe; a reader that is already gone is not an error."""
    try:
        pipe.write(data)
    except BrokenPipeError:
        pass
    try:
        pipe.close()
    except BrokenPipeError:
        pass


class Supervised(object):
    """What run_supervised saw: exit_code (None if it could not be reaped), timed_out, output_tail (the
    last tail_bytes of stdout and stderr together), output_bytes (all of it), duration_s."""

    def __init__(self, exit_code, timed_out, output_tail, output_bytes, duration_s):
        self.exit_code = exit_code
        self.timed_out = timed_out
        self.output_tail = output_tail
        self.output_bytes = output_bytes
        self.duration_s = duration_s


def run_supervised(
    cmd,
    *,
    timeout_s,
    env=None,
    cwd="/",
    pass_fds=(),
    tail_bytes=OUTPUT_TAIL_BYTES,
    kill_grace_s=KILL_GRACE_S,
    drain_after_exit_s=DRAIN_AFTER_EXIT_S,
):
    """Run `cmd` in its own session (stdin /dev/null, stdout and stderr on one pipe) until it exits or
    timeout_s passes, then SIGTERM its process group and SIGKILL it kill_grace_s later. Returns a
    Supervised. Any exception while it runs (the job is cancelled) kills the whole group and propagates.
    Raises OSError when `cmd` cannot be started (ENOEXEC, ENOENT, EACCES: the caller decides).
    """
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        close_fds=True,
        pass_fds=tuple(pass_fds),
        cwd=cwd,
        env=env,
    )
    start = time.monotonic()
    try:
        return _drain(proc, start, start + timeout_s, tail_bytes, kill_grace_s, drain_after_exit_s)
    except BaseException:
        kill_group(proc.pid, signal.SIGTERM)
        time.sleep(0.05)
        kill_group(proc.pid, signal.SIGKILL)
        proc.stdout.close()
        raise


def _drain(proc, start, deadline, tail_bytes, kill_grace_s, drain_after_exit_s):
    """run_supervised's loop: read the pipe until end-of-file after exit, enforce the deadline."""
    fd = proc.stdout.fileno()
    tail = bytearray()
    total = 0
    term_at = exited_at = None
    eof = False
    while True:
        now = time.monotonic()
        if exited_at is None and proc.poll() is not None:
            exited_at = now
        if exited_at is not None and (eof or now - exited_at >= drain_after_exit_s):
            break
        if term_at is None and now >= deadline:
            term_at = now
            kill_group(proc.pid, signal.SIGTERM)
        if term_at is not None and now - term_at >= kill_grace_s:
            kill_group(proc.pid, signal.SIGKILL)
            if now - term_at >= kill_grace_s + UNKILLABLE_WAIT_S:
                break  # unkillable (uninterruptible sleep): stop waiting, it is reported as timed out
        if eof:
            wait(proc, 0.05)
            continue
        pause = 0.05 if term_at is not None else max(0.0, min(deadline - now, 0.5))
        readable, _, _ = select.select([fd], [], [], pause)
        if readable:
            data = os.read(fd, 65536)
            if not data:
                eof = True
            else:
                total += len(data)
                tail += data
                if len(tail) > tail_bytes:
                    del tail[: len(tail) - tail_bytes]
    if term_at is not None:
        kill_group(proc.pid, signal.SIGKILL)  # the whole group, including children that ignored SIGTERM
    proc.stdout.close()
    wait(proc, 1.0)
    return Supervised(proc.returncode, term_at is not None, bytes(tail), total, time.monotonic() - start)

"""Subprocess wrapper with a timeout on every call and structured errors (the cloud-init way)."""

import os
import signal
import subprocess


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


def run(cmd, data=None, timeout=30, env=None, check=True, preexec_fn=None):
    """Run `cmd` (a list, never a shell), feed `data` on stdin, return (stdout, stderr) bytes.

    The command runs in its own process group, which is killed whole on timeout. preexec_fn: e.g. a
    switch to another user (workload.run_as).
    """
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                start_new_session=True, close_fds=True, preexec_fn=preexec_fn)
    except OSError as e:
        raise ProcessError(cmd, reason="cannot run (%s)" % (e.strerror or e))
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.communicate()
        raise ProcessError(cmd, reason="timed out after %ss" % timeout)
    if check and proc.returncode != 0:
        raise ProcessError(cmd, proc.returncode, out, err)
    return out, err

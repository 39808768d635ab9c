"""The database watchdog: undoes a MariaDB/MySQL quiesce that the job did not undo in time.

Started by workload_mysql.Watchdog as `python -B -s -m vmsnapshot.workload_watchdog` in its own session, so
it outlives the job. Its stdin is a pipe from the job: one JSON line (what to undo, with the credential: never
on argv or disk), then words: `replica` (replication was stopped: restart it when undoing) and `done` (the
job released the lock itself: exit). It undoes when `deadline_s` passes or when the pipe closes without
`done` (the job ended or was killed): it kills the client session holding the lock (the server drops the
lock with the session), then runs a fresh client to put read_only (and replication) back.
"""

import json
import os
import select
import shutil
import signal
import sys
import tempfile
import time

from . import subp


def _undo(spec, replica):
    try:
        with open("/proc/%d/cmdline" % spec["client_pid"], "rb") as f:
            same = f.read().split(b"\0")[0].decode("utf-8", "replace") == spec["client"]
        if same:
            os.kill(spec["client_pid"], signal.SIGKILL)
    except (IOError, OSError):
        pass
    base = "/run" if os.path.isdir("/run") and os.access("/run", os.W_OK) else None
    directory = tempfile.mkdtemp(prefix="vmsnapshot-dbwd-", dir=base)
    try:
        path = os.path.join(directory, "client.cnf")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, spec["options"].encode("utf-8"))
            if spec["uid"] != os.geteuid():
                os.fchown(fd, spec["uid"], spec["gid"])
                os.chown(directory, spec["uid"], spec["gid"])
        finally:
            os.close(fd)
        uid, gid = spec["uid"], spec["gid"]

        def drop():
            if uid != os.geteuid():
                os.setgroups([gid])
                os.setgid(gid)
                os.setuid(uid)

        sql = spec["undo"] + ("\n" + spec["undo_replica"] if replica else "") + "\n"
        subp.run(
            [spec["client"], "--defaults-extra-file=" + path] + spec["argv_tail"],
            data=sql.encode("utf-8"),
            env=spec["env"],
            preexec_fn=drop,
            timeout=30,
            cwd="/",
            check=False,
        )
    except (OSError, subp.ProcessError):
        pass
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main():
    spec = json.loads(sys.stdin.readline())
    deadline = time.monotonic() + float(spec["deadline_s"])
    sys.stdout.write("armed\n")
    sys.stdout.flush()
    replica, buf, fd = False, b"", sys.stdin.fileno()
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break  # deadline
        chunk = os.read(fd, 4096)
        if not chunk:
            break  # the job closed the pipe or died without saying done
        buf += chunk
        words = buf.split()
        if b"done" in words:
            return 0
        replica = replica or b"replica" in words
    _undo(spec, replica)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Per-handler state that makes enable idempotent and lets disable find a running job.

Files in the handler directory (the agent copies mrseq and status/* across version updates):
- mrseq: the last sequence number acted on;
- task_identity: the last taskId run (a second key against replays);
- job.json: the running worker's pid, seq and its guardian's pid, for disable/uninstall;
- vm_guid: the Role guid of the VM these files belong to (vm_identity.py).
"""

import errno
import fcntl
import json
import os
import time

from .fileutil import NOFOLLOW, atomic_write, remove

MRSEQ = "mrseq"
TASK_IDENTITY = "task_identity"
JOB_FILE = "job.json"
ENABLE_LOCK = "enable.lock"
VM_GUID = "vm_guid"


class State(object):
    def __init__(self, base_dir):
        self.base_dir = base_dir

    def _path(self, name):
        return os.path.join(self.base_dir, name)

    def _read(self, name):
        try:
            with open(self._path(name)) as f:
                return f.read().strip()
        except (IOError, OSError):
            return None

    def mrseq(self):
        raw = self._read(MRSEQ)
        return int(raw) if raw and raw.lstrip("-").isdigit() else None

    def set_mrseq(self, seq):
        atomic_write(self._path(MRSEQ), str(seq), 0o600)

    def last_task(self):
        return self._read(TASK_IDENTITY)

    def set_last_task(self, task_id):
        atomic_write(self._path(TASK_IDENTITY), task_id, 0o600)

    def vm_guid(self):
        return self._read(VM_GUID)

    def set_vm_guid(self, guid):
        atomic_write(self._path(VM_GUID), guid, 0o600)

    def forget_jobs(self):
        """Another VM's sequence number and task identity (restore or clone): start afresh."""
        remove(self._path(MRSEQ))
        remove(self._path(TASK_IDENTITY))

    def job(self):
        raw = self._read(JOB_FILE)
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def set_job(self, **fields):
        fields.setdefault("updated", time.time())
        atomic_write(self._path(JOB_FILE), json.dumps(fields), 0o600)

    def clear_job(self):
        remove(self._path(JOB_FILE))

    def lock(self):
        """An exclusive lock held for enable's check-and-start: concurrent enables start one job."""
        fd = os.open(self._path(ENABLE_LOCK), os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    @staticmethod
    def unlock(fd):
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def remove_all(self):
        for name in (MRSEQ, TASK_IDENTITY, JOB_FILE, ENABLE_LOCK, VM_GUID):
            remove(self._path(name))


def pid_alive(pid):
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    try:  # a zombie is not alive
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")", 1)[1].split()[0] != "Z"
    except (IOError, OSError, IndexError):
        return True


def process_start_time(pid):
    """Clock ticks since boot at which `pid` started: tells a live job from a reused pid."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().split(")", 1)[1].split()[19])
    except (IOError, OSError, IndexError, ValueError):
        return None

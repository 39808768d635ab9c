"""Snapshot jobs with the database branch against real servers: test-made loop file systems, the extension
installed the agent's way and allowed to freeze only those mounts, snapshot requests held at a proxy so
the caller can copy the images inside the frozen window (what a restore gets). Used by tests/databases and
bench/db_commit_stall.py.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time

from harness import databases, loopfs
from harness.faultproxy import FaultProxy, Rule
from harness.jobs import SnapshotVM, b64json, safe_config, wait_for, workload_config_path

CAP_S = 10  # [SnapshotThread] timeout: the most anything may stay frozen in these jobs
SNAP = "comp=snapshot"


class Loops(object):
    """Loop file systems made for one test (in a directory the database users can traverse)."""

    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="vmsnapshot-db-", dir="/tmp")
        os.chmod(self.base, 0o755)
        self.made = []

    def make(self, name, size_mb=256):
        fs = loopfs.LoopFs(self.base, "ext4", name, size_mb)
        self.made.append(fs)
        fs.create()
        os.chmod(fs.mountpoint, 0o755)
        return fs

    def attach(self, image, mountpoint):
        fs = databases.ImageFs(image, mountpoint)
        self.made.append(fs)
        return fs.create()

    def close(self):
        errors = []
        for fs in reversed(self.made):
            errors.extend(fs.destroy())
        shutil.rmtree(self.base, ignore_errors=True)
        return errors


class DbVm(object):
    """The extension installed the agent's way, configured to freeze only `mounts`, with a workload.conf."""

    def __init__(self, work, azurite, tenant, built_zip, tls, mounts, on_failure_freeze=True, python=None):
        self.azurite, self.tls, self.mounts = azurite, tls, list(mounts)
        self.vm = SnapshotVM(work, azurite, tenant, built_zip, disks=2, python=python)
        extra = "" if on_failure_freeze else "[SnapshotThread]\nOnAppFailureDoFsFreeze = false\n"
        safe_config(self.vm.config, work, fsfreeze=True, include=self.mounts, extra=extra)
        with open(self.vm.config) as f:
            text = f.read().replace("timeout = 20", "timeout = %d" % CAP_S)
        with open(self.vm.config, "w") as f:
            f.write(text)
        self.workload_conf = workload_config_path(work)
        os.makedirs(os.path.dirname(self.workload_conf), mode=0o700, exist_ok=True)

    def write_workload(self, **keys):
        fd = os.open(self.workload_conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("[workload]\n" + "".join("%s = %s\n" % kv for kv in keys.items()))

    def diagnose(self):
        """The safety check before every job: the plan freezes exactly our mounts. Returns the document."""
        proc = self.vm.agent.handle("diagnose", "--json", "--offline", timeout=120)
        doc = json.loads(proc.stdout)
        if doc["freeze_plan"]["fsfreeze"] is not True or sorted(doc["freeze_plan"]["would_freeze"]) != sorted(
            self.mounts
        ):
            raise RuntimeError(
                "refusing to run: the freeze plan is not exactly our own mounts: %s" % doc["freeze_plan"]
            )
        return doc

    def backup(self, copy=(), hold_s=2.0, seq=0, on_frozen=None, timeout=90):
        """One job; snapshot requests are held `hold_s` at a proxy. Inside the frozen window each (image,
        copy path) in `copy` is copied (what a restore gets) and on_frozen() is called. Returns a Backup."""
        self.diagnose()
        out = Backup()
        rules = [Rule(SNAP, "delay", delay=hold_s, times=None)] if hold_s else []
        with (
            FaultProxy(self.azurite.port, self.tls, rules) as proxy,
            loopfs.ThawWatchdog(self.mounts, seconds=CAP_S + 20),
        ):
            uris = [proxy.rewrite(u) for u in self.vm.disk_uris()]
            self.vm.write(seq, private=self.vm.private(objectStr=b64json({"blobSASUri": uris})))
            out.started = time.monotonic()
            if self.vm.agent.run("enable", seq=seq).returncode != 0:
                raise RuntimeError("enable failed")
            if copy or on_frozen:
                out.snapshot_at = wait_for(lambda: next((t for t, _, line, _ in proxy.log if SNAP in line), None))
                for image, target in copy:  # the images live on the unfrozen root: copying cannot block
                    subprocess.run(["cp", "--sparse=always", image, target], check=True, timeout=60)
                if on_frozen:
                    on_frozen()
                out.frozen_after_copy = not loopfs.probe_writable(self.mounts[:1], timeout_s=0.2)[0]
            out.doc = self.vm.agent.wait_terminal(seq, timeout=timeout)
            out.ended = time.monotonic()
            snaps = [t for t, _, line, _ in proxy.log if SNAP in line]
            out.snapshot_at = out.snapshot_at or (min(snaps) if snaps else None)
        ok, took = loopfs.probe_writable(self.mounts, timeout_s=1.0)
        if not ok:
            raise RuntimeError("mounts not writable after the job (%.2fs)" % took)
        return out


class Backup(object):
    started = ended = snapshot_at = doc = None
    frozen_after_copy = None

    @property
    def status(self):
        return self.doc[0]["status"]

    @property
    def report(self):
        return json.loads(self.status["substatus"][0]["name"])[0]["status"]

    @property
    def message(self):
        return self.status["formattedMessage"]["message"]

    @property
    def consistency(self):
        return json.loads(self.report["formattedMessage"]["message"])["snapshotConsistency"]

    def telemetry(self):
        return dict((t["Key"], t["Value"]) for t in self.report["telemetryData"])

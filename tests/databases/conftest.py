"""Fixtures for the database tests: real MariaDB and PostgreSQL servers on loop-mounted ext4 file systems made
here (and only those are ever frozen), Azurite over HTTPS, and the built extension run the agent's way.

Safety before every job: diagnose with the job's configuration must plan to freeze exactly the test's own
mounts; an independent ThawWatchdog thaws them; the session guard watches the machine's own file systems.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from harness import databases, loopfs
from harness.dbload import Load, acked_before
from harness.faultproxy import FaultProxy, Rule
from harness.interpreters import interpreter_or_skip
from harness.jobs import SnapshotVM, b64json, safe_config

REASON = databases.skip_reason()
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


@pytest.fixture
def loops():
    if REASON:
        print("SKIP database tests: %s" % REASON)
        pytest.skip(REASON)
    made = Loops()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def mariadb(loops):
    fs = loops.make("my-data")
    server = databases.MariaDb(os.path.join(fs.mountpoint, "data"), os.path.join(loops.base, "my-run"))
    server.filesystems = [fs]
    try:
        server.install().start().create_bank()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres(loops):
    data, wal = loops.make("pg-data"), loops.make("pg-wal")
    server = databases.Postgres(os.path.join(data.mountpoint, "cluster"), os.path.join(wal.mountpoint, "pg_wal"),
                                os.path.join(loops.base, "pg-run"))
    server.filesystems = [data, wal]
    try:
        server.install().start().create_bank()
        yield server
    finally:
        server.stop(mode="immediate")


class DbVm(object):
    """The extension installed the agent's way, configured to freeze only `mounts`, with a workload.conf."""

    def __init__(self, work, azurite, tenant, built_zip, tls, mounts, on_failure_freeze=True, python=None):
        self.azurite, self.tls, self.mounts = azurite, tls, list(mounts)
        self.vm = SnapshotVM(work, azurite, tenant, built_zip, disks=2,
                             python=interpreter_or_skip(python) if python else None)
        extra = "" if on_failure_freeze else "[SnapshotThread]\nOnAppFailureDoFsFreeze = false\n"
        safe_config(self.vm.config, work, fsfreeze=True, include=self.mounts, extra=extra)
        with open(self.vm.config) as f:
            text = f.read().replace("timeout = 20", "timeout = %d" % CAP_S)
        with open(self.vm.config, "w") as f:
            f.write(text)
        self.workload_conf = os.path.join(work, "etc-azure", "workload.conf")
        os.makedirs(os.path.dirname(self.workload_conf), mode=0o700, exist_ok=True)

    def write_workload(self, **keys):
        fd = os.open(self.workload_conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("[workload]\n" + "".join("%s = %s\n" % kv for kv in keys.items()))

    def diagnose(self):
        """The safety check before every job: the plan freezes exactly our mounts. Returns the document."""
        proc = subprocess.run(["/bin/sh", "-c", self.vm.agent.base + "/bin/handle.sh diagnose --json --offline"],
                              cwd=self.vm.agent.base, env=self.vm.agent.env(0), capture_output=True, text=True,
                              timeout=120)
        doc = json.loads(proc.stdout)
        assert doc["freeze_plan"]["fsfreeze"] is True
        assert sorted(doc["freeze_plan"]["would_freeze"]) == sorted(self.mounts), doc["freeze_plan"]
        return doc

    def backup(self, copy=(), hold_s=2.0, seq=0, on_frozen=None, timeout=90):
        """One job; snapshot requests are held `hold_s` at a proxy. Inside the frozen window each (image,
        copy path) in `copy` is copied (what a restore gets) and on_frozen() is called. Returns a Backup."""
        self.diagnose()
        out = Backup()
        rules = [Rule(SNAP, "delay", delay=hold_s, times=None)] if hold_s else []
        with FaultProxy(self.azurite.port, self.tls, rules) as proxy, \
                loopfs.ThawWatchdog(self.mounts, seconds=CAP_S + 20):
            uris = [proxy.rewrite(u) for u in self.vm.disk_uris()]
            self.vm.write(seq, private=self.vm.private(objectStr=b64json({"blobSASUri": uris})))
            out.started = time.monotonic()
            assert self.vm.agent.run("enable", seq=seq).returncode == 0
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
        assert ok, "mounts not writable after the job (%.2fs)" % took
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


def wait_for(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met within %ss" % timeout)


@pytest.fixture
def make_vm(tmp_path, azurite, tenant, built_zip, tls, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", tls["ca"])
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    def make(mounts, **kw):
        return DbVm(str(tmp_path / "vm"), azurite, tenant, built_zip, tls, mounts, **kw)
    return make


def restore(server, loops, copies):
    """What a restore does: the server stopped (the VM is gone), each disk replaced by its snapshot (our copy,
    at the same mount point), then the server started on it: crash recovery runs."""
    server.stop()
    for fs in server.filesystems:
        assert fs.destroy() == []
    for fs in server.filesystems:
        loops.attach(copies[fs.mountpoint], fs.mountpoint)
    if hasattr(server, "clear_stale_pid"):
        server.clear_stale_pid()
    server.start()


def command_lines_with(secret):
    """Every process whose command line shows `secret` (what any local user could read in /proc)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if secret.encode() in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


def backup_under_load(server, vm, tmp_path, secret):
    """A job with the database branch while the transfer load runs; the images are copied inside the frozen
    window, where no command line may show the credential. Returns (backup, load result, copies)."""
    copies = {fs.mountpoint: str(tmp_path / (fs.name + ".copy")) for fs in server.filesystems}
    shown = []
    load = Load(server, str(tmp_path / "load.json"))
    try:
        time.sleep(1.0)
        backup = vm.backup(copy=[(fs.image, copies[fs.mountpoint]) for fs in server.filesystems],
                           on_frozen=lambda: shown.extend(command_lines_with(secret)))
    finally:
        result = load.stop()
    assert result["errors"] == []
    assert backup.frozen_after_copy, "the copies were not all taken inside the frozen window"
    assert shown == [], "the credential is visible on a command line"
    hits = subprocess.run(["grep", "-rlF", secret, vm.vm.work], capture_output=True, text=True).stdout.split()
    assert [h for h in hits if not h.endswith("workload.conf")] == [], "the credential was written to disk"
    assert len(acked_before(result, backup.snapshot_at)) > 20, "the load did not run before the freeze"
    assert len(result["acks"]) > len(acked_before(result, backup.snapshot_at)), "no commit after the thaw"
    return backup, result, copies


def assert_restores(server, loops, copies, result, backup):
    """Restore from the copies; the server passes its integrity check, holds every commit acknowledged before
    the first snapshot request (the freeze came before it) and no half-applied transfer."""
    acked = acked_before(result, backup.snapshot_at)
    restore(server, loops, copies)
    server.check_integrity()
    missing, total, expected, rows = databases.verify_bank(server, acked)
    assert missing == [], "acknowledged commits lost: %s" % missing[:20]
    assert total == expected, "a transfer was half applied: total %d != %d" % (total, expected)
    assert rows >= len(acked)

"""Fixtures for the database tests: real MariaDB and PostgreSQL servers on loop-mounted ext4 file systems made
here (and only those are ever frozen), Azurite over HTTPS, and the built extension run the agent's way.

Safety before every job: diagnose with the job's configuration must plan to freeze exactly the test's own
mounts; an independent ThawWatchdog thaws them; the session guard watches the machine's own file systems.
"""

import os
import subprocess
import time

import pytest

from harness import databases
from harness.dbjobs import DbVm, Loops
from harness.dbload import Load, acked_before
from harness.handler import build_zip
from harness.interpreters import interpreter_or_skip

REASON = databases.skip_reason()


@pytest.fixture(scope="session")
def built_zip(tmp_path_factory):
    """The extension zip as the agent gets it (Azurite, TLS and the tenant certificate: tests/conftest.py)."""
    return build_zip(str(tmp_path_factory.mktemp("dist")))


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
    server = databases.Postgres(
        os.path.join(data.mountpoint, "cluster"),
        os.path.join(wal.mountpoint, "pg_wal"),
        os.path.join(loops.base, "pg-run"),
    )
    server.filesystems = [data, wal]
    try:
        server.install().start().create_bank()
        yield server
    finally:
        server.stop(mode="immediate")


@pytest.fixture
def make_vm(tmp_path, azurite, tenant, built_zip, tls, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", tls["ca"])
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    made = []

    def make(mounts, **kw):
        if kw.get("python"):
            kw["python"] = interpreter_or_skip(kw["python"])
        made.append(mounts)
        return DbVm(str(tmp_path / ("vm%d" % len(made))), azurite, tenant, built_zip, tls, mounts, **kw)

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
        backup = vm.backup(
            copy=[(fs.image, copies[fs.mountpoint]) for fs in server.filesystems],
            on_frozen=lambda: shown.extend(command_lines_with(secret)),
        )
    finally:
        result = load.stop()
    assert result["errors"] == []
    assert backup.frozen_after_copy, "the copies were not all taken inside the frozen window"
    assert shown == [], "the credential is visible on a command line"
    hits = subprocess.run(["grep", "-rlF", secret, vm.vm.work], capture_output=True, text=True).stdout.split()
    assert [h for h in hits if not h.endswith("workload.conf")] == [], "the credential was written to disk"
    for blob in ("status.json", "job.log"):  # what the service and the support engineer read
        text = vm.vm.azurite.read_blob(vm.vm.container, blob).decode("utf-8", "replace")
        assert text and secret not in text, blob
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

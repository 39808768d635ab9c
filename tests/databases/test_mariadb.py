"""MariaDB under a transactional load, backed up by the extension's database branch and restored.

The proof: the images copied inside the frozen window (what the disk snapshots capture) start as a MariaDB
server that passes mariadb-check, holds every transfer acknowledged before the freeze, no half-applied
transfer (the balances keep their total), and a binary log that ends exactly at the position the job
recorded. Then the failure cases: wrong credentials, server down, a lock wait timeout, SIGKILL of the job
while the lock is held.
"""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from harness import databases, loopfs
from harness.jobs import hook_dir, wait_for

from .conftest import assert_restores, backup_under_load

pytestmark = [pytest.mark.root]


def workload(vm, server, password=databases.MY_BACKUP_PASSWORD, **extra):
    # The password has a space and a quote: it reaches the client only through the option file.
    keys = dict(
        workload_name="mariadb",
        linux_user="nobody",
        timeout="20",
        credString='-u backup "-p%s" -S %s' % (password, server.socket),
    )
    keys.update(extra)
    vm.write_workload(**keys)


def read_only(server):
    return server.query_rows("SELECT @@GLOBAL.read_only;")[0][0]


def assert_no_secret(vm, password=databases.MY_BACKUP_PASSWORD):
    hits = subprocess.run(["grep", "-rlF", password, vm.vm.work], capture_output=True, text=True).stdout.split()
    assert [h for h in hits if not h.endswith("workload.conf")] == []


def test_restore_of_a_backup_under_load_has_every_acknowledged_commit(mariadb, loops, make_vm, tmp_path):
    vm = make_vm([fs.mountpoint for fs in mariadb.filesystems], python="py3.6")  # the oldest runtime Python
    workload(vm, mariadb)
    doc = vm.diagnose()["workload"]
    assert doc["ok"] and doc["engine"] == "MariaDB" and doc["reachable"] and doc["privileges_sufficient"], doc
    assert read_only(mariadb) == "0", "diagnose must not quiesce"
    backup, result, copies = backup_under_load(mariadb, vm, tmp_path, databases.MY_BACKUP_PASSWORD)
    assert (backup.status["status"], backup.status["code"]) == ("success", 0), backup.message
    assert backup.consistency == 2
    assert "MariaDB" in backup.message and "FLUSH TABLES WITH READ LOCK" in backup.message
    position = re.search(r"binary log position (binlog\.\d+):(\d+)", backup.message)
    assert position, backup.message
    job_log = vm.vm.azurite.read_blob(vm.vm.container, "job.log").decode("utf-8", "replace")
    assert "binary log position %s:%s" % position.groups() in job_log  # the job log has it too
    assert read_only(mariadb) == "0", "read_only was not put back after the thaw"
    assert_restores(mariadb, loops, copies, result, backup)
    # FLUSH TABLES WITH READ LOCK was held across the freeze: the binary log in the snapshot ends at the
    # recorded position, which is where point-in-time recovery continues from.
    binlog = os.path.join(mariadb.datadir, position.group(1))
    assert os.path.getsize(binlog) == int(position.group(2))


def test_wrong_credentials_still_freeze_and_say_why(mariadb, make_vm):
    vm = make_vm([fs.mountpoint for fs in mariadb.filesystems])
    workload(vm, mariadb, password="not-the-password")
    assert vm.diagnose()["workload"]["code"] == 505
    backup = vm.backup(hold_s=0)
    assert (backup.status["status"], backup.status["code"]) == ("success", 1), backup.message
    assert backup.consistency == 1
    assert "code 505" in backup.message and "Access denied" in backup.message
    assert_no_secret(vm, "not-the-password")


def test_server_down_without_fs_fallback_is_a_coded_error(mariadb, make_vm):
    vm = make_vm([fs.mountpoint for fs in mariadb.filesystems], on_failure_freeze=False)
    workload(vm, mariadb)
    mariadb.stop()
    backup = vm.backup(hold_s=0)
    assert (backup.status["status"], backup.status["code"]) == ("error", 506), backup.message
    assert "connect" in backup.message
    assert vm.vm.snapshots() == []


def test_lock_wait_timeout_gives_up_quickly_and_freezes_anyway(mariadb, make_vm):
    vm = make_vm([fs.mountpoint for fs in mariadb.filesystems])
    workload(vm, mariadb, lock_wait="2")
    holder = subprocess.Popen(mariadb.client_argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:  # a long transaction holding a table: FLUSH TABLES WITH READ LOCK cannot get its lock
        holder.stdin.write("LOCK TABLES bank.accounts WRITE; SELECT 'held';\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "held"
        backup = vm.backup(hold_s=0)
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert (backup.status["status"], backup.status["code"]) == ("success", 1), backup.message
    assert backup.consistency == 1 and "code 510" in backup.message
    assert backup.ended - backup.started < 2 + 10, "the lock wait was not bounded"
    assert read_only(mariadb) == "0"
    assert mariadb.query_rows("SELECT COUNT(*) FROM information_schema.processlist WHERE user = 'backup';") == [["0"]]


def test_sigkill_of_the_job_while_the_lock_is_held(mariadb, make_vm):
    """The freeze guardian thaws within a second; the client session ends with the job (its input pipe
    closes), so the lock goes at once, and the watchdog puts read_only back."""
    vm = make_vm([fs.mountpoint for fs in mariadb.filesystems], python="py3.6")
    workload(vm, mariadb, timeout="8")
    state = {}

    def kill_now():
        state["locked"] = read_only(mariadb) == "1"
        with open(os.path.join(vm.vm.agent.base, "job.json")) as f:
            os.kill(json.load(f)["pid"], signal.SIGKILL)
        state["killed"] = time.monotonic()
        ok, took = loopfs.probe_writable(vm.mounts, timeout_s=1.0)
        state["thawed_in"] = time.monotonic() - state["killed"] if ok else None

    backup = vm.backup(hold_s=20, on_frozen=kill_now, timeout=30)
    assert state["locked"], "the lock was not held while frozen"
    assert state["thawed_in"] is not None and state["thawed_in"] < 1.0, state
    # The session died with the job: a write succeeds at once (FLUSH TABLES WITH READ LOCK is gone) ...
    t = time.monotonic()
    mariadb.sql("UPDATE bank.accounts SET bal = bal WHERE id = 1;", timeout=8)
    assert time.monotonic() - t < 8
    # ... and the watchdog restores read_only within `timeout` (at once: the job's pipe closed).
    wait_for(lambda: read_only(mariadb) == "0", timeout=8)
    assert time.monotonic() - state["killed"] < 8
    assert backup.status["code"] == 2 and "killed by signal 9" in backup.message
    assert "snapshots while frozen" in backup.message


def test_a_job_outliving_the_workload_timeout_loses_the_lock_and_says_so(mariadb, make_vm):
    """The watchdog ends the lock at `timeout` even while the job is still frozen: the job then reports
    file-system consistency (the lock did not cover the whole window) and read_only is back."""
    vm = make_vm([fs.mountpoint for fs in mariadb.filesystems])
    workload(vm, mariadb, timeout="2")
    backup = vm.backup(hold_s=4)
    assert (backup.status["status"], backup.status["code"]) == ("success", 1), backup.message
    assert backup.consistency == 1 and "code 508" in backup.message and "ended before the thaw" in backup.message
    assert read_only(mariadb) == "0"


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_replica_stops_replicating_for_the_freeze_and_resumes(loops, make_vm):
    source_fs, replica_fs = loops.make("my-source"), loops.make("my-replica")
    source = databases.MariaDb(
        os.path.join(source_fs.mountpoint, "data"), os.path.join(loops.base, "src-run"), server_id=1, port=free_port()
    )
    replica = databases.MariaDb(
        os.path.join(replica_fs.mountpoint, "data"), os.path.join(loops.base, "rep-run"), server_id=2
    )
    try:
        source.install().start().create_bank()
        replica.install().start().replicate_from(source)
        wait_for(
            lambda: (
                replica.query_rows("SELECT COUNT(*) FROM bank.accounts;") == [["20"]]
                if replica.query_rows("SHOW DATABASES LIKE 'bank';")
                else False
            )
        )
        vm = make_vm([replica_fs.mountpoint])  # only the replica's file system is ever frozen
        workload(vm, replica)
        assert vm.diagnose()["workload"]["role"] == "replica (replicating)"
        seen = {}

        def while_frozen():
            argv = [a for a in replica.client_argv() if a != "--skip-column-names"] + ["--vertical"]
            status = subprocess.run(
                argv, input="SHOW ALL SLAVES STATUS;", capture_output=True, text=True, timeout=30
            ).stdout
            seen["sql_thread"] = re.search(r"Slave_SQL_Running: (\w+)", status).group(1)

        backup = vm.backup(hold_s=1.0, on_frozen=while_frozen)
        assert (backup.status["status"], backup.status["code"]) == ("success", 0), backup.message
        assert "replication stopped and restarted" in backup.message
        assert seen["sql_thread"] == "No", "replication ran during the freeze"
        source.sql(
            "UPDATE bank.accounts SET bal = bal + 1 WHERE id = 0; UPDATE bank.accounts SET bal = bal - 1 WHERE id = 1;"
        )
        wait_for(lambda: replica.query_rows("SELECT bal FROM bank.accounts WHERE id = 0;") == [["1001"]])
    finally:
        replica.stop()
        source.stop()


def test_hooks_run_outside_the_lock(mariadb, make_vm):
    """Order: pre hooks, lock, freeze, snapshots, thaw, unlock, post hooks: a hook sees the database
    writable on both sides, and the job is application-consistent with both."""
    vm = make_vm([fs.mountpoint for fs in mariadb.filesystems])
    workload(vm, mariadb)
    hooks = hook_dir(vm.vm.work)
    os.makedirs(hooks, mode=0o700, exist_ok=True)
    marker = os.path.join(vm.vm.work, "hook.log")
    with open(os.path.join(hooks, "10-probe"), "w") as f:
        f.write(
            "#!/bin/sh\necho \"$1 $(%s -e 'SELECT @@GLOBAL.read_only')\" >> %s\n"
            % (" ".join(mariadb.client_argv()), marker)
        )
    os.chmod(os.path.join(hooks, "10-probe"), 0o700)
    backup = vm.backup(hold_s=0)
    assert (backup.status["status"], backup.status["code"]) == ("success", 0), backup.message
    assert backup.consistency == 2 and "MariaDB" in backup.message
    with open(marker) as f:
        assert f.read().split("\n")[:2] == ["freeze 0", "thaw 0"]

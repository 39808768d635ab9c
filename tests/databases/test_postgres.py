"""PostgreSQL with its WAL on a second file system, under a transactional load, backed up by the database
branch and restored from the images copied inside the frozen window: it must start (crash recovery), pass
pg_amcheck, hold every transfer acknowledged before the freeze and no half-applied transfer. A cluster
whose WAL file system is not frozen with its data is reported file-system consistent, with the reason.
"""

import os

import pytest

from harness import databases

from .conftest import assert_restores, backup_under_load

pytestmark = [pytest.mark.root]


def workload(vm, server, password=databases.PG_PASSWORD, **extra):
    keys = dict(
        workload_name="postgres",
        linux_user="postgres",
        credString="-h %s -U postgres -d postgres password=%s" % (server.rundir, password),
    )
    keys.update(extra)
    vm.write_workload(**keys)


def test_restore_of_a_backup_under_load_has_every_acknowledged_commit(postgres, loops, make_vm, tmp_path):
    data, wal = postgres.filesystems
    assert os.path.realpath(os.path.join(postgres.datadir, "pg_wal")).startswith(wal.mountpoint + "/")
    vm = make_vm([data.mountpoint, wal.mountpoint], python="py3.13")
    workload(vm, postgres)
    doc = vm.diagnose()["workload"]
    assert doc["ok"] and doc["engine"] == "PostgreSQL" and doc["reachable"], doc
    assert doc["directories"]["WAL directory"].startswith(wal.mountpoint), doc
    backup, result, copies = backup_under_load(postgres, vm, tmp_path, databases.PG_PASSWORD)
    assert (backup.status["status"], backup.status["code"]) == ("success", 0), backup.message
    assert backup.consistency == 2
    assert "PostgreSQL 1" in backup.message and "CHECKPOINT" in backup.message
    assert_restores(postgres, loops, copies, result, backup)
    assert "database system was not properly shut down" in postgres.log_tail(), "no crash recovery ran"


def test_wal_on_a_file_system_outside_the_freeze_plan_is_only_fs_consistent(postgres, make_vm):
    data, wal = postgres.filesystems
    vm = make_vm([data.mountpoint])
    workload(vm, postgres)
    backup = vm.backup(hold_s=0)
    assert (backup.status["status"], backup.status["code"]) == ("success", 1), backup.message
    assert backup.consistency == 1
    assert "WAL directory %s" % os.path.realpath(os.path.join(postgres.datadir, "pg_wal")) in backup.message
    assert "not in the freeze plan" in backup.message


def test_wrong_password_and_server_down(postgres, make_vm):
    vm = make_vm([fs.mountpoint for fs in postgres.filesystems])
    workload(vm, postgres, password="wrong-password")
    assert vm.diagnose()["workload"]["code"] == 505
    backup = vm.backup(hold_s=0)
    assert (backup.status["code"], backup.consistency) == (1, 1), backup.message
    assert "code 505" in backup.message and "password authentication failed" in backup.message
    assert "wrong-password" not in backup.message

    workload(vm, postgres)
    postgres.stop()
    backup = vm.backup(hold_s=0, seq=1)
    assert (backup.status["code"], backup.consistency) == (1, 1), backup.message
    assert "code 506" in backup.message


def test_bad_workload_conf_is_a_coded_error(postgres, make_vm):
    vm = make_vm([fs.mountpoint for fs in postgres.filesystems], on_failure_freeze=False)
    workload(vm, postgres, workload_name="oracle")
    backup = vm.backup(hold_s=0)
    assert (backup.status["status"], backup.status["code"]) == ("error", 503), backup.message
    workload(vm, postgres, command_path="/nonexistent")
    backup = vm.backup(hold_s=0, seq=1)
    assert (backup.status["status"], backup.status["code"]) == ("error", 501), backup.message
    assert "psql" in backup.message
    os.chmod(vm.workload_conf, 0o666)
    backup = vm.backup(hold_s=0, seq=2)
    assert (backup.status["status"], backup.status["code"]) == ("error", 501), backup.message
    assert "writable by group or others" in backup.message


def test_a_tablespace_on_a_third_file_system_must_be_frozen_too(postgres, loops, make_vm):
    data, wal = postgres.filesystems
    space = loops.make("pg-space")
    location = os.path.join(space.mountpoint, "ts")
    os.makedirs(location)
    os.chown(location, *postgres_ids())
    postgres.sql("CREATE TABLESPACE fast LOCATION '%s'; CREATE TABLE hot (id INT) TABLESPACE fast;" % location)
    vm = make_vm([data.mountpoint, wal.mountpoint])
    workload(vm, postgres)
    assert vm.diagnose()["workload"]["directories"]["tablespace fast"] == location
    backup = vm.backup(hold_s=0)
    assert (backup.status["code"], backup.consistency) == (1, 1), backup.message
    assert "tablespace fast %s" % location in backup.message
    vm = make_vm([data.mountpoint, wal.mountpoint, space.mountpoint])
    workload(vm, postgres)
    backup = vm.backup(hold_s=0, seq=1)
    assert (backup.status["code"], backup.consistency) == (0, 2), backup.message
    assert "1 tablespace(s)" in backup.message
    postgres.sql("DROP TABLE hot; DROP TABLESPACE fast;")


def postgres_ids():
    import pwd

    pw = pwd.getpwnam("postgres")
    return pw.pw_uid, pw.pw_gid

"""workload.conf and credString handling, without a server (runs as any user): every bad input is a coded
error that never quotes the credential, and the credential only ever goes to the client's own option file
or environment."""

import os

import pytest
from vmsnapshot import codes, config, workload, workload_mysql, workload_postgres

from harness.trusteddir import TrustedDir

SECRET = "pa ss'w\"o\\rd"


@pytest.fixture
def trusted():
    """A directory whose chain up to / the runtime trusts (not below /tmp), as /etc/azure is."""
    import pathlib

    try:
        made = TrustedDir()
        path = made.__enter__()
    except RuntimeError as e:
        print("SKIP: %s" % e)
        pytest.skip(str(e))
    try:
        yield pathlib.Path(path)
    finally:
        made.__exit__(None, None, None)


def conf(directory, text, mode=0o600):
    path = directory / "workload.conf"
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


def load(path):
    return workload.load(path, owner_uid=os.geteuid())


def test_missing_file_or_empty_name_means_no_database_branch(trusted):
    assert load(str(trusted / "absent.conf")) is None
    assert load(conf(trusted, "[workload]\nworkload_name =\ncredString = -u x\n")) is None
    assert load(conf(trusted, "[logbackup]\nx = 1\n")) is None


def test_a_complete_file(trusted):
    wl = load(
        conf(
            trusted,
            "[workload]\nworkload_name = MariaDB\ncommand_path = /opt/db/bin\n"
            "credString = -u backup -p%s\nlinux_user = mysql\ntimeout = 45\nlock_wait = 5\n" % SECRET,
        )
    )
    assert (wl.engine, wl.command_path, wl.linux_user, wl.timeout, wl.lock_wait) == (
        "mysql",
        "/opt/db/bin",
        "mysql",
        45.0,
        5.0,
    )
    assert SECRET not in repr(wl.to_dict())


@pytest.mark.parametrize(
    "text,code,words",
    [
        ("[workload]\nworkload_name = oracle\n", 503, "not supported"),
        ("[workload]\nworkload_name = mysql\ntimeout = soon\n", 501, "timeout"),
        ("[workload]\nworkload_name = mysql\ntimeout = 0\n", 501, "timeout"),
        ("[workload]\nworkload_name = mysql\nipc_folder = /nonexistent/ipc\n", 507, "ipc_folder"),
        (
            "[workload]\nworkload_name = mysql\ncredString = -p" + SECRET + "\n  continued\n[bad\n",
            501,
            "not a valid INI",
        ),
    ],
)
def test_bad_files_are_coded_errors_without_the_secret(trusted, text, code, words):
    with pytest.raises(workload.WorkloadError) as e:
        load(conf(trusted, text))
    assert e.value.code == code and words in e.value.message
    assert SECRET not in e.value.message


def test_unsafe_ownership_or_permissions_are_refused(trusted):
    path = conf(trusted, "[workload]\nworkload_name = mysql\n", 0o622)
    with pytest.raises(workload.WorkloadError) as e:
        load(path)
    assert e.value.code == 501 and "writable by group or others" in e.value.message
    os.chmod(path, 0o600)
    with pytest.raises(workload.WorkloadError) as e:
        workload.load(path, owner_uid=os.geteuid() + 1)
    assert e.value.code == 501 and "owned by uid" in e.value.message


def test_mysql_credentials_go_to_the_option_file():
    options, extra = workload_mysql.parse_credentials(
        "-u backup '-p%s' --host=db1 -P 3307 --socket /run/m.sock --ssl-ca=/ca.pem --defaults-extra-file=/etc/x.cnf"
        % SECRET.replace("'", "'\\''")
    )
    assert options == {
        "user": "backup",
        "password": SECRET,
        "host": "db1",
        "port": "3307",
        "socket": "/run/m.sock",
        "include": "/etc/x.cnf",
    }
    assert extra == ["--ssl-ca=/ca.pem"]
    text = workload_mysql.option_file_text(options)
    assert text.startswith("!include /etc/x.cnf\n[client]\n")
    assert 'password="pa ss\'w\\"o\\\\rd"' in text


# `-p secret` makes the client prompt, then take `secret` as a database name.
@pytest.mark.parametrize("cred", ["-u backup -p", "--password", "-u backup -p secret"])
def test_mysql_password_prompts_are_refused(cred):
    with pytest.raises(workload.WorkloadError) as e:
        workload_mysql.parse_credentials(cred)
    assert e.value.code == 501 and "prompt" in e.value.message


def test_postgres_credentials_go_to_the_environment():
    env = workload_postgres.parse_credentials(
        "-h /var/run/postgresql -p 5433 -U backup -d app 'password=%s'" % SECRET.replace("'", "'\\''")
    )
    assert env == {
        "PGHOST": "/var/run/postgresql",
        "PGPORT": "5433",
        "PGUSER": "backup",
        "PGDATABASE": "app",
        "PGPASSWORD": SECRET,
    }
    for bad in ("-W", "--no-such-option", "-h 'unbalanced"):
        with pytest.raises(workload.WorkloadError) as e:
            workload_postgres.parse_credentials(bad)
        assert e.value.code == 501


def test_vmbackup_conf_keys(tmp_path):
    path = tmp_path / "vmbackup.conf"
    path.write_text("[SnapshotThread]\nOnAppFailureDoFsFreeze = False\n[vmsnapshot]\nWorkloadConfigPath = /x/w.conf\n")
    cfg = config.load(str(path))
    assert (cfg.workload_config, cfg.on_app_failure_do_fs_freeze) == ("/x/w.conf", False)
    cfg = config.defaults()
    assert (cfg.workload_config, cfg.on_app_failure_do_fs_freeze) == ("/etc/azure/workload.conf", True)


class Cfg(object):
    def __init__(self, path, freeze_on_failure=True, timeout=30.0):
        self.workload_config, self.on_app_failure_do_fs_freeze, self.timeout = path, freeze_on_failure, timeout


def test_step_outcomes(trusted):
    none = workload.WorkloadStep(Cfg(str(trusted / "absent"))).enter(["/x"])
    assert none.outcome(codes.CONSISTENCY_FS) == (codes.CONSISTENCY_FS, "")
    bad = conf(trusted, "[workload]\nworkload_name = oracle\n")
    step = workload.WorkloadStep(Cfg(bad)).enter(["/x"])
    # A root-owned file is required; as another user the ownership check fails first (also 501).
    assert step.problem_code in (501, 503) and step.abort_code is None
    consistency, detail = step.outcome(codes.CONSISTENCY_APP)
    assert consistency == codes.CONSISTENCY_FS and "database step failed" in detail
    strict = workload.WorkloadStep(Cfg(bad, freeze_on_failure=False)).enter(["/x"])
    assert strict.abort_code in (501, 503)


def test_diagnose_names_the_problem(trusted):
    doc = workload.describe(Cfg(conf(trusted, "[workload]\nworkload_name = mysql\ncommand_path = /nonexistent\n")))
    assert doc["configured"] and doc["ok"] is False and doc["code"] == 501


def test_a_file_or_client_reachable_by_others_is_refused(trusted, tmp_path):
    """Whoever can swap workload.conf or the client binary runs code as linux_user (root by default)."""
    with pytest.raises(workload.WorkloadError) as e:
        load(conf(tmp_path, "[workload]\nworkload_name = mysql\n"))  # below /tmp: others can write there
    assert e.value.code == 501 and "refused" in e.value.message
    bindir = trusted / "bin"
    bindir.mkdir()
    client = bindir / "psql"
    client.write_text("#!/bin/sh\n")
    os.chmod(client, 0o755)
    wl = load(conf(trusted, "[workload]\nworkload_name = postgres\ncommand_path = %s\n" % bindir))
    assert workload.find_client(wl, ("psql",), owner_uid=os.geteuid()) == str(client)
    os.chmod(bindir, 0o777)
    with pytest.raises(workload.WorkloadError) as e:
        workload.find_client(wl, ("psql",), owner_uid=os.geteuid())
    assert e.value.code == 501 and "writable by group or others" in e.value.message


@pytest.mark.skipif(os.geteuid() != 0, reason="the runtime trusts a root-owned workload.conf only")
def test_diagnose_warns_when_the_lock_would_not_outlast_the_freeze_cap(trusted):
    path = conf(trusted, "[workload]\nworkload_name = mariadb\ncommand_path = /nonexistent\ntimeout = 20\n")
    assert "loses the lock" in workload.describe(Cfg(path, timeout=30.0))["warning"]
    assert "warning" not in workload.describe(Cfg(path, timeout=10.0))

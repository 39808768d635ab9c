"""Real PostgreSQL and MariaDB servers (Debian packages) on loop-mounted file systems made by the caller.

Servers listen on a Unix socket only (listen_addresses='' / skip-networking); their sockets, pid files and
logs live in `rundir` on the unfrozen root file system, so a frozen data file system never blocks the
harness. A bank schema (accounts with a constant total, a ledger row per transfer) is what
harness/dbload.py loads and what verify_bank() checks after a restore.
"""

import glob
import os
import shutil
import subprocess
import time

from harness.loopfs import LoopFs

ACCOUNTS = 20
INITIAL_BALANCE = 1000
PG_PASSWORD = "pg-Secret-4711"
MY_BACKUP_PASSWORD = "my Secret'4711"


def _run(cmd, timeout=60, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd[:3]), p.returncode, (p.stderr or p.stdout)[-800:]))
    return p.stdout


def postgres_bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    return os.path.dirname(found[-1]) if found else None


def skip_reason():
    """Why the database tests cannot run here, or None."""
    from harness import loopfs

    reason = loopfs.skip_reason(("ext4",))
    if reason:
        return reason
    missing = [
        b
        for b in ("mariadbd", "mariadb-install-db", "mariadb", "mariadb-check", "psql", "runuser")
        if not shutil.which(b, path="/usr/sbin:/usr/bin:/sbin:/bin")
    ]
    if postgres_bindir() is None:
        missing.append("postgresql server")
    return "missing: %s (make db-servers installs them as root)" % ", ".join(missing) if missing else None


class ImageFs(LoopFs):
    """An existing file-system image (a copy taken while frozen) attached and mounted at `mountpoint`."""

    def __init__(self, image, mountpoint):
        LoopFs.__init__(self, os.path.dirname(image), "ext4")
        self.image, self.mountpoint = image, mountpoint

    def create(self):
        os.makedirs(self.mountpoint, exist_ok=True)
        self.device = _run(["losetup", "-f", "--show", self.image]).strip()
        _run(["mount", self.device, self.mountpoint])
        self.mounted = True
        return self


class MariaDb(object):
    engine = "mariadb"

    def __init__(self, datadir, rundir, server_id=1, port=None):
        """port: None = Unix socket only; a number = also TCP on 127.0.0.1 (a replication source)."""
        self.datadir, self.rundir = datadir, rundir
        self.socket = os.path.join(rundir, "mysqld.sock")
        self.server_id, self.port = server_id, port
        self.proc = None

    def install(self):
        os.makedirs(self.datadir, exist_ok=True)
        os.makedirs(self.rundir, exist_ok=True)
        shutil.chown(self.datadir, "mysql", "mysql")
        shutil.chown(self.rundir, "mysql", "mysql")
        _run(
            [
                "mariadb-install-db",
                "--no-defaults",
                "--datadir=" + self.datadir,
                "--user=mysql",
                "--skip-test-db",
                "--auth-root-authentication-method=socket",
                "--innodb-log-file-size=16M",
            ],
            timeout=120,
        )
        return self

    def start(self):
        network = ["--bind-address=127.0.0.1", "--port=%d" % self.port] if self.port else ["--skip-networking"]
        self.proc = subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                "--datadir=" + self.datadir,
                "--user=mysql",
                "--socket=" + self.socket,
                "--pid-file=" + os.path.join(self.rundir, "mysqld.pid"),
            ]
            + network
            + [
                "--log-error=" + os.path.join(self.rundir, "error.log"),
                "--tmpdir=" + self.rundir,
                "--log-bin=" + os.path.join(self.datadir, "binlog"),
                "--server-id=%d" % self.server_id,
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=16M",
                "--innodb-flush-log-at-trx-commit=1",
                "--sync-binlog=1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mariadbd exited %s: %s" % (self.proc.returncode, self.log_tail()))
            if (
                subprocess.run(
                    ["mariadb-admin", "--no-defaults", "-S", self.socket, "-uroot", "ping"], capture_output=True
                ).returncode
                == 0
            ):
                return self
            time.sleep(0.2)
        raise RuntimeError("mariadbd did not start: %s" % self.log_tail())

    def log_tail(self):
        try:
            with open(os.path.join(self.rundir, "error.log")) as f:
                return f.read()[-1500:]
        except OSError:
            return ""

    def client_argv(self):
        return [
            "mariadb",
            "--no-defaults",
            "-S",
            self.socket,
            "-uroot",
            "--batch",
            "--skip-column-names",
            "--unbuffered",
        ]

    def client_env(self):
        return dict(os.environ)

    def sql(self, text, timeout=60):
        return _run(self.client_argv(), input=text, timeout=timeout)

    def stop(self):
        if self.proc is None:
            return
        subprocess.run(
            ["mariadb-admin", "--no-defaults", "-S", self.socket, "-uroot", "shutdown"], capture_output=True, timeout=60
        )
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def create_bank(self):
        self.sql(
            "CREATE DATABASE bank; CREATE TABLE bank.accounts (id INT PRIMARY KEY, bal BIGINT NOT NULL) "
            "ENGINE=InnoDB; CREATE TABLE bank.ledger (seq BIGINT PRIMARY KEY, src INT, dst INT, amount INT) "
            "ENGINE=InnoDB; INSERT INTO bank.accounts VALUES %s;"
            % ",".join("(%d,%d)" % (i, INITIAL_BALANCE) for i in range(ACCOUNTS))
        )
        # The account the extension uses: a password (so the option-file path is exercised), the documented
        # privileges only (RELOAD for FLUSH TABLES WITH READ LOCK, READ_ONLY ADMIN for read_only, BINLOG
        # MONITOR for the binary log position, REPLICATION SLAVE ADMIN to stop/start replicas).
        self.sql(
            "CREATE USER backup@localhost IDENTIFIED BY '%s'; GRANT RELOAD, READ_ONLY ADMIN, BINLOG MONITOR, "
            "REPLICATION SLAVE ADMIN ON *.* TO backup@localhost;" % MY_BACKUP_PASSWORD.replace("'", "''")
        )
        return self

    def replicate_from(self, source, password="repl-Secret"):
        """Make this (fresh) server a replica of `source` (TCP on 127.0.0.1) from its first binary log."""
        source.sql(
            "CREATE USER repl@'127.0.0.1' IDENTIFIED BY '%s'; GRANT REPLICATION SLAVE ON *.* TO "
            "repl@'127.0.0.1';" % password
        )
        self.sql(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='%s', "
            "MASTER_LOG_FILE='binlog.000001', MASTER_LOG_POS=4; START SLAVE;" % (source.port, password)
        )
        return self

    def check_integrity(self):
        return _run(
            ["mariadb-check", "--no-defaults", "-S", self.socket, "-uroot", "--all-databases", "--extended"],
            timeout=300,
        )

    def query_rows(self, sql):
        return [line.split("\t") for line in self.sql(sql).splitlines() if line]


class Postgres(object):
    engine = "postgres"

    def __init__(self, datadir, waldir, rundir):
        self.bindir = postgres_bindir()
        self.datadir, self.waldir, self.rundir = datadir, waldir, rundir
        self.started = False

    def _as_postgres(self, argv, timeout=120, **kw):
        return _run(["runuser", "-u", "postgres", "--"] + argv, timeout=timeout, cwd="/", **kw)

    def install(self):
        for d in (os.path.dirname(self.datadir), os.path.dirname(self.waldir), self.rundir):
            os.makedirs(d, exist_ok=True)
            shutil.chown(d, "postgres", "postgres")
        pwfile = os.path.join(self.rundir, "pw")
        with open(pwfile, "w") as f:
            f.write(PG_PASSWORD + "\n")
        shutil.chown(pwfile, "postgres", "postgres")
        try:
            self._as_postgres(
                [
                    os.path.join(self.bindir, "initdb"),
                    "-D",
                    self.datadir,
                    "--waldir=" + self.waldir,
                    "-U",
                    "postgres",
                    "--pwfile=" + pwfile,
                    "--auth-local=scram-sha-256",
                    "-k",
                    "--no-instructions",
                ]
            )
        finally:
            os.unlink(pwfile)
        return self

    def start(self):
        opts = "-c listen_addresses='' -c unix_socket_directories=%s -c fsync=on -c shared_buffers=16MB" % self.rundir
        try:
            self._as_postgres(
                [
                    os.path.join(self.bindir, "pg_ctl"),
                    "-D",
                    self.datadir,
                    "-o",
                    opts,
                    "-l",
                    os.path.join(self.rundir, "server.log"),
                    "-w",
                    "-t",
                    "120",
                    "start",
                ],
                timeout=150,
            )
        except RuntimeError as e:
            raise RuntimeError("%s; server log: %s" % (e, self.log_tail())) from e
        self.started = True
        return self

    def clear_stale_pid(self):
        """A restored disk carries the old VM's postmaster.pid. PostgreSQL refuses to start while a process
        with that pid exists; here the stopped original can linger as a zombie (this machine's init does
        not reap it), so drop the file when that pid is not a running postgres, as an operator would."""
        path = os.path.join(self.datadir, "postmaster.pid")
        try:
            with open(path) as f:
                pid = int(f.readline())
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                return
        except (OSError, ValueError, IndexError):
            pass
        if os.path.exists(path):
            os.unlink(path)

    def log_tail(self):
        try:
            with open(os.path.join(self.rundir, "server.log")) as f:
                return f.read()[-1500:]
        except OSError:
            return ""

    def stop(self, mode="fast"):
        if self.started:
            self._as_postgres([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-m", mode, "-w", "stop"])
            self.started = False

    def client_argv(self):
        return [
            "psql",
            "-X",
            "-q",
            "-A",
            "-t",
            "-F",
            "\t",
            "-h",
            self.rundir,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
        ]

    def client_env(self):
        return dict(os.environ, PGPASSWORD=PG_PASSWORD)

    def sql(self, text, timeout=60):
        return _run(self.client_argv(), input=text, timeout=timeout, env=self.client_env())

    def create_bank(self):
        self.sql(
            "CREATE TABLE accounts (id INT PRIMARY KEY, bal BIGINT NOT NULL); CREATE TABLE ledger (seq BIGINT "
            "PRIMARY KEY, src INT, dst INT, amount INT); INSERT INTO accounts VALUES %s;"
            % ",".join("(%d,%d)" % (i, INITIAL_BALANCE) for i in range(ACCOUNTS))
        )
        self.sql("CREATE EXTENSION amcheck;")
        return self

    def check_integrity(self):
        return _run(
            [os.path.join(self.bindir, "pg_amcheck"), "-h", self.rundir, "-U", "postgres", "--all", "--heapallindexed"],
            timeout=300,
            env=self.client_env(),
        )

    def query_rows(self, sql):
        return [line.split("\t") for line in self.sql(sql).splitlines() if line]


def verify_bank(server, acked):
    """(missing acknowledged seqs, balance total, expected total, ledger rows) of a (restored) server."""
    prefix = "bank." if server.engine == "mariadb" else ""
    total = int(server.query_rows("SELECT SUM(bal) FROM %saccounts;" % prefix)[0][0])
    present = set(int(r[0]) for r in server.query_rows("SELECT seq FROM %sledger;" % prefix))
    missing = sorted(set(acked) - present)
    return missing, total, ACCOUNTS * INITIAL_BALANCE, len(present)

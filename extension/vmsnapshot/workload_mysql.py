"""MariaDB / MySQL quiescing: FLUSH TABLES WITH READ LOCK + read_only on a live client session.

The lock lives as long as one `mysql`/`mariadb` client session, driven over pipes (no shell, no pty): it is
taken before the freeze and released right after the thaw. Three things bound its life, whatever happens:
* the client reads its statements from the job's pipe, so when the job dies (SIGKILL included) the client
  sees end-of-file, exits, and the server drops the lock with the session;
* a watchdog process in its own session (workload_watchdog.py) kills the client after `timeout` seconds
  and puts read_only and replication back as they were;
* `lock_wait_timeout` bounds the wait for the lock itself (a long transaction holding a table), so a
  pending FLUSH TABLES WITH READ LOCK never stalls the application for long.

The credential goes into a 0600 option file (`--defaults-extra-file`) owned by linux_user in a private
directory, removed as soon as the session is connected; it is never on a command line.
"""

import json
import logging
import os
import select
import shutil
import signal
import sys
import tempfile
import time

from . import codes, subp
from .redact import add_secret
from .workload import RunAs, WorkloadError, find_client, parse_options, scrub

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
STATEMENT_TIMEOUT_S = 30.0
_OPTION_KEYS = (
    ("user", "-u", ("--user",)),
    ("password", "-p", ("--password",)),
    ("host", "-h", ("--host",)),
    ("port", "-P", ("--port",)),
    ("socket", "-S", ("--socket",)),
    ("include", None, ("--defaults-file", "--defaults-extra-file")),
)


def parse_credentials(cred_string):
    """({option: value} for the option file, [other client arguments]) from credString."""
    return parse_options(cred_string, _OPTION_KEYS, ("-p", "--password"), "write -pPASSWORD or --password=PASSWORD")


def option_file_text(options):
    lines = (["!include %s" % options["include"]] if "include" in options else []) + ["[client]"]
    for key in ("user", "password", "host", "port", "socket"):
        if key in options:
            value = options[key].replace("\\", "\\\\").replace('"', '\\"')
            lines.append('%s="%s"' % (key, value))
    return "\n".join(lines) + "\n"


def classify(stderr_text, default_code):
    """A client error message -> the 5xx code that says what went wrong."""
    t = stderr_text
    if "ERROR 1045" in t or "ERROR 1227" in t or "ERROR 1044" in t or "Access denied" in t:
        return codes.WORKLOAD_AUTH_MISSING
    if any(("ERROR %d" % n) in t for n in (2002, 2003, 2005, 2006, 2013)) or "Can't connect" in t:
        return codes.WORKLOAD_CONNECTION_ERROR
    if "ERROR 1205" in t or "Lock wait timeout" in t:
        return codes.WORKLOAD_QUIESCE_TIMEOUT
    return default_code


class ClientSession(object):
    """One client process in batch mode; query() sends statements and reads rows up to a marker line."""

    def __init__(self, argv, env, preexec, secrets):
        self.secrets = secrets
        self.proc = subp.start_session(argv, env=env, preexec_fn=preexec)
        self._buf = b""
        self._n = 0

    @property
    def alive(self):
        return self.proc.poll() is None

    def error_text(self):
        if not subp.wait(self.proc, 2):
            self.kill()
        err = self.proc.stderr.read().decode("utf-8", "replace")
        lines = [line for line in err.splitlines() if line.strip() and not line.startswith("-----")]
        return scrub(" ".join(lines[-2:]), self.secrets)[:300] or "the client exited %s" % self.proc.returncode

    def query(self, sql, timeout_s, default_code=codes.WORKLOAD_QUIESCE_ERROR):
        """Rows (lists of column strings) of the statements in `sql`; WorkloadError when the session fails."""
        self._n += 1
        marker = "vmsnapshot-done-%d" % self._n
        try:
            self.proc.stdin.write(("%s\nSELECT '%s';\n" % (sql.strip(), marker)).encode("utf-8"))
            self.proc.stdin.flush()
        except (IOError, OSError):
            pass  # the client is gone: its error is read below
        rows, fd, deadline = [], self.proc.stdout.fileno(), time.monotonic() + timeout_s
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                text = line.decode("utf-8", "replace")
                if text == marker:
                    return rows
                rows.append(text.split("\t"))
            left = deadline - time.monotonic()
            ready = select.select([fd], [], [], max(0.0, left))[0] if left > 0 else []
            if not ready:
                self.kill()
                raise WorkloadError(
                    codes.WORKLOAD_QUIESCE_TIMEOUT,
                    "no answer from the database within %.0f s (the session was closed)" % timeout_s,
                )
            chunk = os.read(fd, 65536)
            if not chunk:
                text = self.error_text()
                raise WorkloadError(classify(text, default_code), text)
            self._buf += chunk

    def kill(self):
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
            self.proc.wait()

    def close(self):
        """End the session: end-of-file on its input (the server drops its locks), killed if it lingers."""
        try:
            self.proc.stdin.close()
        except (IOError, OSError):
            pass
        if not subp.wait(self.proc, 5):
            self.kill()
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


def version_tuple(text):
    digits = []
    for part in text.split("-")[0].split(".")[:3]:
        num = "".join(ch for ch in part if ch.isdigit())
        digits.append(int(num) if num else 0)
    return tuple(digits + [0] * (3 - len(digits)))


class MysqlQuiescer(object):
    """FLUSH TABLES WITH READ LOCK + read_only held across the freeze by one live client session."""

    def __init__(self, wl):
        self.wl = wl
        self.run_as = RunAs(wl.linux_user)
        self.client = find_client(wl, ("mariadb", "mysql") if wl.name == "mariadb" else ("mysql", "mariadb"))
        self.options, self.extra = parse_credentials(wl.cred_string)
        self.secrets = [self.options.get("password", "")]
        for secret in self.secrets:  # masked in every log line, status and event from now on
            add_secret(secret)
        self.session = None
        self.watchdog = None
        self.engine = "MySQL"
        self.version = ""
        self.replica = False
        self.read_only_before = "0"
        self.binlog = None
        self.locked_at = None
        self.held_ms = None
        self.consistency_problem = None
        self._dir = None

    # -- the client -----------------------------------------------------------------------------------
    def _option_file(self):
        """A 0600 option file owned by linux_user in a 0700 directory of its own (on tmpfs when possible)."""
        base = "/run" if os.path.isdir("/run") and os.access("/run", os.W_OK) else None
        self._dir = tempfile.mkdtemp(prefix="vmsnapshot-db-", dir=base)
        path = os.path.join(self._dir, "client.cnf")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, option_file_text(self.options).encode("utf-8"))
            if self.run_as.switch:
                os.fchown(fd, self.run_as.uid, self.run_as.gid)
        finally:
            os.close(fd)
        if self.run_as.switch:
            os.chown(self._dir, self.run_as.uid, self.run_as.gid)
        return path

    def _remove_option_file(self):
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def argv(self, option_file):
        return [
            self.client,
            "--defaults-extra-file=" + option_file,
            "--batch",
            "--skip-column-names",
            "--unbuffered",
            "--connect-timeout=%d" % CONNECT_TIMEOUT_S,
        ] + self.extra

    def _connect(self):
        """A session whose first round trip succeeded; the option file is gone when this returns."""
        try:
            path = self._option_file()
            session = ClientSession(self.argv(path), self.run_as.env(), self.run_as.preexec(), self.secrets)
        except OSError as e:
            self._remove_option_file()
            raise WorkloadError(codes.WORKLOAD_PRE_ERROR, "cannot start %s: %s" % (self.client, e.strerror or e))
        try:
            rows = session.query(
                "SELECT VERSION(), @@GLOBAL.read_only;", CONNECT_TIMEOUT_S + 5, codes.WORKLOAD_CONNECTION_ERROR
            )
        except WorkloadError:
            session.kill()
            raise
        finally:
            self._remove_option_file()
        self.version, self.read_only_before = rows[0][0], rows[0][1]
        self.engine = "MariaDB" if "mariadb" in self.version.lower() else "MySQL"
        return session

    def _mysql_84(self):
        return self.engine == "MySQL" and version_tuple(self.version) >= (8, 4, 0)

    def _replica_statements(self):
        """(stop, start): what pauses and resumes replication on this server."""
        if self.engine == "MariaDB":
            return "STOP ALL SLAVES;", "START ALL SLAVES;"
        if version_tuple(self.version) >= (8, 0, 22):
            return "STOP REPLICA;", "START REPLICA;"
        return "STOP SLAVE;", "START SLAVE;"

    def _replicating(self, session):
        """Whether replication is running here (a replica whose replication an operator stopped stays
        stopped: it is neither stopped nor started by the job)."""
        if self.engine == "MariaDB":  # running applier threads, readable without any privilege
            rows = session.query("SHOW GLOBAL STATUS LIKE 'Slaves_running';", STATEMENT_TIMEOUT_S)
            return bool(rows) and rows[0][-1] not in ("0", "")
        show = "SHOW REPLICA STATUS;" if version_tuple(self.version) >= (8, 0, 22) else "SHOW SLAVE STATUS;"
        return bool(session.query(show, STATEMENT_TIMEOUT_S))

    # -- the interface --------------------------------------------------------------------------------
    def check(self):
        """diagnose: connect, read version, role and privileges; never locks anything."""
        session = self._connect()
        try:
            grants = " ".join(
                r[0] for r in session.query("SHOW GRANTS;", STATEMENT_TIMEOUT_S, codes.WORKLOAD_AUTH_MISSING)
            )
            replica = self._replicating(session)
        finally:
            session.close()
        read_only_admin = ("SUPER", "READ_ONLY ADMIN", "READ ONLY ADMIN", "SYSTEM_VARIABLES_ADMIN")
        enough = "ALL PRIVILEGES" in grants or ("RELOAD" in grants and any(p in grants for p in read_only_admin))
        return {
            "engine": self.engine,
            "version": self.version,
            "client": self.client,
            "reachable": True,
            "role": "replica (replicating)" if replica else "primary",
            "privileges_sufficient": enough,
            "would_do": "FLUSH TABLES WITH READ LOCK + SET GLOBAL read_only=ON across the freeze",
        }

    def prepare(self, selected_mountpoints):
        self.session = self._connect()
        self.watchdog = Watchdog(self)
        self.watchdog.start()

    def quiesce(self):
        s = self.session
        stop = self._replica_statements()[0]
        self.replica = self._replicating(s)
        if self.replica:
            self.watchdog.send("replica")  # from now on, undoing includes restarting replication
            s.query(stop, STATEMENT_TIMEOUT_S)
        s.query(
            "SET SESSION lock_wait_timeout = %d; FLUSH TABLES WITH READ LOCK;" % max(1, int(self.wl.lock_wait)),
            self.wl.lock_wait + 5,
        )
        self.locked_at = time.monotonic()
        # FLUSH ENGINE LOGS writes InnoDB's log buffer to disk: with innodb_flush_log_at_trx_commit 0 or 2,
        # commits acknowledged before the lock would otherwise be missing from the snapshot.
        s.query("SET GLOBAL read_only = ON; FLUSH ENGINE LOGS;", STATEMENT_TIMEOUT_S)
        rows = s.query("SHOW BINARY LOG STATUS;" if self._mysql_84() else "SHOW MASTER STATUS;", STATEMENT_TIMEOUT_S)
        if rows and len(rows[0]) >= 2:
            self.binlog = "%s:%s" % (rows[0][0], rows[0][1])
            if len(rows[0]) >= 5 and rows[0][4]:
                self.binlog += " gtid %s" % rows[0][4].replace("\\n", "")
        if self.engine == "MariaDB":
            gtid = s.query("SELECT @@GLOBAL.gtid_binlog_pos;", STATEMENT_TIMEOUT_S)
            if self.binlog and gtid and gtid[0][0]:
                self.binlog += " gtid %s" % gtid[0][0]
        log.info(
            "%s %s locked (FLUSH TABLES WITH READ LOCK, read_only=ON%s); binary log position %s",
            self.engine,
            self.version,
            ", replication stopped" if self.replica else "",
            self.binlog or "none (binary log disabled)",
        )

    def release(self):
        """Right after the thaw. A session that died before this point means the lock did not cover the
        whole frozen window: the job is then only file-system consistent."""
        if self.session is None or self.locked_at is None:
            return ""
        s, start = self.session, self._replica_statements()[1]
        try:
            s.query(
                "SET GLOBAL read_only = %s; UNLOCK TABLES;" % ("ON" if self.read_only_before == "1" else "OFF"),
                STATEMENT_TIMEOUT_S,
                codes.WORKLOAD_POST_ERROR,
            )
        except WorkloadError as e:
            self.held_ms = None
            raise WorkloadError(
                codes.WORKLOAD_STATUS_CHANGED,
                "the %s session holding the lock ended before the "
                "thaw (watchdog timeout %.0f s or server side): %s" % (self.engine, self.wl.timeout, e.message),
            )
        self.held_ms = (time.monotonic() - self.locked_at) * 1000
        if self.replica:
            s.query(start, STATEMENT_TIMEOUT_S, codes.WORKLOAD_POST_ERROR)
        self.watchdog.done()
        return (
            "%s %s: tables locked (FLUSH TABLES WITH READ LOCK, read_only) for %.0f ms across the freeze%s, "
            "binary log position %s"
            % (
                self.engine,
                self.version,
                self.held_ms,
                ", replication stopped and restarted" if self.replica else "",
                self.binlog or "none (binary log disabled)",
            )
        )

    def close(self):
        if self.session is not None:
            self.session.close()  # end-of-file: the server drops any lock still held
        if self.watchdog is not None:
            self.watchdog.close()  # undoes read_only/replication unless release() completed
        self._remove_option_file()


class Watchdog(object):
    """Starts workload_watchdog in its own session; it undoes the quiesce after `timeout` or when the job
    dies, unless told `done` first. The credential reaches it over its stdin pipe, never argv or disk."""

    def __init__(self, quiescer):
        self.q = quiescer
        self.proc = None

    def start(self):
        q = self.q
        restore = "SET GLOBAL read_only = %s;" % ("ON" if q.read_only_before == "1" else "OFF")
        self.proc = subp.start_session(
            [sys.executable, "-B", "-s", "-m", "vmsnapshot.workload_watchdog"],
            env=subp.runtime_env(),
            new_session=True,
            stderr=False,
        )
        spec = {
            "deadline_s": q.wl.timeout,
            "client_pid": q.session.proc.pid,
            "client": q.client,
            "argv_tail": q.argv("")[2:],
            "options": option_file_text(q.options),
            "uid": q.run_as.uid,
            "gid": q.run_as.gid,
            "env": q.run_as.env(),
            "undo": restore,
            "undo_replica": q._replica_statements()[1],
        }
        try:
            self.proc.stdin.write((json.dumps(spec) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
            ready = select.select([self.proc.stdout], [], [], 10)[0]
            if not ready or self.proc.stdout.readline().strip() != b"armed":
                raise OSError("the watchdog did not arm")
        except (IOError, OSError) as e:
            self.close()
            raise WorkloadError(codes.WORKLOAD_PRE_ERROR, "database watchdog: %s" % e)

    def send(self, word):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.write(word.encode("ascii") + b"\n")
                self.proc.stdin.flush()
            except (IOError, OSError):
                pass

    def done(self):
        """The quiesce was undone normally: the watchdog exits without touching anything."""
        self.send("done")

    def close(self):
        """Without done() first, closing the pipe makes the watchdog undo the quiesce now."""
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
        except (IOError, OSError):
            pass
        if not subp.wait(self.proc, STATEMENT_TIMEOUT_S):
            subp.kill_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc.stdout.close()
        self.proc = None

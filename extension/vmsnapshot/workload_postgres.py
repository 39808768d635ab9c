"""PostgreSQL 10 to 17 quiescing: a CHECKPOINT before the freeze, and a check that every file system holding
the cluster is frozen together.

PostgreSQL's documentation: a simultaneous snapshot of every file system holding the data directory, the
tablespaces and the WAL is crash-consistent, and restores by ordinary crash recovery. So nothing has to be
held across the freeze: the CHECKPOINT just makes that recovery short. The removed exclusive backup functions
(pg_start_backup/pg_stop_backup, gone in PostgreSQL 15) are never called, and the non-exclusive ones add
nothing to a simultaneous snapshot. What does matter is "simultaneous": when the data directory, a tablespace
or the WAL directory (pg_wal may be a symlink to another file system) is on a file system that is not frozen
with the others, the job says so and reports file-system consistency instead of application consistency.

The credential (credString: -h/-p/-U/-d and password=...) goes into libpq's environment (PGHOST, PGPORT,
PGUSER, PGDATABASE, PGPASSWORD), never on the command line; psql runs as linux_user with no shell.
"""

import logging
import os
import time

from . import codes, subp
from .redact import add_secret
from .workload import RunAs, WorkloadError, find_client, parse_options, scrub

log = logging.getLogger(__name__)

STATEMENT_TIMEOUT_S = 60.0
_ENV_KEYS = (
    ("PGHOST", "-h", ("--host",)),
    ("PGPORT", "-p", ("--port",)),
    ("PGUSER", "-U", ("--username",)),
    ("PGDATABASE", "-d", ("--dbname",)),
    ("PGPASSWORD", None, ("--password",)),
)
_CONNINFO_KEYS = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "dbname": "PGDATABASE",
    "password": "PGPASSWORD",
    "sslmode": "PGSSLMODE",
}


def parse_credentials(cred_string):
    """libpq environment variables from credString (psql options, or key=value conninfo words)."""
    env, other = parse_options(cred_string, _ENV_KEYS, ("-W", "--password"), "write password=PASSWORD")
    for word in other:
        key, sep, value = word.partition("=")
        if not (sep and key.lower() in _CONNINFO_KEYS):
            raise WorkloadError(
                codes.WORKLOAD_CONF_ERROR,
                "workload.conf credString: option %r is not understood "
                "for postgres (use -h, -p, -U, -d, password=)" % word[:20],
            )
        env[_CONNINFO_KEYS[key.lower()]] = value
    return env


def classify(text, default_code):
    t = text.lower()
    if (
        "password authentication failed" in t
        or "permission denied" in t
        or "must be superuser" in t
        or "no password supplied" in t
        or "peer authentication failed" in t
        or 'role "' in t
        and "does not exist" in t
    ):
        return codes.WORKLOAD_AUTH_MISSING
    if "could not connect" in t or "connection to server" in t or "no such file or directory" in t:
        return codes.WORKLOAD_CONNECTION_ERROR
    return default_code


class PostgresQuiescer(object):
    engine = "PostgreSQL"

    def __init__(self, wl):
        self.wl = wl
        self.run_as = RunAs(wl.linux_user)
        self.client = find_client(wl, ("psql",))
        self.env = parse_credentials(wl.cred_string)
        self.secrets = [self.env.get("PGPASSWORD", "")]
        for secret in self.secrets:  # masked in every log line, status and event from now on
            add_secret(secret)
        self.version = ""
        self.paths = {}
        self.checkpoint_ms = None
        self.held_ms = None
        self.consistency_problem = None
        self.standby = False

    def query(self, sql, default_code=codes.WORKLOAD_QUIESCE_ERROR, timeout=STATEMENT_TIMEOUT_S):
        """Rows of `sql` (psql unaligned, tuples only, no psqlrc), as linux_user."""
        argv = [self.client, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-F", "\t"]
        env = self.run_as.env(dict(self.env, PGCONNECT_TIMEOUT="10", PGAPPNAME="vmsnapshot"))
        try:
            out, _ = subp.run(
                argv,
                data=sql.encode("utf-8"),
                timeout=min(timeout, self.wl.timeout),
                env=env,
                preexec_fn=self.run_as.preexec(),
            )
        except subp.ProcessError as e:
            lines = e.stderr.decode("utf-8", "replace").strip().splitlines()
            lines = [line for line in lines if "FATAL" in line or "ERROR" in line] or lines[-1:]
            text = scrub(" ".join(lines) or e.describe(), self.secrets)
            code = codes.WORKLOAD_QUIESCE_TIMEOUT if "timed out" in e.reason else classify(text, default_code)
            raise WorkloadError(code, "psql: %s" % " ".join(text.split())[:300])
        return [line.split("\t") for line in out.decode("utf-8", "replace").splitlines() if line]

    def _cluster(self):
        rows = self.query(
            "SELECT current_setting('server_version'), current_setting('data_directory'), "
            "pg_is_in_recovery();\n"
            "SELECT spcname, pg_tablespace_location(oid) FROM pg_tablespace "
            "WHERE pg_tablespace_location(oid) <> '';",
            codes.WORKLOAD_CONNECTION_ERROR,
        )
        self.version, data_dir, recovery = rows[0][0].split()[0], rows[0][1], rows[0][2]
        self.standby = recovery == "t"
        wal = os.path.join(data_dir, "pg_wal" if int(self.version.split(".")[0]) >= 10 else "pg_xlog")
        paths = {"data directory": data_dir, "WAL directory": wal}
        for name, location in rows[1:]:
            paths["tablespace %s" % name] = location
        return paths

    def uncovered(self, selected_mountpoints):
        """[(what, path)] of the cluster's directories that are not on a file system frozen by this job."""
        devs = set()
        for mp in selected_mountpoints or ():
            try:
                devs.add(os.stat(mp).st_dev)
            except OSError:
                pass
        out = []
        for what, path in sorted(self.paths.items()):
            try:
                dev = os.stat(os.path.realpath(path)).st_dev
            except OSError:
                out.append((what, path + " (cannot be inspected)"))
                continue
            if dev not in devs:
                out.append((what, os.path.realpath(path)))
        return out

    def check(self):
        self.paths = self._cluster()
        return {
            "engine": self.engine,
            "version": self.version,
            "client": self.client,
            "reachable": True,
            "role": "standby" if self.standby else "primary",
            "directories": dict((k, os.path.realpath(v)) for k, v in self.paths.items()),
            "would_do": "CHECKPOINT before the freeze; application-consistent when every directory above "
            "is on a frozen file system",
        }

    def prepare(self, selected_mountpoints):
        self.paths = self._cluster()
        missing = self.uncovered(selected_mountpoints)
        if selected_mountpoints is None:
            self.consistency_problem = "PostgreSQL %s: the file systems are not frozen" % self.version
        elif missing:
            self.consistency_problem = (
                "PostgreSQL %s: not every file system of the cluster is frozen "
                "together (%s not in the freeze plan): file-system consistency only"
                % (self.version, ", ".join("%s %s" % m for m in missing))
            )
        if self.consistency_problem:
            log.warning("%s", self.consistency_problem)

    def quiesce(self):
        t = time.monotonic()
        self.query("CHECKPOINT;")
        self.checkpoint_ms = (time.monotonic() - t) * 1000
        log.info(
            "PostgreSQL %s: CHECKPOINT took %.0f ms; cluster directories: %s",
            self.version,
            self.checkpoint_ms,
            ", ".join("%s %s" % (k, os.path.realpath(v)) for k, v in sorted(self.paths.items())),
        )

    def release(self):
        return (
            "PostgreSQL %s%s: CHECKPOINT (%.0f ms) before the freeze; data directory, WAL%s frozen together "
            "(restore: ordinary crash recovery)"
            % (
                self.version,
                " standby" if self.standby else "",
                self.checkpoint_ms or 0.0,
                " and %d tablespace(s)" % (len(self.paths) - 2) if len(self.paths) > 2 else "",
            )
        )

    def close(self):
        pass

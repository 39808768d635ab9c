"""The database branch: /etc/azure/workload.conf and the step that quiesces a database around the freeze.

workload.conf is Microsoft's INI file ([workload] workload_name, command_path, credString, linux_user,
ipc_folder, timeout); its path is `[vmsnapshot] WorkloadConfigPath` in vmbackup.conf. A missing file or an
empty workload_name means no database branch. The file carries a credential, so it must be root-owned and
not writable by group or others (like the script config); credString is never logged, never shown in a
status, and never put on a command line: each engine turns it into the client's own option file or
environment (workload_mysql.py, workload_postgres.py). Like a script, the file and the client binary are
trusted only through root-owned directories nobody else can write, all the way up to `/` (scripts.open_trusted):
anyone who could swap either could run code as linux_user (root by default) or steal the credential.

Order in a job (worker.py): pre scripts/hooks -> database quiesce -> syncfs -> freeze -> snapshots -> thaw
-> database release -> post scripts. The database step never raises into the job: WorkloadStep records
what happened and decides the consistency (application only when the database was quiesced for the whole
frozen window; file-system consistency with the reason otherwise, or a 5xx code when
`OnAppFailureDoFsFreeze = false`).
"""

import logging
import os
import pwd
import shlex
import time

from . import codes
from .script_config import Untrusted, open_trusted
from .script_config import _file_reason as file_reason  # the scripts' rule: regular, owner, not group/world-writable

try:
    import configparser
except ImportError:  # pragma: no cover
    configparser = None

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 90.0
DEFAULT_LOCK_WAIT_S = 10.0
ENGINES = {"mysql": "mysql", "mariadb": "mysql", "postgres": "postgres", "postgresql": "postgres"}
KEYS = ("workload_name", "command_path", "credString", "linux_user", "ipc_folder", "timeout", "lock_wait")


class WorkloadError(Exception):
    """A database step failed; `code` is one of 500-512, the message never contains the credential."""

    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code
        self.message = message


class WorkloadConfig(object):
    def __init__(self, path, name, command_path, cred_string, linux_user, ipc_folder, timeout, lock_wait):
        self.path = path
        self.name = name
        self.engine = ENGINES[name]
        self.command_path = command_path
        self.cred_string = cred_string
        self.linux_user = linux_user
        self.ipc_folder = ipc_folder
        self.timeout = timeout
        self.lock_wait = min(lock_wait, timeout)

    def to_dict(self):
        """For diagnose: everything but the credential."""
        return {
            "path": self.path,
            "workload_name": self.name,
            "command_path": self.command_path,
            "credString": "set (not shown)" if self.cred_string else "empty",
            "linux_user": self.linux_user,
            "ipc_folder": self.ipc_folder,
            "timeout": self.timeout,
            "lock_wait": self.lock_wait,
        }


def _number(raw, key, default):
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise WorkloadError(
            codes.WORKLOAD_CONF_ERROR,
            "workload.conf [workload] %s must be a number of seconds, not %r" % (key, raw[:40]),
        )
    if not 0 < value <= 3600:
        raise WorkloadError(
            codes.WORKLOAD_CONF_ERROR, "workload.conf [workload] %s must be between 0 and 3600 seconds" % key
        )
    return value


def open_trusted_file(path, owner_uid, what):
    """A descriptor (O_PATH where there is one) of `path` reached through trusted directories and itself
    root-owned and not group/world-writable; None when it does not exist; WorkloadError (501) otherwise."""
    try:
        fd, shown = open_trusted(path, owner_uid, what)
    except Untrusted as e:
        if e.kind == "missing":
            return None
        raise WorkloadError(codes.WORKLOAD_CONF_ERROR, "%s: refused" % e.message)
    reason = file_reason(os.fstat(fd), shown, owner_uid, what)
    if reason:
        os.close(fd)
        raise WorkloadError(codes.WORKLOAD_CONF_ERROR, "%s: refused" % reason)
    return fd


def load(path, owner_uid=0):
    """The workload configuration at `path`, None when there is no database branch; WorkloadError if unusable."""
    fd = open_trusted_file(path, owner_uid, "workload config")
    if fd is None:
        return None
    try:
        readable = os.open("/proc/self/fd/%d" % fd, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        readable = os.dup(fd)  # no O_PATH (or no /proc): fd is an ordinary read-only descriptor
    finally:
        os.close(fd)
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    try:
        with os.fdopen(readable, "r") as f:
            parser.read_file(f)
    except (configparser.Error, UnicodeDecodeError) as e:
        # configparser quotes the offending line, which may hold the credential: name the line only.
        line = getattr(e, "lineno", None)
        raise WorkloadError(
            codes.WORKLOAD_CONF_ERROR, "%s is not a valid INI file%s" % (path, " (line %s)" % line if line else "")
        )
    except (IOError, OSError) as e:
        raise WorkloadError(codes.WORKLOAD_CONF_ERROR, "%s cannot be read: %s" % (path, e.strerror or e))
    section = next((s for s in parser.sections() if s.lower() == "workload"), None)
    if section is None:
        return None
    values = dict((k.lower(), v) for k, v in parser.items(section))

    def get(key, default=""):
        return (values.get(key.lower()) or default).strip()

    name = get("workload_name").lower()
    if not name:
        return None
    if name not in ENGINES:
        raise WorkloadError(
            codes.WORKLOAD_INVALID_NAME,
            "workload.conf workload_name %r is not supported (mysql, mariadb, postgres)" % name[:40],
        )
    ipc_folder = get("ipc_folder")
    if ipc_folder and not os.path.isdir(ipc_folder):
        raise WorkloadError(
            codes.WORKLOAD_IPC_DIR_MISSING, "workload.conf ipc_folder %s is not a directory" % ipc_folder
        )
    timeout = _number(values.get("timeout"), "timeout", DEFAULT_TIMEOUT_S)
    return WorkloadConfig(
        path,
        name,
        get("command_path"),
        values.get("credstring", "").strip(),
        get("linux_user", "root"),
        ipc_folder,
        timeout,
        _number(values.get("lock_wait"), "lock_wait", DEFAULT_LOCK_WAIT_S),
    )


def split_credentials(cred_string):
    """credString as argv-style words (shell quoting rules, but never run by a shell)."""
    try:
        return shlex.split(cred_string or "")
    except ValueError:
        raise WorkloadError(codes.WORKLOAD_CONF_ERROR, "workload.conf credString has unbalanced quotes")


def take_option(words, i, short, long_names):
    """If words[i] is option `short`/`long_names` (-uX, -u X, --user=X, --user X): (value, next index)."""
    w = words[i]
    for name in long_names:
        if w.startswith(name + "="):
            return w[len(name) + 1 :], i + 1
        if w == name and i + 1 < len(words):
            return words[i + 1], i + 2
    if short and w.startswith(short):
        if len(w) > len(short):
            return w[len(short) :], i + 1
        if i + 1 < len(words):
            return words[i + 1], i + 2
    return None, i


def parse_options(cred_string, table, prompts, hint):
    """credString -> ({key: value} for the options in `table` [(key, short, long names)], [other words]).
    Words in `prompts` would make the client ask for a password on a terminal: refused, with `hint`."""
    words, options, other, i = split_credentials(cred_string), {}, [], 0
    while i < len(words):
        if words[i] in prompts:
            raise WorkloadError(
                codes.WORKLOAD_CONF_ERROR,
                "workload.conf credString: %s would prompt for a password; %s" % (words[i], hint),
            )
        for key, short, longs in table:
            value, nxt = take_option(words, i, short, longs)
            if nxt != i:
                if "\n" in value or "\r" in value:
                    raise WorkloadError(
                        codes.WORKLOAD_CONF_ERROR, "workload.conf credString: a value contains a line break"
                    )
                options[key], i = value, nxt
                break
        else:
            other.append(words[i])
            i += 1
    return options, other


def find_client(wl, names, owner_uid=0):
    """The client binary: in command_path when set, else in the usual bin directories; it must be reached
    through trusted directories and be root-owned and not group/world-writable (501 otherwise)."""
    dirs = [wl.command_path] if wl.command_path else ["/usr/local/bin", "/usr/bin", "/bin"]
    for name in names:
        for d in dirs:
            candidate = os.path.join(d, name)
            if d and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                fd = open_trusted_file(candidate, owner_uid, "database client")
                if fd is not None:
                    os.close(fd)
                    return candidate
    raise WorkloadError(
        codes.WORKLOAD_CONF_ERROR,
        "no database client (%s) found in %s"
        % (" or ".join(names), wl.command_path or "/usr/local/bin, /usr/bin, /bin"),
    )


class RunAs(object):
    """The OS user the database client runs as (workload.conf linux_user)."""

    def __init__(self, name):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            raise WorkloadError(codes.WORKLOAD_CONF_ERROR, "workload.conf linux_user %r does not exist" % name[:40])
        self.name, self.uid, self.gid, self.home = pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir
        self.switch = self.uid != os.geteuid()

    def preexec(self):
        """For Popen: a neutral working directory and linux_user's identity; only plain system calls here
        (the job has threads)."""
        uid, gid, switch = self.uid, self.gid, self.switch

        def drop():
            os.chdir("/")
            if switch:
                os.setgroups([gid])
                os.setgid(gid)
                os.setuid(uid)

        return drop

    def env(self, extra=None):
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": self.home or "/",
            "USER": self.name,
            "LOGNAME": self.name,
            "LANG": "C",
            "LC_ALL": "C",
        }
        env.update(extra or {})
        return env


def scrub(text, secrets):
    """Remove every secret from a client's message (clients do not echo passwords, but be sure)."""
    text = text or ""
    for s in secrets:
        if s:
            text = text.replace(s, "REDACTED")
    return text


def quiescer_for(wl):
    if wl.engine == "mysql":
        from .workload_mysql import MysqlQuiescer

        return MysqlQuiescer(wl)
    from .workload_postgres import PostgresQuiescer

    return PostgresQuiescer(wl)


class WorkloadStep(object):
    """What the job does with a database: enter() before syncfs/freeze, release() right after the thaw.

    A database problem never raises (a cancel of the job does). `abort_code`: the step failed and
    OnAppFailureDoFsFreeze is false, so the job stops with that code. Otherwise `problem` (None when the
    database was quiesced) says why the result is only file-system consistent.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.configured = False
        self.quiescer = None
        self.problem = None
        self.problem_code = None
        self.abort_code = None
        self.summary = ""
        self.timings = {}

    def _fail(self, e):
        self.problem_code, self.problem = e.code, e.message
        log.warning("database step failed (code %s): %s", e.code, e.message)
        if not self.cfg.on_app_failure_do_fs_freeze:
            self.abort_code = e.code

    def enter(self, selected_mountpoints, phase=None):
        """Load workload.conf and quiesce the database; selected_mountpoints: what will be frozen (or None)."""
        t = time.monotonic()
        try:
            wl = load(self.cfg.workload_config)
            if wl is None:
                return self
            self.configured = True
            if phase is not None:
                phase("database quiesce")
            self.quiescer = quiescer_for(wl)
            self.quiescer.prepare(selected_mountpoints)
            self.quiescer.quiesce()
            self.problem = self.quiescer.consistency_problem
        except WorkloadError as e:
            self.configured = True
            self._fail(e)
            self.close()
        self.timings["dbQuiesce"] = (time.monotonic() - t) * 1000
        return self

    def release(self):
        """Right after the thaw: undo the quiesce; a lock lost before this point downgrades consistency."""
        if self.quiescer is None:
            return
        t = time.monotonic()
        try:
            self.summary = self.quiescer.release()
        except WorkloadError as e:
            self.problem_code, self.problem = e.code, e.message
            log.warning("database release failed (code %s): %s", e.code, e.message)
        finally:
            self.close()
        self.timings["dbRelease"] = (time.monotonic() - t) * 1000
        if self.quiescer.held_ms is not None:
            self.timings["dbHeld"] = self.quiescer.held_ms

    def close(self):
        if self.quiescer is not None:
            self.quiescer.close()

    def outcome(self, consistency, scripts_ok=True):
        """(consistency, detail prefix) for the final status, given what the file systems and the scripts
        achieved: application-consistent only when frozen, the scripts (if any) succeeded and the database
        was quiesced for the whole frozen window."""
        if not self.configured:
            return consistency, ""
        frozen = consistency in (codes.CONSISTENCY_FS, codes.CONSISTENCY_APP)
        if self.problem is None:
            if frozen and scripts_ok:
                return codes.CONSISTENCY_APP, self.summary + "; "
            if frozen:
                return codes.CONSISTENCY_FS, self.summary + " (a pre script failed: file-system consistent); "
            return consistency, self.summary + " (file systems not frozen, so not application-consistent); "
        reason = (
            "database step failed (code %s): %s" % (self.problem_code, self.problem)
            if self.problem_code
            else self.problem
        )
        return (codes.CONSISTENCY_FS if frozen else consistency), reason + "; "


def describe(cfg):
    """For diagnose: which database would be quiesced and whether it can be reached (never quiesces)."""
    path = cfg.workload_config
    doc = {"config_path": path, "configured": False}
    try:
        wl = load(path)
    except WorkloadError as e:
        doc.update(configured=True, ok=False, code=e.code, error=e.message)
        return doc
    if wl is None:
        doc["note"] = "no database branch (%s missing or workload_name empty)" % path
        return doc
    doc.update(configured=True, workload=wl.to_dict())
    if wl.engine == "mysql" and wl.timeout <= cfg.timeout:
        doc["warning"] = (
            "workload.conf timeout (%g s) is not longer than [SnapshotThread] timeout (%g s): a job "
            "that stays frozen that long loses the lock before the thaw" % (wl.timeout, cfg.timeout)
        )
    try:
        doc.update(quiescer_for(wl).check())
        doc["ok"] = True
    except WorkloadError as e:
        doc.update(ok=False, code=e.code, error=e.message)
    return doc

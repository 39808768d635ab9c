"""Pre/post scripts: Microsoft's VMSnapshotScriptPluginConfig.json and a hook directory.

Compatible with what users already have:
* `/etc/azure/VMSnapshotScriptPluginConfig.json` (fields and defaults of Microsoft's ScriptRunner:
  preScriptLocation, postScriptLocation, preScriptParams, postScriptParams, preScriptNoOfRetries,
  postScriptNoOfRetries, timeoutInSeconds, continueBackupOnFailure, fsFreezeEnabled);
* a qemu-guest-agent style hook directory (default /etc/azure/vmsnapshot/hooks.d): every executable
  runs in name order with the argument `freeze` before the snapshot, and in reverse order with `thaw`
  after it. Post scripts always run for every entry whose pre phase ran (even if it failed).

What Microsoft's runner got wrong and this one does not: each script is executed directly (its shebang
is honoured; `/bin/sh` only for a file without one or, for the JSON config, without an execute bit,
as Microsoft always ran `sh script`), in its own process group, killed as a group on timeout (SIGTERM,
then SIGKILL), with its output drained continuously (no pipe deadlock) and a bounded tail kept for the
log; retries really re-run the script. Scripts and configs that are not root-owned or are writable by
group or others are refused with a coded error and never run.
"""

import ctypes
import errno
import json
import logging
import os
import select
import signal
import stat
import subprocess
import time

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = "/etc/azure/VMSnapshotScriptPluginConfig.json"
DEFAULT_HOOK_DIR = "/etc/azure/vmsnapshot/hooks.d"
DEFAULT_SCRIPT_TIMEOUT_S = 10.0   # Microsoft's code default when timeoutInSeconds is absent
DEFAULT_HOOK_TIMEOUT_S = 30.0
HOST_TIMEOUT_CAP_S = 1800.0       # Microsoft: min(host timeoutInSeconds, 1800) per phase
OUTPUT_TAIL_BYTES = 4096
KILL_GRACE_S = 2.0                # between SIGTERM and SIGKILL of a timed-out script's group
DRAIN_AFTER_EXIT_S = 0.5          # a background child may keep the pipe open; stop reading after this

# Result codes (Microsoft's numbering). Pairs are (pre, post).
CODE_SCRIPT_FAILED = (300, 301)
CODE_SCRIPT_NOT_FOUND = (302, 303)
CODE_HOST_CONFIG_PARSE = 304
CODE_CONFIG_PARSE = 305
CODE_SCRIPT_PERMISSION = (306, 307)
CODE_SCRIPT_TIMEOUT = (308, 309)
CODE_PHASE_TIMEOUT = (310, 311)
CODE_CONFIG_NOT_FOUND = 316
CODE_CONFIG_PERMISSION = 317
CODE_CONFIG_OWNERSHIP = 318

_IGNORED_HOOK_SUFFIXES = ("~", ".dpkg-old", ".dpkg-new", ".dpkg-dist", ".dpkg-tmp", ".rpmnew", ".rpmsave",
                          ".rpmorig", ".swp", ".bak", ".disabled")
_PHASE_INDEX = {"pre": 0, "post": 1}


class Script(object):
    """One executable to run in one phase."""

    def __init__(self, path, args=(), retries=0, timeout_s=DEFAULT_SCRIPT_TIMEOUT_S, origin="config",
                 sh_if_not_executable=False):
        self.path = path
        self.args = [str(a) for a in args]
        self.retries = retries
        self.timeout_s = timeout_s
        self.origin = origin
        self.sh_if_not_executable = sh_if_not_executable

    def __repr__(self):
        return "Script(%r, %r)" % (self.path, self.args)


class ScriptUnit(object):
    """A pre script and the post script that undoes it (either may be absent)."""

    def __init__(self, name, pre=None, post=None):
        self.name = name
        self.pre = pre
        self.post = post


class ScriptPlan(object):
    """What load_script_plan found.

    enabled: there are scripts to run and the configuration is usable.
    error_code / message: the configuration is unusable (304/305/306/316/317/318); nothing will run.
    fs_freeze_enabled, continue_on_failure: from the JSON config (defaults True).
    units: ScriptUnit list in pre order (config first, then hooks by name).
    """

    def __init__(self, units=(), error_code=None, message="", fs_freeze_enabled=True,
                 continue_on_failure=True, config_path=None, hook_dir=None, host_timeout_s=HOST_TIMEOUT_CAP_S,
                 owner_uid=0):
        self.units = list(units)
        self.error_code = error_code
        self.message = message
        self.fs_freeze_enabled = fs_freeze_enabled
        self.continue_on_failure = continue_on_failure
        self.config_path = config_path
        self.hook_dir = hook_dir
        self.host_timeout_s = host_timeout_s
        self.owner_uid = owner_uid
        self.entered = None  # units reached by run_pre (None: run_pre not called)
        self.reaper = None  # set by run_pre: what its scripts left running lives until run_post ends

    @property
    def enabled(self):
        return self.error_code is None and bool(self.units)

    def to_dict(self):
        def script(s):
            return None if s is None else {"path": s.path, "args": s.args, "retries": s.retries,
                                           "timeout_s": s.timeout_s, "origin": s.origin}
        return {"enabled": self.enabled, "error_code": self.error_code, "message": self.message,
                "fs_freeze_enabled": self.fs_freeze_enabled, "continue_on_failure": self.continue_on_failure,
                "config_path": self.config_path, "hook_dir": self.hook_dir,
                "units": [{"name": u.name, "pre": script(u.pre), "post": script(u.post)} for u in self.units]}


class ScriptResult(object):
    """Outcome of one script (all attempts)."""

    def __init__(self, name, path, args, phase, origin):
        self.name = name
        self.path = path
        self.args = list(args)
        self.phase = phase
        self.origin = origin
        self.ok = False
        self.code = None
        self.message = ""
        self.exit_code = None
        self.attempts = 0
        self.duration_ms = 0.0
        self.timed_out = False
        self.output_tail = ""
        self.output_bytes = 0

    def to_dict(self):
        return dict(self.__dict__)


class PhaseResult(object):
    """Outcome of run_pre / run_post.

    ok: every script that ran succeeded. code: None or the first failure's code. ran: at least one
    script was started. scripts: ScriptResult list in execution order.
    """

    def __init__(self, phase):
        self.phase = phase
        self.ok = True
        self.code = None
        self.message = ""
        self.ran = False
        self.scripts = []
        self.duration_ms = 0.0

    def fail(self, code, message):
        if self.ok:
            self.ok, self.code, self.message = False, code, message

    def to_dict(self):
        return {"phase": self.phase, "ok": self.ok, "code": self.code, "message": self.message,
                "ran": self.ran, "duration_ms": self.duration_ms,
                "scripts": [s.to_dict() for s in self.scripts]}


# -- ownership and permission checks on descriptors -----------------------------------------------
#
# What is checked is what runs: every path is walked from `/` one component at a time with
# O_PATH|O_NOFOLLOW, each directory on the way is checked on its own descriptor (owned by root and not
# writable by group or others: a sticky /tmp is not enough, its owner-controlled subdirectories could be
# swapped), symlinks are followed only from a directory that passed that check, and the final file is
# checked on the descriptor that is then read (the config) or executed through /proc/self/fd/N (scripts).

_MAX_SYMLINKS = 40
_O_PATH = getattr(os, "O_PATH", 0)


class Untrusted(Exception):
    """A path that must not be used. kind: 'missing' or 'permission'."""

    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind
        self.message = message


def _dir_reason(st, shown, owner_uid):
    if st.st_uid not in (0, owner_uid):
        return "directory %s is owned by uid %d, not root" % (shown, st.st_uid)
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "directory %s is writable by group or others (mode %04o)" % (shown, stat.S_IMODE(st.st_mode))
    return None


def open_trusted(path, owner_uid=0, what="script", directory=False):
    """Open `path` (O_PATH, no symlink followed in an untrusted directory) after checking every directory
    from `/` down to it (and `path` itself when `directory`). Returns (fd, real_path); the caller checks
    a file on fd and closes it. Raises Untrusted."""
    if not os.path.isabs(path):
        raise Untrusted("missing", "%s %s is not an absolute path" % (what, path))
    flags = (_O_PATH or os.O_RDONLY) | os.O_NOFOLLOW | os.O_CLOEXEC
    parts = [p for p in path.split("/") if p]
    fd = os.open("/", flags | os.O_DIRECTORY)
    shown, links = "/", 0
    try:
        reason = _dir_reason(os.fstat(fd), "/", owner_uid)
        while True:
            if reason:
                raise Untrusted("permission", "%s %s: %s" % (what, path, reason))
            if not parts:
                if directory:
                    result, fd = fd, None
                    return result, shown
                raise Untrusted("permission", "%s %s is a directory" % (what, path))
            name = parts.pop(0)
            if name == ".":
                continue
            try:
                child = os.open(name, flags, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.ENOTDIR):
                    raise Untrusted("missing", "%s %s does not exist" % (what, path)) from None
                raise Untrusted("permission", "%s %s cannot be opened: %s" % (
                    what, path, os.strerror(e.errno))) from None
            st = os.fstat(child)
            if stat.S_ISLNK(st.st_mode):  # in a checked directory: only root could have made it
                os.close(child)
                links += 1
                target = os.readlink(name, dir_fd=fd)
                if links > _MAX_SYMLINKS or not target:
                    raise Untrusted("permission", "%s %s: too many symbolic links" % (what, path))
                parts = [p for p in target.split("/") if p] + parts
                if target.startswith("/"):
                    os.close(fd)
                    fd, shown = os.open("/", flags | os.O_DIRECTORY), "/"
                continue
            shown = os.path.normpath(os.path.join(shown, name))
            os.close(fd)
            fd = child
            if stat.S_ISDIR(st.st_mode):
                reason = _dir_reason(st, shown, owner_uid)
                continue
            if parts or directory:
                raise Untrusted("missing", "%s %s does not exist (%s is not a directory)" % (what, path, shown))
            result, fd = fd, None
            return result, shown
    finally:
        if fd is not None:
            os.close(fd)


def _file_reason(st, shown, owner_uid, what):
    if not stat.S_ISREG(st.st_mode):
        return "%s %s is not a regular file" % (what, shown)
    if st.st_uid != owner_uid:
        return "%s %s is owned by uid %d, not %d" % (what, shown, st.st_uid, owner_uid)
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "%s %s is writable by group or others (mode %04o)" % (what, shown, stat.S_IMODE(st.st_mode))
    return None


def open_checked_script(path, owner_uid=0):
    """(fd, None) for a script safe to run through /proc/self/fd/fd, or (None, (kind, message))."""
    try:
        fd, shown = open_trusted(path, owner_uid, "script")
    except Untrusted as e:
        return None, (e.kind, e.message + ("; refused, not run" if e.kind == "permission" else ""))
    except OSError as e:
        return None, ("permission", "script %s cannot be inspected: %s" % (path, os.strerror(e.errno)))
    reason = _file_reason(os.fstat(fd), shown, owner_uid, "script")
    if reason:
        os.close(fd)
        return None, ("permission", reason + "; refused, not run")
    return fd, None


def check_script(path, owner_uid=0):
    """(kind, message): kind None (ok), 'missing' or 'permission'. The runner checks again on the
    descriptor it executes; this is for callers that only want to know (diagnose)."""
    fd, problem = open_checked_script(path, owner_uid)
    if fd is None:
        return problem
    os.close(fd)
    return None, ""


# -- loading ------------------------------------------------------------------------------------

class _ConfigError(Exception):
    pass


def _as_bool(doc, key, default):
    value = doc.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _ConfigError("%s must be true or false, not %r" % (key, value))


def _as_count(doc, key):
    value = doc.get(key, 0)
    if isinstance(value, bool):
        raise _ConfigError("%s must be a whole number, not %r" % (key, value))
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or value < 0:
        raise _ConfigError("%s must be a whole number >= 0, not %r" % (key, value))
    return value


def _as_timeout(doc, key, default):
    value = doc.get(key, default)
    if isinstance(value, bool):
        raise _ConfigError("%s must be a number of seconds, not %r" % (key, value))
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise _ConfigError("%s must be a number of seconds, not %r" % (key, value)) from None
    if not isinstance(value, (int, float)) or value <= 0:
        raise _ConfigError("%s must be a positive number of seconds, not %r" % (key, value))
    return float(value)


def _as_location(doc, key):
    value = doc.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or not os.path.isabs(value.strip()):
        raise _ConfigError("%s must be an absolute path, not %r" % (key, value))
    return value.strip()


def _as_params(doc, key):
    value = doc.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                              for v in value):
        raise _ConfigError("%s must be a list of strings, not %r" % (key, value))
    return [str(v) for v in value]


def _read_checked_config(plan, path, named, host_timeout_s):
    """Open the config once through checked directories, check it on that descriptor and parse what
    that descriptor reads. Sets plan.error_code (316/317/318) or returns _load_config's unit."""
    try:
        fd, shown = open_trusted(path, plan.owner_uid, "script config")
    except Untrusted as e:
        if e.kind == "missing":
            if named:
                plan.error_code = CODE_CONFIG_NOT_FOUND
                plan.message = "script config %s does not exist; no script is run" % path
            return None
        plan.error_code, plan.message = CODE_CONFIG_PERMISSION, e.message + "; no script is run"
        return None
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_uid != plan.owner_uid:
            plan.error_code = CODE_CONFIG_OWNERSHIP
            plan.message = "script config %s is owned by uid %d, not %d; no script is run" % (
                shown, st.st_uid, plan.owner_uid)
            return None
        reason = _file_reason(st, shown, plan.owner_uid, "script config")
        if reason:
            plan.error_code, plan.message = CODE_CONFIG_PERMISSION, reason + "; no script is run"
            return None
        readable = os.open("/proc/self/fd/%d" % fd, os.O_RDONLY | os.O_CLOEXEC) if _O_PATH else os.dup(fd)
    finally:
        os.close(fd)
    with os.fdopen(readable, "rb") as f:
        raw = f.read()
    unit, plan.fs_freeze_enabled, plan.continue_on_failure = _load_config(raw, path, host_timeout_s)
    return unit


def _load_config(raw, path, host_timeout_s):
    """Parse the JSON config. Returns (unit or None, fs_freeze_enabled, continue_on_failure)."""
    try:
        doc = json.loads(raw.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as e:
        raise _ConfigError("%s is not valid JSON: %s" % (path, e)) from None
    if not isinstance(doc, dict):
        raise _ConfigError("%s must hold a JSON object" % path)
    timeout = min(_as_timeout(doc, "timeoutInSeconds", DEFAULT_SCRIPT_TIMEOUT_S), host_timeout_s)
    pre_path, post_path = _as_location(doc, "preScriptLocation"), _as_location(doc, "postScriptLocation")
    pre = post = None
    if pre_path:
        pre = Script(pre_path, _as_params(doc, "preScriptParams"), _as_count(doc, "preScriptNoOfRetries"),
                     timeout, "config", sh_if_not_executable=True)
    if post_path:
        post = Script(post_path, _as_params(doc, "postScriptParams"), _as_count(doc, "postScriptNoOfRetries"),
                      timeout, "config", sh_if_not_executable=True)
    fs_freeze = _as_bool(doc, "fsFreezeEnabled", True)
    cont = _as_bool(doc, "continueBackupOnFailure", True)
    name = doc.get("pluginName") if isinstance(doc.get("pluginName"), str) else "ScriptRunner"
    unit = ScriptUnit(name, pre, post) if (pre or post) else None
    return unit, fs_freeze, cont


def _hook_units(hook_dir, timeout_s, owner_uid):
    try:
        dir_fd, _ = open_trusted(hook_dir, owner_uid, "hook directory", directory=True)
    except Untrusted as e:
        if e.kind == "missing":
            return []
        raise _ConfigError(e.message + "; no hook is run") from None
    try:
        listing = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd) if _O_PATH else dir_fd
        try:
            names = sorted(os.listdir(listing))
            entries = [(name, os.stat(name, dir_fd=listing, follow_symlinks=False)) for name in names]
        finally:
            if listing != dir_fd:
                os.close(listing)
    finally:
        os.close(dir_fd)
    units = []
    for name, st in entries:
        if name.startswith(".") or name.endswith(_IGNORED_HOOK_SUFFIXES):
            continue
        if stat.S_ISLNK(st.st_mode):
            try:
                st = os.stat(os.path.join(hook_dir, name))
            except OSError:
                continue
        if not stat.S_ISREG(st.st_mode):
            continue
        path = os.path.join(hook_dir, name)
        if not st.st_mode & 0o111:
            log.info("hook %s is not executable; ignored", path)
            continue
        units.append(ScriptUnit("hook:" + name, Script(path, ["freeze"], 0, timeout_s, "hook"),
                                Script(path, ["thaw"], 0, timeout_s, "hook")))
    return units


def load_script_plan(config_path=None, hook_dir=DEFAULT_HOOK_DIR, host_timeout_s=HOST_TIMEOUT_CAP_S,
                     hook_timeout_s=DEFAULT_HOOK_TIMEOUT_S, owner_uid=0, config_required=None):
    """Read the script configuration. Never raises for bad input: see ScriptPlan.error_code.

    config_path None means Microsoft's default path. A missing config at the default path simply means
    "no scripts"; any other path (configured by the operator) that does not exist is error 316.
    config_required overrides that (the worker passes False: a missing config is never an error).
    hook_dir None disables hooks; a missing hook directory means no hooks. owner_uid: tests only.
    """
    host_timeout_s = min(float(host_timeout_s), HOST_TIMEOUT_CAP_S)
    path = DEFAULT_CONFIG_PATH if config_path is None else config_path
    named = (os.path.normpath(path) != DEFAULT_CONFIG_PATH) if config_required is None else config_required
    plan = ScriptPlan(config_path=path, hook_dir=hook_dir, host_timeout_s=host_timeout_s, owner_uid=owner_uid)
    units = []
    try:
        unit = _read_checked_config(plan, path, named, host_timeout_s)
        if plan.error_code is not None:
            return plan
        if unit is not None:
            units.append(unit)
    except _ConfigError as e:
        plan.error_code, plan.message = CODE_CONFIG_PARSE, "%s; no script is run" % e
        return plan
    except (IOError, OSError) as e:
        plan.error_code, plan.message = CODE_CONFIG_PARSE, "cannot read script config %s: %s" % (path, e)
        return plan
    if hook_dir:
        try:
            units.extend(_hook_units(hook_dir, min(hook_timeout_s, host_timeout_s), owner_uid))
        except _ConfigError as e:
            plan.error_code, plan.message = CODE_SCRIPT_PERMISSION[0], str(e)
            return plan
        except OSError as e:
            plan.error_code, plan.message = CODE_SCRIPT_PERMISSION[0], "cannot list hook directory %s: %s" % (
                hook_dir, e)
            return plan
    plan.units = units
    return plan


# -- leftovers: what a script started and left running ----------------------------------------------
#
# A script's background child that calls setsid leaves the script's process group, so the group kill does
# not reach it, and when the script exits it is re-parented to init and forgotten. The runner therefore
# makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER, Linux 3.4+): such orphans are re-parented
# to it instead. What a pre script leaves running (the classic pattern: a client session holding a database
# lock in the background) lives until the post phase has run, then every descendant that did not exist
# before the pre phase is killed; the post phase's own leftovers are killed at its end too.
# Without prctl (other systems, old kernels) only descendants still attached to us are found.

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    """Make this process the reaper of its orphaned descendants. True when the kernel agreed."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError, TypeError):
        return False


def _parent_map():
    parents = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return parents
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (IOError, OSError, IndexError):
            continue
        if fields and fields[0] != b"Z":
            parents[int(name)] = int(fields[1])
        elif fields:
            parents[int(name)] = -int(fields[1])  # a zombie: only to be reaped
    return parents


def _descendants(root, parents, exclude=()):
    """Living descendants of `root` not under any pid in `exclude`, and zombie children of root."""
    children = {}
    for pid, ppid in parents.items():
        children.setdefault(abs(ppid), []).append(pid)
    found, zombies, todo = [], [], [root]
    while todo:
        for pid in children.get(todo.pop(), ()):
            if pid in exclude:
                continue
            if parents[pid] < 0:
                zombies.append(pid)
                continue
            found.append(pid)
            todo.append(pid)
    return found, zombies


class LeftoverReaper(object):
    """Around one phase: remembers our children before the first script starts, kills every new
    descendant at the end (nothing to do, and no /proc scan, when no script was started)."""

    def __init__(self):
        self.me = os.getpid()
        self.before = None
        self.subreaper = False

    def arm(self):
        """Called before each script starts; the first call records the children we already have."""
        if self.before is None:
            self.subreaper = become_subreaper()
            self.before = set(pid for pid, ppid in _parent_map().items() if ppid == self.me)

    def kill_leftovers(self, rounds=50):
        """SIGKILL every descendant started during the phase and reap it. Returns the pids killed."""
        if self.before is None:
            return []
        killed = []
        for _ in range(rounds):
            alive, zombies = _descendants(self.me, _parent_map(), self.before)
            for pid in zombies:
                _reap(pid)
            if not alive:
                break
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except OSError:
                    pass
            time.sleep(0.01)
        if killed:
            log.warning("killed %d process(es) the scripts left running: %s", len(set(killed)),
                        sorted(set(killed)))
        return sorted(set(killed))


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except OSError:
        pass


# -- running ------------------------------------------------------------------------------------

def _killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass


def _spawn(argv, env, script_fd):
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, close_fds=True, pass_fds=(script_fd,), cwd="/", env=env)


def _spawn_checked(script, script_fd, env):
    """Start the checked descriptor; a (kind, message) tuple when it cannot be executed."""
    exe = "/proc/self/fd/%d" % script_fd
    argv = [exe] + script.args
    if script.sh_if_not_executable and not os.fstat(script_fd).st_mode & 0o111:
        log.info("script %s has no execute bit: run with /bin/sh as Microsoft's runner did", script.path)
        argv = ["/bin/sh"] + argv
    try:
        return _spawn(argv, env, script_fd)
    except OSError as e:
        if e.errno == errno.ENOEXEC:  # no shebang: what a shell would do
            return _spawn(["/bin/sh"] + argv, env, script_fd)
        return ("missing" if e.errno == errno.ENOENT else "permission",
                "cannot execute %s: %s" % (script.path, os.strerror(e.errno)))


def _run_once(script, timeout_s, env, result, owner_uid=0, reaper=None):
    """Run one attempt. Sets result fields; returns 'ok', 'failed', 'timeout', 'missing', 'permission'.

    The script is opened and checked once (open_checked_script) and that very descriptor is executed as
    /proc/self/fd/N, inherited by the child (a #! interpreter then reads the script through it): renaming
    or replacing anything on the path after the check changes nothing. $0 is that /proc path, so the
    script's own path is given in VMSNAPSHOT_SCRIPT.
    """
    script_fd, problem = open_checked_script(script.path, owner_uid)
    if script_fd is None:
        result.message = problem[1]
        return problem[0]
    if reaper is not None:
        reaper.arm()
    try:
        proc = _spawn_checked(script, script_fd, env)
    finally:
        os.close(script_fd)
    if isinstance(proc, tuple):
        result.message = proc[1]
        return proc[0]
    fd = proc.stdout.fileno()
    tail = bytearray()
    total = 0
    start = time.monotonic()
    deadline = start + timeout_s
    try:
        return _supervise(proc, fd, tail, total, start, deadline, timeout_s, result)
    except BaseException:  # the job is cancelled (disable): the script's whole process group goes too
        _killpg(proc.pid, signal.SIGTERM)
        time.sleep(0.05)
        _killpg(proc.pid, signal.SIGKILL)
        proc.stdout.close()
        raise


def _supervise(proc, fd, tail, total, start, deadline, timeout_s, result):
    """Drain the script's output until it exits or times out; see _run_once."""
    term_at = exited_at = None
    eof = False
    while True:
        now = time.monotonic()
        if exited_at is None and proc.poll() is not None:
            exited_at = now
        if exited_at is not None and (eof or now - exited_at >= DRAIN_AFTER_EXIT_S):
            break
        if term_at is None and now >= deadline:
            term_at = now
            _killpg(proc.pid, signal.SIGTERM)
        if term_at is not None and now - term_at >= KILL_GRACE_S:
            _killpg(proc.pid, signal.SIGKILL)
            if now - term_at >= KILL_GRACE_S + 5.0:
                break  # unkillable (uninterruptible sleep): stop waiting, it is reported as timed out
        if eof:
            try:
                proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
            continue
        wait = 0.05 if term_at is not None else max(0.0, min(deadline - now, 0.5))
        readable, _, _ = select.select([fd], [], [], wait)
        if readable:
            data = os.read(fd, 65536)
            if not data:
                eof = True
            else:
                total += len(data)
                tail += data
                if len(tail) > OUTPUT_TAIL_BYTES:
                    del tail[:len(tail) - OUTPUT_TAIL_BYTES]
    if term_at is not None:
        _killpg(proc.pid, signal.SIGKILL)  # the whole group, including children that ignored SIGTERM
    proc.stdout.close()
    try:
        proc.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        pass
    result.duration_ms += round((time.monotonic() - start) * 1000.0, 3)
    result.output_tail = tail.decode("utf-8", "replace")
    result.output_bytes = total
    result.exit_code = proc.returncode
    if term_at is not None:
        result.timed_out = True
        result.message = "timed out after %.1f s; its process group was killed" % timeout_s
        return "timeout"
    if proc.returncode != 0:
        result.message = "exited with status %s" % proc.returncode
        return "failed"
    result.message = ""
    return "ok"


def _run_script(script, phase, name, plan, phase_deadline, reaper=None):
    idx = _PHASE_INDEX[phase]
    result = ScriptResult(name, script.path, script.args, phase, script.origin)
    env = dict(os.environ)
    env["VMSNAPSHOT_PHASE"] = phase
    env["VMSNAPSHOT_SCRIPT"] = script.path
    for attempt in range(1 + script.retries):
        left = phase_deadline - time.monotonic()
        if left <= 0:
            result.code = CODE_PHASE_TIMEOUT[idx]
            result.message = "the %s phase ran out of time (%.0f s)" % (phase, plan.host_timeout_s)
            return result
        result.attempts = attempt + 1
        result.timed_out = False
        outcome = _run_once(script, min(script.timeout_s, left), env, result, plan.owner_uid, reaper)
        log.info("%s script %s %s: attempt %d/%d, %s in %.0f ms%s", phase, name, script.path, attempt + 1,
                 1 + script.retries, outcome, result.duration_ms,
                 (", output tail:\n" + result.output_tail[-1024:]) if result.output_tail.strip() else "")
        if outcome == "ok":
            result.ok, result.code = True, None
            return result
        result.code = {"failed": CODE_SCRIPT_FAILED, "timeout": CODE_SCRIPT_TIMEOUT,
                       "missing": CODE_SCRIPT_NOT_FOUND, "permission": CODE_SCRIPT_PERMISSION}[outcome][idx]
        if outcome in ("missing", "permission"):
            return result
    return result


def run_pre(plan):
    """Run the pre scripts in order; stop at the first failure. Records which units were entered."""
    phase = PhaseResult("pre")
    plan.entered = []
    if not plan.enabled:
        if plan.error_code is not None:
            phase.fail(plan.error_code, plan.message)
        return phase
    t0 = time.monotonic()
    deadline = t0 + plan.host_timeout_s
    plan.reaper = reaper = LeftoverReaper()
    for unit in plan.units:
        plan.entered.append(unit)
        if unit.pre is None:
            continue
        phase.ran = True
        res = _run_script(unit.pre, "pre", unit.name, plan, deadline, reaper)
        phase.scripts.append(res)
        if not res.ok:
            phase.fail(res.code, "pre script %s: %s" % (unit.pre.path, res.message))
            break
    phase.duration_ms = round((time.monotonic() - t0) * 1000.0, 3)
    return phase


def run_post(plan):
    """Run the post scripts, in reverse order, of every unit run_pre reached (all units if run_pre was
    not called). All of them run even when one fails; the first failure gives the code."""
    phase = PhaseResult("post")
    if not plan.enabled:
        return phase
    units = plan.units if plan.entered is None else plan.entered
    t0 = time.monotonic()
    deadline = t0 + plan.host_timeout_s
    reaper = plan.reaper or LeftoverReaper()  # one reaper: what the pre phase left is killed here too
    try:
        for unit in reversed(units):
            if unit.post is None:
                continue
            phase.ran = True
            res = _run_script(unit.post, "post", unit.name, plan, deadline, reaper)
            phase.scripts.append(res)
            if not res.ok:
                phase.fail(res.code, "post script %s: %s" % (unit.post.path, res.message))
    finally:
        reaper.kill_leftovers()
        plan.reaper = None
    phase.duration_ms = round((time.monotonic() - t0) * 1000.0, 3)
    return phase


def snapshot_decision(plan, pre):
    """Microsoft's rules after the pre phase. Returns (take_snapshot, freeze).

    Scripts succeeded (or none): snapshot; freeze unless fsFreezeEnabled is false.
    A script failed: no snapshot unless continueBackupOnFailure; and with fsFreezeEnabled false a failed
    script means no backup at all (the scripts were the only consistency mechanism).
    """
    if pre.ok:
        return True, plan.fs_freeze_enabled
    if not plan.continue_on_failure or not plan.fs_freeze_enabled:
        return False, False
    return True, True

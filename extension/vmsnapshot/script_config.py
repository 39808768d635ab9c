"""Which pre/post scripts to run, read from what users already have, and the checks that decide whether
a script or a configuration may be trusted at all.

* `/etc/azure/VMSnapshotScriptPluginConfig.json` (fields and defaults of Microsoft's ScriptRunner:
  preScriptLocation, postScriptLocation, preScriptParams, postScriptParams, preScriptNoOfRetries,
  postScriptNoOfRetries, timeoutInSeconds, continueBackupOnFailure, fsFreezeEnabled);
* a qemu-guest-agent style hook directory (default /etc/azure/vmsnapshot/hooks.d): every executable
  runs in name order with the argument `freeze` before the snapshot, and in reverse order with `thaw`
  after it.

Scripts and configs that are not root-owned or are writable by group or others, or that sit below such a
directory, are refused with a coded error and never run. Running them is vmsnapshot.scripts' job.
"""

import errno
import json
import logging
import os
import stat

from . import codes

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = "/etc/azure/VMSnapshotScriptPluginConfig.json"
DEFAULT_HOOK_DIR = "/etc/azure/vmsnapshot/hooks.d"
DEFAULT_SCRIPT_TIMEOUT_S = 10.0  # Microsoft's code default when timeoutInSeconds is absent
DEFAULT_HOOK_TIMEOUT_S = 30.0
HOST_TIMEOUT_CAP_S = 1800.0  # Microsoft: min(host timeoutInSeconds, 1800) per phase

_IGNORED_HOOK_SUFFIXES = (
    "~",
    ".dpkg-old",
    ".dpkg-new",
    ".dpkg-dist",
    ".dpkg-tmp",
    ".rpmnew",
    ".rpmsave",
    ".rpmorig",
    ".swp",
    ".bak",
    ".disabled",
)


class Script(object):
    """One executable to run in one phase."""

    def __init__(
        self, path, args=(), retries=0, timeout_s=DEFAULT_SCRIPT_TIMEOUT_S, origin="config", sh_if_not_executable=False
    ):
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
    error_code / message: the configuration is unusable (305/306/316/317/318); nothing will run.
    fs_freeze_enabled, continue_on_failure: from the JSON config (defaults True).
    units: ScriptUnit list in pre order (config first, then hooks by name).
    """

    def __init__(
        self,
        units=(),
        error_code=None,
        message="",
        fs_freeze_enabled=True,
        continue_on_failure=True,
        config_path=None,
        hook_dir=None,
        host_timeout_s=HOST_TIMEOUT_CAP_S,
        owner_uid=0,
    ):
        self.units = list(units)
        self.error_code = error_code
        self.message = message
        self.fs_freeze_enabled = fs_freeze_enabled
        self.continue_on_failure = continue_on_failure
        self.config_path = config_path
        self.hook_dir = hook_dir
        self.host_timeout_s = host_timeout_s
        self.owner_uid = owner_uid
        # Set while the scripts run (vmsnapshot.scripts): the units run_pre reached (None: not called) and
        # the reaper that keeps what the pre scripts left running alive until run_post ends.
        self.entered = None
        self.reaper = None

    @property
    def enabled(self):
        return self.error_code is None and bool(self.units)

    def to_dict(self):
        def script(s):
            return (
                None
                if s is None
                else {
                    "path": s.path,
                    "args": s.args,
                    "retries": s.retries,
                    "timeout_s": s.timeout_s,
                    "origin": s.origin,
                }
            )

        return {
            "enabled": self.enabled,
            "error_code": self.error_code,
            "message": self.message,
            "fs_freeze_enabled": self.fs_freeze_enabled,
            "continue_on_failure": self.continue_on_failure,
            "config_path": self.config_path,
            "hook_dir": self.hook_dir,
            "units": [{"name": u.name, "pre": script(u.pre), "post": script(u.post)} for u in self.units],
        }


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
                raise Untrusted(
                    "permission", "%s %s cannot be opened: %s" % (what, path, os.strerror(e.errno))
                ) from None
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
    if not isinstance(value, list) or not all(
        isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value
    ):
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
                plan.error_code = codes.SCRIPT_CONFIG_NOT_FOUND
                plan.message = "script config %s does not exist; no script is run" % path
            return None
        plan.error_code, plan.message = codes.SCRIPT_CONFIG_PERMISSION, e.message + "; no script is run"
        return None
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_uid != plan.owner_uid:
            plan.error_code = codes.SCRIPT_CONFIG_OWNERSHIP
            plan.message = "script config %s is owned by uid %d, not %d; no script is run" % (
                shown,
                st.st_uid,
                plan.owner_uid,
            )
            return None
        reason = _file_reason(st, shown, plan.owner_uid, "script config")
        if reason:
            plan.error_code, plan.message = codes.SCRIPT_CONFIG_PERMISSION, reason + "; no script is run"
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

    def script(location, phase):  # phase: "pre" or "post", the prefix of the config's field names
        if not location:
            return None
        params, retries = _as_params(doc, phase + "ScriptParams"), _as_count(doc, phase + "ScriptNoOfRetries")
        return Script(location, params, retries, timeout, "config", sh_if_not_executable=True)

    pre, post = script(pre_path, "pre"), script(post_path, "post")
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
        units.append(
            ScriptUnit(
                "hook:" + name,
                Script(path, ["freeze"], 0, timeout_s, "hook"),
                Script(path, ["thaw"], 0, timeout_s, "hook"),
            )
        )
    return units


def load_script_plan(
    config_path=None,
    hook_dir=DEFAULT_HOOK_DIR,
    host_timeout_s=HOST_TIMEOUT_CAP_S,
    hook_timeout_s=DEFAULT_HOOK_TIMEOUT_S,
    owner_uid=0,
    config_required=None,
):
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
        plan.error_code, plan.message = codes.SCRIPT_CONFIG_INVALID, "%s; no script is run" % e
        return plan
    except (IOError, OSError) as e:
        plan.error_code, plan.message = codes.SCRIPT_CONFIG_INVALID, "cannot read script config %s: %s" % (path, e)
        return plan
    if hook_dir:
        try:
            units.extend(_hook_units(hook_dir, min(hook_timeout_s, host_timeout_s), owner_uid))
        except _ConfigError as e:
            plan.error_code, plan.message = codes.PRE_SCRIPT_PERMISSION, str(e)
            return plan
        except OSError as e:
            plan.error_code, plan.message = (
                codes.PRE_SCRIPT_PERMISSION,
                "cannot list hook directory %s: %s" % (hook_dir, e),
            )
            return plan
    plan.units = units
    return plan

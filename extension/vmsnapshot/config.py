"""The runtime's configuration: /etc/azure/vmbackup.conf (INI), path overridable with VMSNAPSHOT_CONFIG.

Microsoft's keys that matter keep their names and sections; keys that only served the old freeze
binary are read and ignored (see README, "Configuration"). A malformed file never stops a backup
silently: `load()` raises ConfigError naming the key, which the job reports as code 11.
"""

import os
import re

try:
    import configparser
except ImportError:  # pragma: no cover
    configparser = None

DEFAULT_PATH = "/etc/azure/vmbackup.conf"
ENV_VAR = "VMSNAPSHOT_CONFIG"

DEFAULTS = {
    "fsfreeze": True,
    "timeout": 30.0,  # hard cap, seconds, on how long anything stays frozen
    "freeze_wait": 10.0,  # bounded wait for the FIFREEZE calls themselves
    "mounts_to_include": None,  # None: every eligible mount; a list: only these
    "mounts_to_skip": [],
    "upload_status_and_log": True,
    "snapshot_method": None,  # None: customSettings.takeSnapshotFrom, else firstHostThenGuest
    "host_endpoint": "http://168.63.129.16",  # the WireServer: the host backup service's presnapshot/dosnapshot
    "host_timeout": 40.0,  # seconds for a presnapshot (a dosnapshot is bounded by the freeze cap)
    "hosting_environment": "/var/lib/waagent/HostingEnvironmentConfig.xml",  # Role guid: VM identity
    "script_config": "/etc/azure/VMSnapshotScriptPluginConfig.json",
    "hook_dir": "/etc/azure/vmsnapshot/hooks.d",
    "safe_freeze_lock": "/etc/azure/MicrosoftRecoverySvcsSafeFreezeLock/SafeFreezeLockFile",
    "lock_wait": 10.0,
    "machine_identity": "/etc/azure/machine_identity_FD76C85E-406F-4CFA-8EB0-CF18B123358B",
    "waagent_conf": "/etc/waagent.conf",
    "certificate_dir": None,  # default: the agent's lib dir, parent of the handler dir
    "command_deadline_minutes": 140.0,
    "log_max_bytes": 1048576,
    "log_backups": 3,
    "workload_config": "/etc/azure/workload.conf",  # database branch (workload.py); missing = none
    "on_app_failure_do_fs_freeze": True,  # database step failed: still freeze (consistency 1)
}

# (section, key, field, kind). Kinds: bool, float, list, str, int, endpoint (http://host[:port]).
KEYS = [
    ("SnapshotThread", "fsfreeze", "fsfreeze", "bool"),
    ("SnapshotThread", "timeout", "timeout", "float"),
    ("SnapshotThread", "FreezeWaitSeconds", "freeze_wait", "float"),
    ("SnapshotThread", "MountsToInclude", "mounts_to_include", "include-list"),
    ("SnapshotThread", "MountsToSkip", "mounts_to_skip", "list"),
    ("SnapshotThread", "UploadStatusAndLog", "upload_status_and_log", "bool"),
    ("SnapshotThread", "SnapshotMethod", "snapshot_method", "str"),
    ("vmsnapshot", "HostEndpoint", "host_endpoint", "endpoint"),
    ("vmsnapshot", "HostTimeoutSeconds", "host_timeout", "float"),
    ("vmsnapshot", "HostingEnvironmentConfig", "hosting_environment", "str"),
    ("vmsnapshot", "ScriptConfigPath", "script_config", "str"),
    ("vmsnapshot", "HookDir", "hook_dir", "str"),
    ("vmsnapshot", "SafeFreezeLockFile", "safe_freeze_lock", "str"),
    ("vmsnapshot", "LockWaitSeconds", "lock_wait", "float"),
    ("vmsnapshot", "MachineIdentityFile", "machine_identity", "str"),
    ("vmsnapshot", "WaagentConf", "waagent_conf", "str"),
    ("vmsnapshot", "CertificateDir", "certificate_dir", "str"),
    ("vmsnapshot", "CommandDeadlineMinutes", "command_deadline_minutes", "float"),
    ("vmsnapshot", "LogMaxBytes", "log_max_bytes", "int"),
    ("vmsnapshot", "LogBackups", "log_backups", "int"),
    ("vmsnapshot", "WorkloadConfigPath", "workload_config", "str"),
    ("SnapshotThread", "OnAppFailureDoFsFreeze", "on_app_failure_do_fs_freeze", "bool"),
]

_ENDPOINT = re.compile(r"^http://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?/?$")
TRUE_WORDS = ("1", "true", "yes", "on", "y")
FALSE_WORDS = ("0", "false", "no", "off", "n")


class ConfigError(Exception):
    """The configuration file is unreadable or a key has a bad value; the message names it."""


class Config(object):
    def __init__(self, path, values, present):
        self.path = path
        self.present = present  # whether the file existed
        self.__dict__.update(values)

    def to_dict(self):
        out = {"path": self.path, "present": self.present}
        for _, _, field, _ in KEYS:
            out[field] = getattr(self, field)
        out["fsfreeze"] = self.fsfreeze
        return out


def config_path():
    return os.environ.get(ENV_VAR) or DEFAULT_PATH


def _convert(section, key, kind, raw):
    raw = raw.strip()
    where = "%s [%s] %s" % ("vmbackup.conf", section, key)
    if kind == "bool":
        if raw.lower() in TRUE_WORDS:
            return True
        if raw.lower() in FALSE_WORDS:
            return False
        raise ConfigError("%s must be true or false, not %r" % (where, raw[:40]))
    if kind in ("float", "int"):
        try:
            value = float(raw) if kind == "float" else int(raw)
        except ValueError:
            raise ConfigError("%s must be a number, not %r" % (where, raw[:40]))
        if value <= 0:
            raise ConfigError("%s must be greater than zero" % where)
        return value
    if kind == "endpoint":
        m = _ENDPOINT.match(raw)
        if not m or (m.group(2) and not 0 < int(m.group(2)) < 65536):
            raise ConfigError(
                "%s must be http://HOST[:PORT] (plain HTTP, like the WireServer), not %r" % (where, raw[:80])
            )
        return raw.rstrip("/")
    if kind == "list":
        return [item.strip() for item in raw.split(",") if item.strip()]
    if kind == "include-list":
        # Blank means unset ("every eligible file system"), as the default file written by install says;
        # reading it as an empty list would quietly freeze nothing and make every backup crash-consistent.
        items = [item.strip() for item in raw.split(",") if item.strip()]
        return items or None
    return raw


def _default_values():
    values = dict(DEFAULTS)
    values["mounts_to_skip"] = list(DEFAULTS["mounts_to_skip"])
    return values


def defaults(path=None):
    """The built-in configuration: what a missing file means, and what to go on with after a ConfigError."""
    return Config(path or config_path(), _default_values(), False)


def load(path=None):
    """Read the configuration; a missing file means defaults."""
    path = path or config_path()
    if not os.path.exists(path):
        return defaults(path)
    values = _default_values()
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    try:
        with open(path) as f:
            parser.read_file(f)
    except (configparser.Error, UnicodeDecodeError) as e:
        raise ConfigError("%s is not a valid INI file: %s" % (path, str(e).splitlines()[0][:200]))
    except (IOError, OSError) as e:
        raise ConfigError("%s cannot be read: %s" % (path, e.strerror or e))
    lowered = {}
    for section in parser.sections():
        for key, raw in parser.items(section):
            lowered[(section.lower(), key.lower())] = (section, key, raw)
    for section, key, field, kind in KEYS:
        found = lowered.get((section.lower(), key.lower()))
        if found is not None:
            values[field] = _convert(found[0], found[1], kind, found[2])
    return Config(path, values, True)


DEFAULT_FILE = """\
# VM Snapshot Linux extension configuration (read on every job; see README "Configuration").
[SnapshotThread]
# Freeze the file systems during the snapshot (true: file-system or application consistent).
fsfreeze = true
# Hard cap, in seconds, on how long any file system may stay frozen; a watchdog thaws at this deadline.
timeout = 30
# Only these mount points may ever be frozen (comma list); empty means every eligible local file system.
MountsToInclude =
# Mount points never to freeze (comma list).
MountsToSkip =
# Database branch (WorkloadConfigPath below): when quiescing the database fails, still freeze and take a
# file-system-consistent snapshot (true), or fail the job without a snapshot (false).
OnAppFailureDoFsFreeze = true

[vmsnapshot]
ScriptConfigPath = /etc/azure/VMSnapshotScriptPluginConfig.json
HookDir = /etc/azure/vmsnapshot/hooks.d
# Microsoft's workload.conf: the database (mysql, mariadb, postgres) to quiesce around the freeze; missing = none.
WorkloadConfigPath = /etc/azure/workload.conf
"""

"""Where things are: the handler directory, HandlerEnvironment.json, sequence numbers and the agent's lib dir.

Tolerant by design: HandlerEnvironment may be a list or a bare object, eventsFolder
may be missing, and nothing Windows-only is required.
"""

import json
import os
import re

from . import agentcontract, identity

_SEQ_FILE = re.compile(r"^(\d+)\.settings$")


class HandlerEnvError(Exception):
    pass


class HandlerEnv(object):
    """Paths the agent gave us, with safe defaults when running outside the agent."""

    def __init__(self, base_dir, log_dir, config_dir, status_dir, events_dir, name, version):
        self.base_dir = base_dir
        self.log_dir = log_dir
        self.config_dir = config_dir
        self.status_dir = status_dir
        self.events_dir = events_dir
        self.name = name
        self.version = version

    @property
    def lib_dir(self):
        """The agent's Lib.Dir, where <thumbprint>.crt/.prv live: the parent of the handler directory."""
        return os.path.dirname(os.path.abspath(self.base_dir))

    def status_file(self, seq):
        return os.path.join(self.status_dir, "%s.status" % seq)

    def settings_file(self, seq):
        return os.path.join(self.config_dir, "%s.settings" % seq)

    def to_dict(self):
        return dict(self.__dict__)


def load(base_dir=None):
    base_dir = os.path.abspath(base_dir or os.environ.get(agentcontract.ENV_EXTENSION_PATH) or os.getcwd())
    env = {}
    path = os.path.join(base_dir, "HandlerEnvironment.json")
    if os.path.exists(path):
        try:
            with open(path) as f:
                doc = json.load(f)
        except (ValueError, IOError, OSError, RecursionError, MemoryError) as e:
            raise HandlerEnvError("HandlerEnvironment.json cannot be parsed: %s" % (str(e)[:200] or type(e).__name__))
        if isinstance(doc, list):
            doc = doc[0] if doc else {}
        if not isinstance(doc, dict):
            raise HandlerEnvError("HandlerEnvironment.json must hold an object or a list of one object")
        env = doc.get("handlerEnvironment") or {}
        if not isinstance(env, dict):
            raise HandlerEnvError("HandlerEnvironment.json: handlerEnvironment must be an object")
    name = identity.HANDLER_NAME
    log_dir = env.get("logFolder") or os.path.join(base_dir, "logs")
    return HandlerEnv(
        base_dir=base_dir,
        log_dir=log_dir,
        config_dir=env.get("configFolder") or os.path.join(base_dir, "config"),
        status_dir=env.get("statusFolder") or os.path.join(base_dir, "status"),
        events_dir=env.get("eventsFolder") or env.get("eventsFolder_preview"),
        name=name,
        version=os.environ.get(agentcontract.ENV_EXTENSION_VERSION) or identity.VERSION,
    )


def current_seq(henv):
    """The sequence number to act on: ConfigSequenceNumber, else the newest settings file, else 0."""
    raw = os.environ.get(agentcontract.ENV_SEQUENCE_NUMBER)
    if raw is not None and raw.strip().isdigit():
        return int(raw.strip())
    newest, newest_mtime = None, None
    try:
        names = os.listdir(henv.config_dir)
    except OSError:
        names = []
    for name in names:
        m = _SEQ_FILE.match(name)
        if not m:
            continue
        mtime = os.path.getmtime(os.path.join(henv.config_dir, name))
        if newest_mtime is None or mtime > newest_mtime:
            newest, newest_mtime = int(m.group(1)), mtime
    return newest if newest is not None else 0

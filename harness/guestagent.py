"""The real Linux guest agent's extension handling, run in-process against harness.wireserver (contract §15).

The agent's code comes from Debian's `waagent` package unpacked with `dpkg -x` (mk/agent.mk) or from an
upstream source tree named by WAAGENT_DIR. Nothing of the agent is patched except its HTTP function; its
Lib.Dir and Extension.LogDir point into a work directory, and cgroups, firewall and self-update are off.
The agent module is process-global, so one process drives one agent version at a time.
"""

import glob
import importlib
import json
import os
import re
import sys
import time

MAX_PYTHON = (3, 11)  # 2.7.3 imports distutils, removed in Python 3.12


def _package_root(directory):
    """The directory to put on sys.path for an unpacked .deb or a source tree, or None."""
    for candidate in (os.path.join(directory, "usr", "lib", "python3", "dist-packages"), directory):
        if os.path.isfile(os.path.join(candidate, "azurelinuxagent", "common", "version.py")):
            return candidate
    return None


def _version_key(path):
    name = os.path.basename(os.path.normpath(path)).split("-", 1)[-1]
    return [int(x) if x.isdigit() else 0 for x in re.split(r"[.\-+~]", name)]


def find_agent():
    """(sys.path entry, where it came from) of the agent to drive, or (None, why not)."""
    if sys.version_info[:2] > MAX_PYTHON:
        return None, "the guest agent 2.7.3 needs Python <= 3.11 (it imports distutils); this is %d.%d" % (
            sys.version_info[:2])
    explicit = os.environ.get("WAAGENT_DIR")
    if explicit:
        if _package_root(explicit):
            return _package_root(explicit), explicit
        return None, ("WAAGENT_DIR=%s holds no azurelinuxagent package (neither usr/lib/python3/dist-packages/"
                      "azurelinuxagent nor azurelinuxagent/ at its top)" % explicit)
    cache = os.environ.get("KIT_CACHE") or os.path.expanduser("~/.cache/vmsnapshot-kit")
    found = sorted((d for d in glob.glob(os.path.join(cache, "waagent-*")) if _package_root(d)), key=_version_key)
    if found:
        return _package_root(found[-1]), found[-1]
    return None, ("no unpacked guest agent in %s (run `make waagent` as root: apt-get download waagent + dpkg -x)"
                  % os.path.join(cache, "waagent-<version>"))


def agent_conf(work):
    """Contract §15.3: everything under `work`, extensions on, cgroups, firewall and self-update off."""
    return "\n".join([
        "Lib.Dir=%s" % os.path.join(work, "lib"),
        "Extension.LogDir=%s" % os.path.join(work, "log-azure"),
        "Pid.File=%s" % os.path.join(work, "waagent.pid"),
        "Extensions.Enabled=y",
        "AutoUpdate.Enabled=n",
        "CGroups.Enabled=n",
        "OS.EnableFirewall=n",
        "OS.OpensslPath=/usr/bin/openssl",
        "Logs.Verbose=n",
        "Logs.Console=n",
        "Protocol.EndpointDiscovery=static",
        "Provisioning.Agent=disabled",
        "ResourceDisk.Format=n",
        "",
    ])


class GuestAgent(object):
    """One VM's agent: detect the protocol, process goal states, report status, like the daemon's loop."""

    def __init__(self, work, package_root, wireserver, conf_path=None):
        self.work = work
        self.lib_dir = os.path.join(work, "lib")
        self.log_root = os.path.join(work, "log-azure")
        self.conf_path = conf_path or os.path.join(work, "waagent.conf")
        self.agent_log = os.path.join(work, "waagent.log")
        self.package_root = package_root
        self.wireserver = wireserver
        self.protocol = None
        self.handler = None
        self.version = None
        self._restutil = None
        self._saved_http_request = None

    # -- life cycle ------------------------------------------------------------------------------------
    def start(self):
        """Import the agent, point it at `work` and the fake, and run protocol detection (which fetches the
        first goal state and certificates: publish one on the fake before)."""
        for d in (self.lib_dir, self.log_root, os.path.dirname(self.conf_path)):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.lib_dir, 0o700)
        with open(self.conf_path, "w") as f:
            f.write(agent_conf(self.work))
        if self.package_root not in sys.path:
            sys.path.insert(0, self.package_root)
        conf = importlib.import_module("azurelinuxagent.common.conf")
        logger = importlib.import_module("azurelinuxagent.common.logger")
        event = importlib.import_module("azurelinuxagent.common.event")
        self._restutil = importlib.import_module("azurelinuxagent.common.utils.restutil")
        wire = importlib.import_module("azurelinuxagent.common.protocol.wire")
        exthandlers = importlib.import_module("azurelinuxagent.ga.exthandlers")
        self.version = importlib.import_module("azurelinuxagent.common.version").AGENT_VERSION
        if not os.path.dirname(os.path.abspath(importlib.import_module("azurelinuxagent").__file__)).startswith(
                os.path.abspath(self.package_root)):
            raise RuntimeError("another guest agent is already imported in this process")

        conf.load_conf_from_file(self.conf_path)
        logger.DEFAULT_LOGGER.appenders = []
        logger.add_logger_appender(logger.AppenderType.FILE, logger.LogLevel.INFO, path=self.agent_log)
        events = os.path.join(self.lib_dir, "events")
        os.makedirs(events, exist_ok=True)
        event.init_event_logger(events)

        self._saved_http_request = self._restutil.http_request
        self._restutil.http_request = self.wireserver.http_request  # the one and only replacement
        self.protocol = wire.WireProtocol(self._restutil.KNOWN_WIRESERVER_IP)
        self.protocol.detect()
        self.handler = exthandlers.get_exthandlers_handler(self.protocol)
        return self

    def close(self):
        if self._restutil is not None and self._saved_http_request is not None:
            self._restutil.http_request = self._saved_http_request
            self._saved_http_request = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # -- what the daemon's extension loop does --------------------------------------------------------
    def process_goal_state(self):
        """Fetch the goal state the fake now publishes and process it (download, install, enable, ...)."""
        client = self.protocol.client
        try:
            client.update_goal_state(force_update=True)
        except TypeError:  # agents whose update_goal_state takes no force_update
            client.update_goal_state()
        self.handler.run()

    def report(self):
        """One status reporting cycle; returns the VM status document the agent uploaded."""
        before = len(self.wireserver.status_uploads)
        self.handler.report_ext_handlers_status()
        if len(self.wireserver.status_uploads) == before:
            raise AssertionError("the agent uploaded no status (see %s)" % self.agent_log)
        return self.wireserver.last_status

    def report_until(self, done, timeout=60.0, interval=1.0):
        """Report every `interval` s until done(status) is true, as the agent's ~6 s cycle would; returns
        the last status. Raises AssertionError with the last status on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.report()
            if done(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError("no matching status within %.0f s; last uploaded: %r" % (timeout, status))
            time.sleep(interval)

    def read_manifest(self, handler_dir):
        """The agent's own reading of <handler_dir>/HandlerManifest.json (its HandlerManifest object)."""
        exthandlers = importlib.import_module("azurelinuxagent.ga.exthandlers")
        with open(os.path.join(handler_dir, "HandlerManifest.json")) as f:
            return exthandlers.HandlerManifest(json.load(f)[0])

    # -- where the agent put things -----------------------------------------------------------------
    def handler_dir(self, name, version):
        return os.path.join(self.lib_dir, "%s-%s" % (name, version))

    def handler_log_dir(self, name):
        return os.path.join(self.log_root, name)

    def command_log(self, name):
        path = os.path.join(self.handler_log_dir(name), "CommandExecution.log")
        if not os.path.exists(path):
            return ""
        with open(path, errors="replace") as f:
            return f.read()

    def commands_run(self, name):
        """[(version, command)] in the order the agent launched them, from CommandExecution.log."""
        pattern = re.compile(r"Executing command: %s-([^/\s]+)/\S+ (\w+) with environment" % re.escape(
            os.path.join(self.lib_dir, name)))
        return pattern.findall(self.command_log(name))


def handler_status(vm_status, name):
    """The handlerAggregateStatus entry for handler `name` in an uploaded VM status, or None."""
    for entry in vm_status["aggregateStatus"]["handlerAggregateStatus"]:
        if entry.get("handlerName") == name:
            return entry
    return None


def extension_status(vm_status, name):
    """(sequenceNumber, settingsStatus.status) reported for handler `name`, or (None, None)."""
    entry = handler_status(vm_status, name)
    runtime = (entry or {}).get("runtimeSettingsStatus") or {}
    return runtime.get("sequenceNumber"), (runtime.get("settingsStatus") or {}).get("status")

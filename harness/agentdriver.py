"""The child process that runs one real guest agent for harness.guestagent.GuestAgent (contract §15).

Run as `<python> harness/agentdriver.py`, under whichever interpreter the agent is tested on (3.11 or 3.13):
the agent's modules are process-global, so every agent version and every restart gets its own process. It
loads the agent from the package root and waagent.conf the parent names, replaces only
`restutil.http_request`, and forwards every request to the parent, which answers from its fake WireServer /
HostGAPlugin. Calls and answers are JSON lines on the process's original stdout/stdin; the agent's own
output goes to stderr.

Commands: start, process_goal_state (what the daemon's loop does: update the goal state, run the handlers),
report (one status upload), read_manifest, stop.
"""

import base64
import importlib
import inspect
import json
import os
import sys
import traceback

# Runs under the agent's interpreter (maybe outside the venv): the repository root makes `harness` importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness.wireserver import FakeResponse  # stdlib only, importable under any interpreter


class Channel(object):
    """JSON lines to the parent (calls, requests) and back (commands, answers)."""

    def __init__(self):
        self._out = os.fdopen(os.dup(1), "w", encoding="utf-8")
        self._in = sys.stdin
        os.dup2(2, 1)  # anything the agent prints goes to stderr, never into the protocol
        sys.stdout = sys.stderr

    def send(self, message):
        self._out.write(json.dumps(message) + "\n")
        self._out.flush()

    def receive(self):
        line = self._in.readline()
        return json.loads(line) if line else None


class Driver(object):
    def __init__(self, channel):
        self.channel = channel
        self.protocol = None
        self.handler = None
        self.supports_fast_track = False
        self.last_processed = None

    # -- the one replacement: restutil.http_request --------------------------------------------------
    def http_request(self, method, url, data=None, *args, **kwargs):
        headers = kwargs.get("headers") or (args[0] if args and isinstance(args[0], dict) else None) or {}
        body = data.encode("utf-8") if isinstance(data, str) else (data or b"")
        self.channel.send(
            {
                "http": {
                    "method": method,
                    "url": url,
                    "headers": dict(headers),
                    "data": base64.b64encode(body).decode() if data is not None else None,
                }
            }
        )
        answer = self.channel.receive()
        return FakeResponse(
            answer["status"], base64.b64decode(answer["body"]), [tuple(h) for h in answer["headers"]], answer["reason"]
        )

    # -- commands ------------------------------------------------------------------------------------
    def start(self, package_root, conf_path, agent_log, lib_dir):
        sys.path.insert(0, package_root)  # the agent under test, an unpacked .deb or a source tree
        conf = importlib.import_module("azurelinuxagent.common.conf")
        logger = importlib.import_module("azurelinuxagent.common.logger")
        event = importlib.import_module("azurelinuxagent.common.event")
        restutil = importlib.import_module("azurelinuxagent.common.utils.restutil")
        wire = importlib.import_module("azurelinuxagent.common.protocol.wire")
        exthandlers = importlib.import_module("azurelinuxagent.ga.exthandlers")
        conf.load_conf_from_file(conf_path)
        logger.DEFAULT_LOGGER.appenders = []
        logger.add_logger_appender(logger.AppenderType.FILE, logger.LogLevel.INFO, path=agent_log)
        events = os.path.join(lib_dir, "events")
        os.makedirs(events, exist_ok=True)
        event.init_event_logger(events)
        restutil.http_request = self.http_request
        self.protocol = wire.WireProtocol(restutil.KNOWN_WIRESERVER_IP)
        self.protocol.detect()
        self.handler = exthandlers.get_exthandlers_handler(self.protocol)
        return {
            "version": importlib.import_module("azurelinuxagent.common.version").AGENT_VERSION,
            "python": "%d.%d.%d" % sys.version_info[:3],
        }

    def process_goal_state(self):
        """What one pass of the daemon's loop (ga/update.py) does: fetch the goal state (the incarnation and,
        on agents that know FastTrack, the vmSettings with If-None-Match), note whether the HostGAPlugin supports
        vmSettings, and run the handlers only when the extensions goal state is new (2.8+: a new goal state
        id; 2.7.3: a new incarnation). Returns which goal state the agent now holds and whether it ran it."""
        client = self.protocol.client
        client.update_goal_state()
        goal_state = client.get_goal_state()
        egs = getattr(goal_state, "extensions_goal_state", None) or client.get_extensions_goal_state()
        if hasattr(egs, "is_outdated"):  # 2.8+: UpdateHandler._processing_new_extensions_goal_state
            new = egs.id != self.last_processed and not egs.is_outdated
            processed = egs.id
        else:  # 2.7.3: UpdateHandler._process_goal_state keys on the incarnation
            processed = goal_state.incarnation
            new = processed != self.last_processed
        hostplugin = client.get_host_plugin()
        if hasattr(hostplugin, "check_vm_settings_support"):  # 2.8+: what UpdateHandler reports as FastTrack support
            conf = importlib.import_module("azurelinuxagent.common.conf")
            try:
                self.supports_fast_track = bool(conf.get_enable_fast_track() and hostplugin.check_vm_settings_support())
            except Exception:  # VmSettingsNotSupported
                self.supports_fast_track = False
        if new:
            self.handler.run()
            self.last_processed = processed
        return {
            "ran": new,
            "supports_fast_track": self.supports_fast_track,
            "id": egs.id,
            "source": getattr(egs, "source", None),
            "parsed_from": type(egs).__name__,
        }

    def report(self):
        report = self.handler.report_ext_handlers_status
        if "vm_agent_supports_fast_track" in inspect.signature(report).parameters:
            report(vm_agent_supports_fast_track=self.supports_fast_track)
        else:
            report()
        return None

    def read_manifest(self, handler_dir):
        """How the agent itself reads <handler_dir>/HandlerManifest.json."""
        exthandlers = importlib.import_module("azurelinuxagent.ga.exthandlers")
        with open(os.path.join(handler_dir, "HandlerManifest.json")) as f:
            manifest = exthandlers.HandlerManifest(json.load(f)[0])
        return {
            name: getattr(manifest, name)()
            for name in (
                "is_report_heartbeat",
                "is_continue_on_update_failure",
                "supports_multiple_extensions",
                "is_update_with_install",
            )
        }


def main():
    channel = Channel()
    driver = Driver(channel)
    while True:
        call = channel.receive()
        if call is None or call["call"] == "stop":
            return 0
        try:
            channel.send({"result": getattr(driver, call["call"])(*call.get("args", []))})
        except Exception:
            channel.send({"error": traceback.format_exc()})


if __name__ == "__main__":
    sys.exit(main())

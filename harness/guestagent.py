"""The real Linux guest agent's extension handling, driven against harness.wireserver (contract §15).

The agents come from Debian's `waagent` package unpacked with `dpkg -x` and from the upstream release
tarball unpacked into the kit cache (mk/agent.mk), or from a tree named by WAAGENT_DIR. Each agent runs in
its own process (harness/agentdriver.py) under the interpreter it is tested on; nothing of it is patched
except its HTTP function, whose requests come back here to the fake WireServer / HostGAPlugin. Its Lib.Dir
and Extension.LogDir point into a work directory, and cgroups, firewall and self-update are off.
"""

import base64
import collections
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time

MAX_PYTHON = (3, 11)  # 2.7.3 imports distutils, removed in Python 3.12
UPSTREAM_AGENT = "WALinuxAgent-2.15.0.1"  # unpacked into the kit cache by `make waagent-upstream`
PY313_VENV = "agent-py3.13"  # a venv in the kit cache with distro and crypt-r (`make agent-py313`)
DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "agentdriver.py")

# One combination of the agent matrix: `package_root`/`python` are None when missing, `missing` says why.
AgentCombo = collections.namedtuple("AgentCombo", "id package_root python missing")


def kit_cache():
    return os.environ.get("KIT_CACHE") or os.path.expanduser("~/.cache/vmsnapshot-kit")


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
    """(sys.path entry, where it came from) of the Debian agent (or WAAGENT_DIR's), or (None, why not)."""
    explicit = os.environ.get("WAAGENT_DIR")
    if explicit:
        if _package_root(explicit):
            return _package_root(explicit), explicit
        return None, (
            "WAAGENT_DIR=%s holds no azurelinuxagent package (neither usr/lib/python3/dist-packages/"
            "azurelinuxagent nor azurelinuxagent/ at its top)" % explicit
        )
    cache = kit_cache()
    found = sorted((d for d in glob.glob(os.path.join(cache, "waagent-*")) if _package_root(d)), key=_version_key)
    if found:
        return _package_root(found[-1]), found[-1]
    return None, (
        "no unpacked guest agent in %s (run `make waagent` as root: apt-get download waagent + dpkg -x)"
        % os.path.join(cache, "waagent-<version>")
    )


def find_upstream_agent():
    """(sys.path entry, where) of the upstream release unpacked by `make waagent-upstream`, or (None, why not)."""
    tree = os.path.join(kit_cache(), UPSTREAM_AGENT)
    if _package_root(tree):
        return tree, tree
    return None, "%s is not unpacked (run `make waagent-upstream`: it unpacks ../shared/vendor/%s.tar.gz)" % (
        tree,
        UPSTREAM_AGENT,
    )


def _python_with_distro(python):
    """None if `python` runs and imports `distro` (the agent needs it), else why not."""
    try:
        subprocess.run([python, "-c", "import distro"], check=True, capture_output=True, timeout=60)
        return None
    except (OSError, subprocess.SubprocessError):
        return "%s cannot import the `distro` module the agent needs" % python


def find_python(version):
    """(interpreter, None) for running an agent under Python `version` ((3, 11) or (3, 13)), or (None, why)."""
    if version == sys.version_info[:2]:
        python = sys.executable
    elif version == (3, 13):
        python = os.path.join(kit_cache(), PY313_VENV, "bin", "python")
        if not os.path.exists(python):
            return None, "no %s (run `make agent-py313`: a venv on pyenv's or the system's 3.13)" % python
    else:
        python = shutil.which("python%d.%d" % version)
        if python is None:
            return None, "no python%d.%d on PATH" % version
    why = _python_with_distro(python)
    return (None, why) if why else (python, None)


def agent_matrix():
    """The agents tests/agent drive: Debian's 2.7.3 on Python 3.11, upstream 2.15.0.1 on 3.11 and on 3.13.
    WAAGENT_DIR replaces the matrix with that one agent on this interpreter."""
    if os.environ.get("WAAGENT_DIR"):
        root, where = find_agent()
        return [
            AgentCombo("waagent-dir", root, sys.executable, None)
            if root
            else AgentCombo("waagent-dir", None, None, where)
        ]
    combos = []
    for combo_id, find, version in (
        ("debian-2.7.3-py3.11", find_agent, (3, 11)),
        ("upstream-2.15-py3.11", find_upstream_agent, (3, 11)),
        ("upstream-2.15-py3.13", find_upstream_agent, (3, 13)),
    ):
        root, where = find()
        python, why = find_python(version) if root else (None, where)
        combos.append(AgentCombo(combo_id, root, python, why))
    return combos


def agent_conf(work):
    """Contract §15.3: everything under `work`, extensions on, cgroups, firewall and self-update off."""
    return "\n".join(
        [
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
        ]
    )


class GuestAgent(object):
    """One VM's agent, run in its own process (harness/agentdriver.py) under `python`: every request it makes
    is answered here by `wireserver`; the daemon's loop is driven call by call."""

    def __init__(self, work, package_root, wireserver, conf_path=None, python=None):
        self.work = work
        self.lib_dir = os.path.join(work, "lib")
        self.log_root = os.path.join(work, "log-azure")
        self.conf_path = conf_path or os.path.join(work, "waagent.conf")
        self.agent_log = os.path.join(work, "waagent.log")
        self.package_root = package_root
        self.python = python or sys.executable
        self.wireserver = wireserver
        self.version = None
        self.python_version = None
        self.supports_fast_track = False
        self.goal_state = None  # what process_goal_state last returned
        self._process = None

    # -- life cycle ------------------------------------------------------------------------------------
    def start(self):
        """Start the agent process and run protocol detection (which fetches the first goal state and
        certificates: publish one on the fake before)."""
        for d in (self.lib_dir, self.log_root, os.path.dirname(self.conf_path)):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.lib_dir, 0o700)
        with open(self.conf_path, "w") as f:
            f.write(agent_conf(self.work))
        with open(os.path.join(self.work, "agentdriver.stderr"), "ab") as stderr:
            self._process = subprocess.Popen(
                [self.python, DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
            )
        started = self._call("start", self.package_root, self.conf_path, self.agent_log, self.lib_dir)
        self.version, self.python_version = started["version"], started["python"]
        return self

    def close(self):
        process, self._process = self._process, None
        if process is not None:
            try:
                _send(process, {"call": "stop"})
                process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                process.kill()
                process.wait()
            process.stdin.close()
            process.stdout.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def _call(self, name, *args):
        """Run `name` in the agent process, answering its HTTP requests from the fake until it returns."""
        if self._process is None:
            raise RuntimeError("the agent is not started")
        _send(self._process, {"call": name, "args": list(args)})
        while True:
            line = self._process.stdout.readline()
            if not line:
                raise AssertionError(
                    "the agent process died (exit %s); see %s and agentdriver.stderr"
                    % (self._process.poll(), self.agent_log)
                )
            message = json.loads(line)
            if "http" in message:
                _send(self._process, self._answer(message["http"]))
            elif "error" in message:
                raise AssertionError("the agent raised in %s:\n%s" % (name, message["error"]))
            else:
                return message["result"]

    def _answer(self, request):
        data = base64.b64decode(request["data"]) if request["data"] is not None else None
        response = self.wireserver.http_request(request["method"], request["url"], data, headers=request["headers"])
        return {
            "status": response.status,
            "reason": response.reason,
            "headers": response.getheaders(),
            "body": base64.b64encode(response.read()).decode(),
        }

    # -- what the daemon's extension loop does --------------------------------------------------------
    def process_goal_state(self):
        """Fetch the goal state the fake now publishes and, if it is new to the agent, process it (download,
        install, enable, ...). Returns {ran, supports_fast_track, id, source, parsed_from}: the extensions goal
        state the agent holds, by its own id, source and class (ExtensionsGoalStateFromVmSettings or ...
        FromExtensionsConfig)."""
        self.goal_state = self._call("process_goal_state")
        self.supports_fast_track = self.goal_state["supports_fast_track"]
        return self.goal_state

    def report(self):
        """One status reporting cycle; returns the VM status document the agent uploaded."""
        before = len(self.wireserver.status_uploads)
        self._call("report")
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
        """The agent's own reading of <handler_dir>/HandlerManifest.json: {method name: its answer}."""
        return self._call("read_manifest", handler_dir)

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
        pattern = re.compile(
            r"Executing command: %s-([^/\s]+)/\S+ (\w+) with environment" % re.escape(os.path.join(self.lib_dir, name))
        )
        return pattern.findall(self.command_log(name))


def _send(process, message):
    process.stdin.write((json.dumps(message) + "\n").encode("utf-8"))
    process.stdin.flush()


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

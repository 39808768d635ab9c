"""Install and drive the extension exactly as the Linux guest agent does (contract §1-§6), offline.

The built zip is unpacked into <lib>/<Publisher>.<Type>-<version>/, every file gets `chmod u+x`,
HandlerEnvironment.json and config/<seq>.settings are written the agent's way, and each command runs as
`/bin/sh -c <command from HandlerManifest.json>` from the handler directory with the agent's variables.
"""

import json
import os
import stat
import subprocess
import time
import zipfile

import extension_zip


def build_zip(out_dir, version=None):
    return extension_zip.build_zip(out_dir, version)


class AgentSim(object):
    """One VM's agent-side layout: lib dir, log dir, certificates, and the handler directory."""

    def __init__(self, work, zip_path, python=None, config_path=None):
        self.work = work
        self.lib = os.path.join(work, "lib")
        self.log_root = os.path.join(work, "log-azure")
        self.zip_path = zip_path
        self.python = python
        self.config_path = config_path
        name = os.path.basename(zip_path)[:-4]  # <Publisher>.<Type>__<version>
        self.handler_name, self.version = name.split("__")
        self.base = os.path.join(self.lib, "%s-%s" % (self.handler_name, self.version))
        self.log_dir = os.path.join(self.log_root, self.handler_name)
        self.events_dir = os.path.join(self.log_dir, "events")

    def install_files(self):
        """Unzip, chmod u+x everything, create config/status dirs and HandlerEnvironment.json."""
        os.makedirs(self.base, exist_ok=True)
        with zipfile.ZipFile(self.zip_path) as zf:
            zf.extractall(self.base)
        for dirpath, _, files in os.walk(self.base):
            for f in files:
                p = os.path.join(dirpath, f)
                os.chmod(p, os.stat(p).st_mode | stat.S_IXUSR)
        for d, mode in (
            (os.path.join(self.base, "config"), 0o700),
            (os.path.join(self.base, "status"), 0o700),
            (self.log_dir, 0o755),
            (self.events_dir, 0o700),
        ):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, mode)
        env = [
            {
                "name": self.handler_name,
                "version": 1.0,
                "handlerEnvironment": {
                    "logFolder": self.log_dir,
                    "configFolder": os.path.join(self.base, "config"),
                    "statusFolder": os.path.join(self.base, "status"),
                    "heartbeatFile": os.path.join(self.base, "heartbeat.log"),
                    "eventsFolder": self.events_dir,
                    "eventsFolder_preview": self.events_dir,
                },
            }
        ]
        with open(os.path.join(self.base, "HandlerEnvironment.json"), "w") as f:
            json.dump(env, f)
        return self

    def manifest(self):
        with open(os.path.join(self.base, "HandlerManifest.json")) as f:
            return json.load(f)[0]["handlerManifest"]

    def write_settings(self, seq, public, protected_b64=None, thumbprint=None):
        doc = {
            "runtimeSettings": [
                {
                    "handlerSettings": {
                        "publicSettings": public,
                        "protectedSettings": protected_b64,
                        "protectedSettingsCertThumbprint": thumbprint,
                    }
                }
            ]
        }
        path = os.path.join(self.base, "config", "%d.settings" % seq)
        with open(path, "w") as f:
            f.write(json.dumps(doc))
        return path

    def env(self, seq, extra=None):
        env = dict(os.environ)
        env.update(
            {
                "AZURE_GUEST_AGENT_EXTENSION_PATH": self.base,
                "AZURE_GUEST_AGENT_EXTENSION_VERSION": self.version,
                "AZURE_GUEST_AGENT_WIRE_PROTOCOL_ADDRESS": "168.63.129.16",
                "ConfigSequenceNumber": str(seq),
                "AZURE_GUEST_AGENT_EXTENSION_SUPPORTED_FEATURES": (
                    '[{"Key": "ExtensionTelemetryPipeline", "Value": "1.0"}]'
                ),
            }
        )
        if self.python:
            env["VMSNAPSHOT_PYTHON"] = self.python
        if self.config_path:
            env["VMSNAPSHOT_CONFIG"] = self.config_path
        env.update(extra or {})
        return env

    def run(self, command, seq=0, extra_env=None, timeout=60):
        """Run a manifest command as the agent does; returns CompletedProcess (text)."""
        cmd = self.manifest()["%sCommand" % command].lstrip("/")
        return subprocess.run(
            ["/bin/sh", "-c", os.path.join(self.base, cmd)],
            cwd=self.base,
            env=self.env(seq, extra_env),
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )

    def handle(self, *args, seq=0, timeout=60):
        """Run the launcher with any arguments (diagnose, a usage error), as an operator would; CompletedProcess."""
        return subprocess.run(
            [os.path.join(self.base, "bin", "handle.sh")] + list(args),
            cwd=self.base,
            env=self.env(seq),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def status(self, seq):
        path = os.path.join(self.base, "status", "%d.status" % seq)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    def wait_terminal(self, seq, timeout=30):
        """Poll status/<seq>.status until success or error (the agent's view)."""
        deadline = time.monotonic() + timeout
        doc = None
        while time.monotonic() < deadline:
            try:
                doc = self.status(seq)
            except ValueError:
                doc = None  # mid-rename: the agent would retry too
            if doc and doc[0]["status"]["status"] in ("success", "error"):
                return doc
            time.sleep(0.02)
        raise AssertionError("no terminal status for seq %d within %ss; last: %r" % (seq, timeout, doc))

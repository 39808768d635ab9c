"""A VM as the guest agent sees it, for driving the built extension through the real agent (contract §15).

Disks are page blobs in Azurite, the fabric is harness.wireserver, the agent is the real one
(harness.guestagent); every path the agent and the runtime write is under `<root>/vm`, and the runtime's
configuration (harness.jobs.safe_config) never freezes and keeps its /etc/azure paths there too.
"""

import json
import os

from .guestagent import GuestAgent, extension_status
from .jobs import SnapshotVM, safe_config, script_config_path
from .jobs import hook_dir as jobs_hook_dir
from .wireserver import FakeWireServer, GoalState

TERMINAL = ("success", "error")


class AgentVM(object):
    """A VM as the agent sees it: disks in Azurite, the fabric (fake WireServer) and the real agent."""

    def __init__(self, root, package_root, azurite, tenant, zips, python=None):
        self.work = os.path.join(root, "vm")  # everything the agent and the runtime write
        etc = os.path.join(self.work, "etc-azure")
        os.makedirs(etc)
        self.runtime_config = safe_config(os.path.join(etc, "vmbackup.conf"), self.work)
        self.versions = sorted(zips, key=lambda v: [int(x) for x in v.split(".")])
        os.makedirs(os.path.join(root, "settings"))  # SnapshotVM's own scratch: only its settings are used
        self.disks = SnapshotVM(os.path.join(root, "settings"), azurite, tenant, zips[self.versions[0]])
        self.tenant = tenant
        self.handler = os.path.basename(zips[self.versions[0]]).split("__")[0]
        self.wireserver = FakeWireServer(os.path.join(self.work, "lib"), tenant, zips)
        # The agent reads the same waagent.conf the runtime is pointed at (WaagentConf in safe_config).
        self.agent = GuestAgent(
            self.work, package_root, self.wireserver, conf_path=os.path.join(etc, "waagent.conf"), python=python
        )
        self.published = None
        self.publication = None  # how the host sent the last goal state (harness.fasttrack.Publication)
        self._mark = 0

    def write_script_config(self, doc):
        path = script_config_path(self.work)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(doc, f)
        os.chmod(path, 0o600)

    def handler_settings(self, seq, public=None, private=None, cipher="-des3"):
        public = self.disks.public(seq) if public is None else public
        private = self.disks.private() if private is None else private
        return {
            "publicSettings": public,
            "protectedSettings": self.tenant.encrypt(json.dumps(private), cipher),
            "protectedSettingsCertThumbprint": self.tenant.thumbprint,
        }

    def publish(self, version, seq, settings, state="enabled", source=None):
        """A new goal state, sent as the host would (FastTrack to an agent that advertised it, else Fabric)."""
        self.published = GoalState(self.handler, version, state, seq, settings)
        self.publication = self.wireserver.publish(self.published, source)
        return self.publication

    def deliver(self, version, seq, settings, state="enabled"):
        """Publish a goal state and let the agent process it; returns the commands it ran for it."""
        self.publish(version, seq, settings, state)
        self.agent.process_goal_state()
        return self.new_commands()

    def deliver_again(self, state=None):
        """The same goal state under a new incarnation, processed; returns the commands the agent ran."""
        self.republish(state)
        self.agent.process_goal_state()
        return self.new_commands()

    def restart_agent(self):
        """Stop the agent and start a new one on the same disk state, as after a reboot or agent update."""
        old = self.agent
        old.close()
        self.agent = GuestAgent(old.work, old.package_root, self.wireserver, conf_path=old.conf_path, python=old.python)
        self.agent.start()

    def republish(self, state=None):
        """The same goal state again under a new incarnation (what a host refresh or restart looks like)."""
        gs = self.published
        self.publish(gs.version, gs.seq, gs.handler_settings, state or gs.state)

    def wait_terminal(self, seq, timeout=60):
        def done(status):
            reported_seq, ext = extension_status(status, self.handler)
            return reported_seq == seq and (ext or {}).get("status") in TERMINAL

        return self.agent.report_until(done, timeout=timeout)

    def handler_dir(self, version):
        return self.agent.handler_dir(self.handler, version)

    def status_file(self, version, seq):
        with open(os.path.join(self.handler_dir(version), "status", "%d.status" % seq)) as f:
            return json.load(f)

    def snapshot_count(self):
        return len(self.disks.snapshots())

    def commands(self):
        return self.agent.commands_run(self.handler)

    def new_commands(self):
        """[(version, command)] the agent launched since the last call."""
        ran = self.agent.commands_run(self.handler)
        fresh, self._mark = ran[self._mark :], len(ran)
        return fresh

    def snapshots_of_task(self, task):
        """Snapshots whose metadata carries BackupTaskId=`task` (the objectStr backupMetadata of harness.jobs)."""
        return [s for s in self.disks.snapshots() if s[2].get("BackupTaskId") == task]

    def write_hook(self, name, script):
        """An executable pre/post hook in the runtime's HookDir (root-owned, 0700, as the runtime demands)."""
        hook_dir = jobs_hook_dir(self.work)
        os.makedirs(hook_dir, mode=0o700, exist_ok=True)
        path = os.path.join(hook_dir, name)
        with open(path, "w") as f:
            f.write(script)
        os.chmod(path, 0o700)
        return path

"""Fixtures for driving the built extension through the real Linux guest agent (contract §15).

One agent (Debian's waagent, unpacked by `make waagent`) per pytest process; skipped with a printed reason
when it is missing or this Python is too new for it. Runtime runs are confined to a temp dir:
VMSNAPSHOT_CONFIG never freezes, and every /etc/azure path it names lives under the work dir.
"""

import json
import os
import re

import pytest

from harness.azurite import Azurite
from harness.certs import TenantCert, make_tls
from harness.guestagent import GuestAgent, extension_status, find_agent
from harness.handler import build_zip
from harness.jobs import SnapshotVM, safe_config
from harness.wireserver import FakeWireServer, GoalState

TERMINAL = ("success", "error")


@pytest.fixture(scope="session")
def agent_package():
    package_root, where = find_agent()
    if package_root is None:
        print("SKIP tests/agent: %s" % where)
        pytest.skip(where)
    return package_root


def next_version(version):
    """A strictly higher version than `version` (last numeric part + 1), for the upgrade zip."""
    parts = version.split(".")
    return ".".join(parts[:-1] + [str(int(parts[-1]) + 1)])


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    """{version: zip path}: the built zip and a rebuilt higher version to upgrade to.

    AGENT_TEST_ZIP names a zip already built (e.g. by `make dist`) to test as is; otherwise it is built
    here with the same builder (packaging/extension_zip.py, reproducible: the same bytes `make dist` makes).
    """
    out = str(tmp_path_factory.mktemp("dist"))
    current = os.environ.get("AGENT_TEST_ZIP") or build_zip(out)
    if not os.path.isfile(current):
        pytest.fail("AGENT_TEST_ZIP=%s does not exist" % current)
    version = re.search(r"__(.+)\.zip$", current).group(1)
    upgrade = next_version(version)
    return {version: current, upgrade: build_zip(out, upgrade)}


class AgentVM(object):
    """A VM as the agent sees it: disks in Azurite, the fabric (fake WireServer) and the real agent."""

    def __init__(self, root, package_root, azurite, tenant, zips):
        self.work = os.path.join(root, "vm")          # everything the agent and the runtime write
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
        self.agent = GuestAgent(self.work, package_root, self.wireserver, conf_path=os.path.join(etc, "waagent.conf"))
        self.published = None

    def write_script_config(self, doc):
        path = os.path.join(self.work, "etc-azure", "VMSnapshotScriptPluginConfig.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        os.chmod(path, 0o600)

    def handler_settings(self, seq, public=None, private=None, cipher="-des3"):
        public = self.disks.public(seq) if public is None else public
        private = self.disks.private() if private is None else private
        return {"publicSettings": public, "protectedSettings": self.tenant.encrypt(json.dumps(private), cipher),
                "protectedSettingsCertThumbprint": self.tenant.thumbprint}

    def publish(self, version, seq, settings, state="enabled"):
        self.published = GoalState(self.handler, version, state, seq, settings)
        self.wireserver.publish(self.published)

    def restart_agent(self):
        """Stop the agent and start a new one on the same disk state, as after a reboot or agent update."""
        old = self.agent
        old.close()
        self.agent = GuestAgent(old.work, old.package_root, self.wireserver, conf_path=old.conf_path)
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


@pytest.fixture(scope="module")
def agent_vm(tmp_path_factory, agent_package, zips):
    """A started agent on a fresh VM, with the runtime's environment set the way the agent passes it on."""
    root = str(tmp_path_factory.mktemp("agentvm"))
    tls = make_tls(os.path.join(root, "tls"))
    tenant = TenantCert(os.path.join(root, "tenant"))
    mp = pytest.MonkeyPatch()
    with Azurite(os.path.join(root, "azurite"), tls=tls, in_memory=True) as azurite:
        vm = AgentVM(root, agent_package, azurite, tenant, zips)
        mp.setenv("VMSNAPSHOT_CONFIG", vm.runtime_config)
        mp.setenv("SSL_CERT_FILE", tls["ca"])
        mp.delenv("SSL_CERT_DIR", raising=False)
        mp.delenv("VMSNAPSHOT_PYTHON", raising=False)  # the launcher finds python3 as on a VM
        try:
            yield vm
        finally:
            vm.agent.close()
            mp.undo()

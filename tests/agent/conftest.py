"""Fixtures for driving the built extension through the real Linux guest agent (contract §15).

One agent (Debian's waagent, unpacked by `make waagent`) per pytest process; skipped with a printed reason
when it is missing or this Python is too new for it. Runtime runs are confined to a temp dir:
VMSNAPSHOT_CONFIG never freezes, and every /etc/azure path it names lives under the work dir.
"""

import glob
import os
import re

import pytest

from harness.agentvm import AgentVM
from harness.azurite import Azurite
from harness.certs import TenantCert, make_tls
from harness.guestagent import find_agent
from harness.handler import build_zip


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


def zip_under_test(out_dir):
    """AGENT_TEST_ZIP: a zip, or a directory holding exactly one (`make test` passes dist/ from `make dist`);
    unset: build one now with packaging/extension_zip.py, the builder `make dist` uses."""
    named = os.environ.get("AGENT_TEST_ZIP")
    if not named:
        return build_zip(out_dir)
    found = [named] if os.path.isfile(named) else sorted(glob.glob(os.path.join(named, "*.zip")))
    if len(found) != 1:
        pytest.fail("AGENT_TEST_ZIP=%s: expected one extension zip, found %d" % (named, len(found)))
    return found[0]


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    """{version: zip path}: the zip under test and the same source rebuilt at a higher version (the upgrade)."""
    out = str(tmp_path_factory.mktemp("dist"))
    current = zip_under_test(out)
    version = re.search(r"__(.+)\.zip$", current).group(1)
    upgrade = next_version(version)
    return {version: current, upgrade: build_zip(out, upgrade)}


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

"""Fixtures for driving the built extension through the real Linux guest agent (contract §15).

Every module runs once per agent of the matrix (harness.guestagent.agent_matrix: Debian's 2.7.3 and upstream
2.15.0.1 on Python 3.11, 2.15.0.1 on 3.13), each agent in its own process; a combination whose agent or
interpreter is missing is skipped with a printed reason. Runtime runs are confined to a temp dir:
VMSNAPSHOT_CONFIG never freezes, and every /etc/azure path it names lives under the work dir.
"""

import glob
import os
import re

import pytest

from harness.agentvm import AgentVM
from harness.azurite import Azurite
from harness.certs import TenantCert, make_tls
from harness.guestagent import agent_matrix
from harness.handler import build_zip

MATRIX = agent_matrix()
# Combinations that run the core only: tests marked `agent_full` (about the handler's own status contents
# and its cancel path, which do not depend on the agent's interpreter) are skipped there, keeping the suite's time.
CORE_ONLY = {"upstream-2.15-py3.13"}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "agent_full: runs on the full-matrix agents only, not on %s" % (", ".join(sorted(CORE_ONLY)))
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        combo = getattr(getattr(item, "callspec", None), "params", {}).get("agent_combo")
        if combo is not None and combo.id in CORE_ONLY and item.get_closest_marker("agent_full"):
            item.add_marker(
                pytest.mark.skip(
                    reason="%s runs the core subset; the full lifecycle runs on %s"
                    % (combo.id, ", ".join(c.id for c in MATRIX if c.id not in CORE_ONLY))
                )
            )


@pytest.fixture(scope="session", params=MATRIX, ids=[c.id for c in MATRIX])
def agent_combo(request):
    """One agent of the matrix: an AgentCombo with its package root and interpreter."""
    combo = request.param
    if combo.missing:
        print("SKIP tests/agent [%s]: %s" % (combo.id, combo.missing))
        pytest.skip("%s: %s" % (combo.id, combo.missing))
    return combo


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
def agent_vm(tmp_path_factory, agent_combo, zips):
    """A started agent on a fresh VM, with the runtime's environment set the way the agent passes it on."""
    root = str(tmp_path_factory.mktemp("agentvm"))
    tls = make_tls(os.path.join(root, "tls"))
    tenant = TenantCert(os.path.join(root, "tenant"))
    mp = pytest.MonkeyPatch()
    with Azurite(os.path.join(root, "azurite"), tls=tls, in_memory=True) as azurite:
        vm = AgentVM(root, agent_combo.package_root, azurite, tenant, zips, python=agent_combo.python)
        vm.combo = agent_combo
        mp.setenv("VMSNAPSHOT_CONFIG", vm.runtime_config)
        mp.setenv("SSL_CERT_FILE", tls["ca"])
        mp.delenv("SSL_CERT_DIR", raising=False)
        mp.delenv("VMSNAPSHOT_PYTHON", raising=False)  # the launcher finds python3 as on a VM
        try:
            yield vm
        finally:
            vm.agent.close()
            mp.undo()

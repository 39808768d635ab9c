"""Fixtures for the templates/scripts tests: the loopback ARM emulator with a small hand-built estate and
the real az CLI (its own venv, `make setup-azcli`) logged in to it through a registered custom cloud."""

import os
import subprocess

import pytest

from harness.armemu import VM, ArmEmulator, Estate, Extension, Vault
from harness.azcli import AzCli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(REPO, "deploy", "scripts")
SUB = "5c5b0e7a-0000-4000-8000-00000000beef"


@pytest.fixture(scope="session")
def az_cli():
    az = AzCli.find()
    if az is None:
        pytest.skip("az CLI not installed in $KIT_CACHE/azcli (run `make setup-azcli`)")
    return az


def build_estate(
    groups=("rg-web", "rg-db"), per_group=3, protected=0, fail_enable=(), tags=None, extension_state="Succeeded"
):
    """VMs named <group>-vmNN in one subscription; the first `protected` VMs are already protected."""
    est = Estate()
    est.add_subscription(SUB, "Kit templates test")
    vault = est.add_vault(Vault(SUB, "rg-backup", "vault1"), policies=("DefaultPolicy", "SecondPolicy"))
    vms = []
    for g in groups:
        for i in range(per_group):
            vm = est.add_vm(VM(SUB, g, "%s-vm%02d" % (g, i), tags=(tags(g, i) if tags else {})))
            vm.extensions.append(Extension(name="VMSnapshotLinux", provisioning_state=extension_state))
            vms.append(vm)
    for vm in vms[:protected]:
        est.protect(vault, vm)
    for index in fail_enable:
        vms[index].fail_enable = True
    return est, vault, vms


@pytest.fixture
def loopback(az_cli, tmp_path):
    """Factory: loopback(estate, **knobs) -> (emulator, az session); everything stops after the test."""
    started = []

    def make(estate, **knobs):
        knobs.setdefault("lro_polls", 0)  # az sleeps 5 s per InProgress answer
        emu = ArmEmulator(estate, **knobs).start()
        started.append(emu)
        return emu, az_cli.session(emu, str(tmp_path / ("az%d" % len(started))))

    yield make
    for emu in started:
        emu.stop()


def run_script(name, *args, env, timeout=240):
    return subprocess.run(
        [os.path.join(SCRIPTS, name), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def table_rows(text):
    """Rows of an az-style table (header, dashed rule, rows) as lists of cells split on 2+ spaces."""
    import re

    lines = [ln for ln in text.splitlines() if ln.strip()]
    return [re.split(r"\s{2,}", ln.strip()) for ln in lines[2:]]

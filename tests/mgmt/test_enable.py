"""vmsnapkit.enable in-process: the container refresh waits through azure-core's ARM poller, and the names
it protects VMs under come from vmsnapkit.backupnames."""

import types

import pytest
from vmsnapkit import enable
from vmsnapkit.errors import KitError
from vmsnapkit.protection import vault_from_id

from .conftest import in_process_factory


@pytest.mark.parametrize("polls", [0, 3])
def test_container_refresh_is_polled_by_the_sdk_poller_until_done(emulator, monkeypatch, polls):
    emu = emulator(vms=12, subscriptions=1, unprotected=4, undiscovered=2, refresh_polls=polls)
    factory = in_process_factory(emu, monkeypatch, polling_interval=0)
    undiscovered = [emu.estate.vms[k] for k in emu.estate.expect["undiscovered"]]
    target = emu.estate.protecting_vault(undiscovered[0]) or next(iter(emu.estate.vaults.values()))
    vault = vault_from_id(target.id, target.location)
    bk = factory.backup(vault.subscription)
    emu.clear_log()
    try:
        enable._refresh_containers(types.SimpleNamespace(factory=factory), bk, vault)
    finally:
        bk.close()
    assert len(emu.requests(method="POST", path="refreshContainers")) == 1
    polled = emu.requests(method="GET", path="/operationResults/")
    assert len(polled) == polls + 1  # 202 answers, then the 204
    in_region = [vm for vm in undiscovered if vm.location.lower() == target.location.lower()]
    assert in_region and all(vm.discovered for vm in in_region)


def test_documented_names_match_what_the_emulator_expects(emulator):
    emu = emulator(vms=3, subscriptions=1)
    for vm in emu.estate.vms.values():
        assert enable._documented_names(vm) == (vm.container_name, vm.item_name)
        assert vm.container_name == f"IaasVMContainer;iaasvmcontainerv2;{vm.resource_group};{vm.name}"


def test_named_vault_needs_its_resource_group():
    args = types.SimpleNamespace(vault="v1", vault_resource_group=None, vault_subscription=None)
    with pytest.raises(KitError, match="--vault NAME needs --vault-resource-group"):
        enable._named_vault(None, args, types.SimpleNamespace(subscriptions=["s"]))

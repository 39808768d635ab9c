"""vmsnapkit.errors: `translated` turns real SDK failures (from the emulator) into one-line KitErrors with
the right exit code, and lets everything else through unchanged."""

import pytest
from vmsnapkit.errors import EXIT_FORBIDDEN, EXIT_NOT_FOUND, KitError, error_code, error_message, translated

from .conftest import in_process_factory


def test_unknown_subscription_becomes_not_found_naming_the_step(emulator, monkeypatch):
    emu = emulator(vms=2, subscriptions=1)
    client = in_process_factory(emu, monkeypatch).compute("deadbeef-0000-4000-8000-000000000000")
    try:
        with pytest.raises(KitError) as err, translated("listing VMs"):
            list(client.virtual_machines.list_all())
    finally:
        client.close()
    assert err.value.exit_code == EXIT_NOT_FOUND
    assert err.value.message.startswith("unknown subscription (listing VMs): ")
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_forbidden_vault_becomes_permission_denied_with_the_arm_code(emulator, monkeypatch):
    from azure.core.exceptions import HttpResponseError

    emu = emulator(vms=4, subscriptions=1, forbidden_vaults=["vault-1"])
    vault = next(v for v in emu.estate.vaults.values() if v.forbidden)
    client = in_process_factory(emu, monkeypatch).backup(vault.subscription)
    try:
        with pytest.raises(HttpResponseError) as raw:
            list(client.backup_protected_items.list(vault.name, vault.resource_group))
        assert error_code(raw.value) == "AuthorizationFailed" and error_message(raw.value)
        with pytest.raises(KitError) as err, translated(f"vault {vault.name}"):
            list(client.backup_protected_items.list(vault.name, vault.resource_group))
    finally:
        client.close()
    assert err.value.exit_code == EXIT_FORBIDDEN
    assert err.value.message.startswith(f"permission denied (vault {vault.name}): AuthorizationFailed: ")


def test_kit_errors_and_other_exceptions_pass_through_unchanged():
    mine = KitError("as it was", EXIT_NOT_FOUND)
    with pytest.raises(KitError) as err, translated("x"):
        raise mine
    assert err.value is mine
    with pytest.raises(LookupError, match="not an Azure error"), translated("x"):
        raise LookupError("not an Azure error")

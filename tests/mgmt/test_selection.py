"""vmsnapkit.selection: subscriptions through the Subscriptions client, and the parsed selection."""

import types

import pytest
from vmsnapkit.errors import EXIT_NOT_FOUND, EXIT_USAGE, KitError
from vmsnapkit.selection import Selection, VmRef, from_args, parse_vm_id, resolve_subscriptions

from .conftest import in_process_factory


def test_every_enabled_subscription_is_listed_at_tenant_level(emulator, monkeypatch):
    emu = emulator(vms=6, subscriptions=3)
    factory = in_process_factory(emu, monkeypatch)
    emu.clear_log()
    sel = resolve_subscriptions(factory, Selection())
    assert sorted(sel.subscriptions) == sorted(emu.estate.subscriptions)
    calls = emu.requests()
    assert [(c["method"], c["path"]) for c in calls] == [("GET", "/subscriptions")]
    assert calls[0]["query"]["api-version"] == "2022-12-01"


def test_named_subscriptions_are_checked_and_an_unknown_one_is_named(emulator, monkeypatch):
    emu = emulator(vms=6, subscriptions=2)
    factory = in_process_factory(emu, monkeypatch)
    known = sorted(emu.estate.subscriptions)
    assert resolve_subscriptions(factory, Selection(subscriptions=list(known))).subscriptions == known
    unknown = "deadbeef-0000-4000-8000-000000000000"
    with pytest.raises(KitError) as err:
        resolve_subscriptions(factory, Selection(subscriptions=[known[0], unknown]))
    assert err.value.exit_code == EXIT_NOT_FOUND and repr(unknown) in err.value.message


def test_parse_vm_id_and_the_vms_file(tmp_path):
    ref = parse_vm_id(" /subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/v/ ")
    assert ref == VmRef("s", "g", "v")
    with pytest.raises(ValueError, match="is not a VM resource id"):
        parse_vm_id("/subscriptions/s/resourceGroups/g")
    f = tmp_path / "vms.txt"
    f.write_text(
        f"# two VMs\n{ref.id}  # first\n\n/subscriptions/t/resourceGroups/h/providers/"
        "Microsoft.Compute/virtualMachines/w\n"
    )
    args = types.SimpleNamespace(
        subscription=["s"], resource_group=None, vm_ids=None, tag=[("k", "v")], vms_file=str(f)
    )
    sel = from_args(args)
    assert [v.name for v in sel.vms] == ["v", "w"] and sel.subscriptions == ["s", "t"] and sel.tags == {"k": "v"}
    f.write_text(ref.id + "\nnope\n")
    with pytest.raises(KitError, match="--vms-file line 2: 'nope' is not a VM resource id") as err:
        from_args(args)
    assert err.value.exit_code == EXIT_USAGE

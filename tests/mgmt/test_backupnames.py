"""vmsnapkit.backupnames: one home for Azure Backup's VM names, shared by enable, the templates and the
ARM emulator."""

from vmsnapkit import backupnames
from vmsnapkit.arm import description, rules

from harness.armemu.state import VM


def test_names_and_their_patterns():
    c, i = backupnames.container_name("rg-1", "vm-1"), backupnames.item_name("rg-1", "vm-1")
    assert (c, i) == ("IaasVMContainer;iaasvmcontainerv2;rg-1;vm-1", "VM;iaasvmcontainerv2;rg-1;vm-1")
    assert backupnames.CONTAINER_NAME.match(c) and backupnames.CONTAINER_NAME.match(c.lower())
    assert backupnames.ITEM_NAME.match(i) and not backupnames.ITEM_NAME.match(c)
    assert not backupnames.CONTAINER_NAME.match("IaasVMContainer;iaasvmcontainerv2;rg;vm;extra")
    item_id = (
        f"/subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v/backupFabrics/"
        f"Azure/protectionContainers/{c}/protectedItems/{i}"
    )
    assert backupnames.CONTAINER_IN_ID.search(item_id).group(1) == c


def test_templates_rules_and_emulator_use_the_same_names():
    assert description.FABRIC == backupnames.FABRIC
    assert description.CONTAINER_PREFIX == backupnames.CONTAINER_PREFIX.lower()
    assert description.ITEM_PREFIX == backupnames.ITEM_PREFIX.lower()
    assert description.BACKUP_MANAGEMENT_TYPE == backupnames.BACKUP_MANAGEMENT_TYPE
    assert rules._could_match(
        description.CONTAINER_PREFIX + "*", backupnames.CONTAINER_NAME, backupnames.CONTAINER_PREFIX.lower()
    )
    vm = VM("s", "rg-2", "vm-9")
    assert (vm.container_name, vm.item_name) == (
        backupnames.container_name("rg-2", "vm-9"),
        backupnames.item_name("rg-2", "vm-9"),
    )

"""Azure Backup's names for an Azure VM, in one place: the kit's enable command, the ARM templates and the
loopback ARM emulator all build them from here.

A VM `vm` in resource group `rg` is protected under the fabric `Azure`, in the protection container
`IaasVMContainer;iaasvmcontainerv2;<rg>;<vm>`, as the protected item `VM;iaasvmcontainerv2;<rg>;<vm>`.
The service compares these names case-insensitively.
"""

import re

FABRIC = "Azure"
BACKUP_MANAGEMENT_TYPE = "AzureIaasVM"
CONTAINER_PREFIX = "IaasVMContainer;iaasvmcontainerv2;"
ITEM_PREFIX = "VM;iaasvmcontainerv2;"
CONTAINER_NAME = re.compile("^" + re.escape(CONTAINER_PREFIX) + r"[^;/]+;[^;/]+$", re.IGNORECASE)
ITEM_NAME = re.compile("^" + re.escape(ITEM_PREFIX) + r"[^;/]+;[^;/]+$", re.IGNORECASE)
CONTAINER_IN_ID = re.compile(r"/protectionContainers/([^/]+)/", re.IGNORECASE)


def container_name(resource_group, vm_name):
    return f"{CONTAINER_PREFIX}{resource_group};{vm_name}"


def item_name(resource_group, vm_name):
    return f"{ITEM_PREFIX}{resource_group};{vm_name}"

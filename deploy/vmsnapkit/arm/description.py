"""The one description the kit's ARM templates are generated from.

Everything a template hard-codes lives here, once: the extension's identity (from the repository's VERSION
file and the runtime's identity module), the apiVersions (newest in the shared schema subset, at most two
years old), Azure Backup's naming formats and limits, and the built-in role ids the at-scale policy needs.
"""

from __future__ import annotations

import importlib.util
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TEMPLATES_DIR = os.path.join(REPO_ROOT, "arm-templates")

DEPLOYMENT_SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
SUBSCRIPTION_SCHEMA = "https://schema.management.azure.com/schemas/2018-05-01/subscriptionDeploymentTemplate.json#"
PARAMETERS_SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#"
CONTENT_VERSION = "1.0.0.0"

API = {
    "Microsoft.Compute": "2025-04-01",
    "Microsoft.RecoveryServices": "2025-08-01",
    "Microsoft.Authorization/policy": "2025-01-01",
    # roleAssignments: 2022-04-01 is the newest stable version (and the only one in the subset).
    "Microsoft.Authorization/roleAssignments": "2022-04-01",
    # No schema for Microsoft.Resources in the subset; the newest version azure-cli 2.91 speaks.
    "Microsoft.Resources": "2025-04-01",
}

# Azure Backup facts (management-reference section 1).
FABRIC = "Azure"
CONTAINER_PREFIX = "iaasvmcontainer;iaasvmcontainerv2;"
ITEM_PREFIX = "vm;iaasvmcontainerv2;"
PROTECTED_ITEM_TYPE = "Microsoft.Compute/virtualMachines"  # discriminator: always a literal
BACKUP_MANAGEMENT_TYPE = "AzureIaasVM"
MAX_VMS_PER_POLICY = 1000
# ARM allows 800 resources per deployment (copy iterations included): protect VMs in nested batches.
VMS_PER_NESTED_DEPLOYMENT = 500

# Built-in roles the DeployIfNotExists identity needs (as in Azure's own backup-by-tag policy).
ROLE_VIRTUAL_MACHINE_CONTRIBUTOR = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
ROLE_BACKUP_CONTRIBUTOR = "5e467623-bb1f-42f4-a55d-6e525e11384b"


def _load_identity():
    path = os.path.join(REPO_ROOT, "extension", "vmsnapshot", "identity.py")
    spec = importlib.util.spec_from_file_location("_vmsnapshot_identity", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_identity = _load_identity()
EXTENSION_PUBLISHER = _identity.PUBLISHER
EXTENSION_TYPE = _identity.TYPE
EXTENSION_VERSION = _identity.VERSION
TYPE_HANDLER_VERSION = _identity.type_handler_version(EXTENSION_VERSION)

"""The one description the kit's ARM templates are generated from.

Everything a template hard-codes lives here, once: the extension's identity (as packaging/buildinfo.py
gives it to every package: the runtime's default publisher and type, the repository's VERSION), the
apiVersions (newest in the shared schema subset, at most two years old), Azure Backup's naming formats
(vmsnapkit.backupnames) and limits, and the built-in role ids the at-scale policy needs.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from .. import backupnames

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

# Azure Backup facts. The templates write the container and item prefixes in lower case (names compare
# case-insensitively).
FABRIC = backupnames.FABRIC
CONTAINER_PREFIX = backupnames.CONTAINER_PREFIX.lower()
ITEM_PREFIX = backupnames.ITEM_PREFIX.lower()
PROTECTED_ITEM_TYPE = "Microsoft.Compute/virtualMachines"  # discriminator: always a literal
BACKUP_MANAGEMENT_TYPE = backupnames.BACKUP_MANAGEMENT_TYPE
MAX_VMS_PER_POLICY = 1000
# ARM allows 800 resources per deployment (copy iterations included): protect VMs in nested batches.
VMS_PER_NESTED_DEPLOYMENT = 500

# Built-in roles the DeployIfNotExists identity needs (as in Azure's own backup-by-tag policy).
ROLE_VIRTUAL_MACHINE_CONTRIBUTOR = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
ROLE_BACKUP_CONTRIBUTOR = "5e467623-bb1f-42f4-a55d-6e525e11384b"


def _buildinfo():
    """packaging/buildinfo.py, the build's one source of identity (imported by file: the name `packaging`
    belongs to the PyPI library)."""
    if "buildinfo" in sys.modules:
        return sys.modules["buildinfo"]
    path = os.path.join(REPO_ROOT, "packaging", "buildinfo.py")
    spec = importlib.util.spec_from_file_location("buildinfo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_build = _buildinfo()
# The committed templates name the runtime's own publisher and type, never a build-time override.
EXTENSION_PUBLISHER, EXTENSION_TYPE = _build.runtime_defaults()
EXTENSION_VERSION = _build.read_version()
TYPE_HANDLER_VERSION = _build.type_handler_version(EXTENSION_VERSION)

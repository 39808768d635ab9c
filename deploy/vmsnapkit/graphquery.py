"""Resource Graph: the fleet queries (management-reference §7) and their paging.

Pages of 1000 rows continued with $skipToken, a stable `order by` on a unique key, subscriptions in
batches of at most 300, and a pause when the 15-queries-per-5-s user quota runs out.
"""

from .throttle import sleep_for_graph_quota

PAGE_SIZE = 1000
SUBSCRIPTION_BATCH = 300
INLINE_ID_LIMIT = 500  # above this many VM ids the filter is applied client-side, keeping KQL small


def _kql_list(values):
    return ", ".join("'" + str(v).replace("'", "\\'") + "'" for v in values)


def vm_filters(selection):
    lines = []
    if selection.vms and len(selection.vms) <= INLINE_ID_LIMIT:
        lines.append(f"| where tolower(id) in~ ({_kql_list(v.key for v in selection.vms)})")
    if selection.resource_groups:
        lines.append(f"| where resourceGroup in~ ({_kql_list(selection.resource_groups)})")
    for key, value in selection.tags.items():
        lines.append(f"| where tags['{key}'] =~ '{value}'")
    return "\n".join(lines)


def extension_query(selection, publishers=None, types=None):
    """VMs left-joined with their extensions: a row per VM and matching extension (none: empty extName)."""
    ext_pred = ""
    if publishers and types:
        ext_pred = (
            f"    | where tostring(properties.publisher) in~ ({_kql_list(publishers)})\n"
            f"        and tostring(properties.type) in~ ({_kql_list(types)})\n"
        )
    filters = vm_filters(selection)
    return (
        "Resources\n"
        "| where type =~ 'microsoft.compute/virtualmachines'\n"
        + (filters + "\n" if filters else "")
        + "| project vmId = tolower(id), vmName = name, resourceGroup, subscriptionId, location, tags,\n"
        "          powerState = tostring(properties.extended.instanceView.powerState.code)\n"
        "| join kind=leftouter (\n"
        "    Resources\n"
        "    | where type =~ 'microsoft.compute/virtualmachines/extensions'\n"
        + ext_pred
        + "    | project vmId = tolower(substring(id, 0, indexof(id, '/extensions/'))),\n"
        "              extName = name, publisher = tostring(properties.publisher),\n"
        "              extType = tostring(properties.type),\n"
        "              version = tostring(properties.typeHandlerVersion),\n"
        "              state = tostring(properties.provisioningState),\n"
        "              autoUpgradeMinorVersion = tobool(properties.autoUpgradeMinorVersion)\n"
        "  ) on vmId\n"
        "| project-away vmId1\n"
        "| order by vmId asc"
    )


PROTECTED_ITEMS_QUERY = (
    "RecoveryServicesResources\n"
    "| where type =~ 'microsoft.recoveryservices/vaults/backupfabrics/protectioncontainers/protecteditems'\n"
    "| where tostring(properties.backupManagementType) =~ 'AzureIaasVM'\n"
    "| project itemId = id,\n"
    "          vaultId = substring(tolower(id), 0, indexof(tolower(id), '/backupfabrics/')),\n"
    "          vmId = tolower(tostring(properties.sourceResourceId)),\n"
    "          protectionState = tostring(coalesce(properties.currentProtectionState,\n"
    "                                              properties.protectionState)),\n"
    "          healthStatus = tostring(properties.healthStatus),\n"
    "          lastBackupStatus = tostring(properties.lastBackupStatus),\n"
    "          lastBackupTime = tostring(properties.lastBackupTime),\n"
    "          policyName = tostring(coalesce(properties.policyInfo.name, properties.policyName))\n"
    "| order by itemId asc"
)


def rows(factory, subscriptions, query, progress=None):
    """Every row of `query` over `subscriptions`, page by page."""
    from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions

    client = factory.graph()
    try:
        for start in range(0, len(subscriptions), SUBSCRIPTION_BATCH):
            batch = subscriptions[start : start + SUBSCRIPTION_BATCH]
            token = None
            while True:
                sleep_for_graph_quota(factory.monitor)
                options = QueryRequestOptions(top=PAGE_SIZE, skip_token=token, result_format="objectArray")
                res = client.resources(QueryRequest(subscriptions=batch, query=query, options=options))
                data = res.data or []
                if progress:
                    progress.advance(len(data))
                yield from data
                token = res.skip_token
                if not token:
                    break
    finally:
        client.close()

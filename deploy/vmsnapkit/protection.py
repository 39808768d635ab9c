"""The backup side of the fleet: which VMs are protected, by which vault and policy, and how their last
backup went; plus recent backup jobs. One paged list per vault (never one call per VM), or Resource Graph.

Protected items come back from recoveryservicesbackup 11.x as the base `ProtectedItem` model, whose VM
fields raise AttributeError: every read here is mapping access on camelCase keys (sdkmodels.lookup).
"""

import asyncio
import datetime
from dataclasses import dataclass
from typing import Dict, List

from .backupnames import BACKUP_MANAGEMENT_TYPE
from .errors import EXIT_FORBIDDEN, KitError, error_code, error_message, translate, translated
from .sdkmodels import lookup
from .throttle import AdaptiveLimiter

IAAS_FILTER = f"backupManagementType eq '{BACKUP_MANAGEMENT_TYPE}' and itemType eq 'VM'"


@dataclass
class Protection:
    vm_key: str
    vault_id: str
    item_id: str
    protection_state: str = ""
    health_status: str = ""
    last_backup_status: str = ""
    last_backup_time: str = ""
    policy: str = ""

    @property
    def vault_name(self):
        return self.vault_id.rstrip("/").rsplit("/", 1)[-1]


@dataclass
class Vault:
    id: str
    name: str
    resource_group: str
    subscription: str
    location: str


def protection_columns(p, unprotected_state=""):
    """A VM's protection as its output row shows it (verify, backup status): empty fields when no vault
    protects it, and `unprotected_state` as its protection state."""
    return {
        "protected": p is not None,
        "vault": p.vault_name if p else "",
        "policy": p.policy if p else "",
        "protectionState": p.protection_state if p else unprotected_state,
        "healthStatus": p.health_status if p else "",
        "lastBackupStatus": p.last_backup_status if p else "",
        "lastBackupTime": p.last_backup_time if p else "",
    }


def parse_time(text):
    if not text:
        return None
    try:
        ts = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=datetime.timezone.utc)


def vault_from_id(vault_id, location=""):
    parts = vault_id.strip("/").split("/")
    low = [p.lower() for p in parts]
    return Vault(
        id=vault_id,
        name=parts[low.index("vaults") + 1],
        resource_group=parts[low.index("resourcegroups") + 1],
        subscription=parts[low.index("subscriptions") + 1],
        location=location,
    )


# -- Resource Graph rows (the protected-item columns of graphquery.extension_query) -----------------
def protection_from_row(row):
    return Protection(
        vm_key=str(row.get("vmId", "")).lower(),
        vault_id=row.get("vaultId", ""),
        item_id=row.get("itemId", ""),
        protection_state=row.get("protectionState") or "",
        health_status=row.get("healthStatus") or "",
        last_backup_status=row.get("lastBackupStatus") or "",
        last_backup_time=row.get("lastBackupTime") or "",
        policy=row.get("policyName") or "",
    )


def add_protection(table, p):
    """A VM protected twice (stopped in one vault, active in another): keep the active protection."""
    old = table.get(p.vm_key)
    if old is None or old.protection_state.lower() == "protectionstopped":
        table[p.vm_key] = p


# -- direct ARM ---------------------------------------------------------------------------------------
def list_vaults(factory, subscriptions) -> List[Vault]:
    return asyncio.run(_list_vaults(factory, subscriptions))


async def _list_vaults(factory, subscriptions):
    out = []
    for sub in subscriptions:
        client = factory.avaults(sub)
        try:
            with translated(f"listing Recovery Services vaults of subscription {sub}"):
                async for v in client.vaults.list_by_subscription_id():
                    vid = lookup(v, "id", default="")
                    out.append(vault_from_id(vid, lookup(v, "location", default="")))
        finally:
            await client.close()
    return out


def from_arm(factory, vaults, concurrency=16) -> Dict[str, Protection]:
    return asyncio.run(_from_arm(factory, vaults, concurrency))


async def _each_item(factory, vaults, concurrency, listing, visit):
    """Page through `listing(client, vault)` for every vault in parallel (bounded, budget-aware) and call
    visit(vault, item) for each item; a 403 on one vault is a clear error naming that vault."""
    limiter = AdaptiveLimiter(factory.monitor, "reads", concurrency)

    async def one(vault):
        client = factory.abackup(vault.subscription)
        try:
            async with limiter:
                async for item in listing(client, vault):
                    visit(vault, item)
        except Exception as exc:
            raise _vault_error(exc, vault) from None
        finally:
            await client.close()

    await asyncio.gather(*(one(v) for v in vaults))


async def _from_arm(factory, vaults, concurrency):
    out: Dict[str, Protection] = {}
    await _each_item(
        factory,
        vaults,
        concurrency,
        lambda client, v: client.backup_protected_items.list(v.name, v.resource_group, filter=IAAS_FILTER),
        lambda v, item: add_protection(out, protection_from_item(item, v.id)),
    )
    return out


def _vault_error(exc, vault):
    if getattr(exc, "status_code", None) == 403:
        return KitError(
            f"permission denied on vault {vault.name} (resource group {vault.resource_group}): "
            f"{error_code(exc)}: {error_message(exc)}",
            EXIT_FORBIDDEN,
        )
    return translate(exc, f"vault {vault.name}") or exc


def protection_from_item(item, vault_id):
    props = lookup(item, "properties", default={})
    vm_id = lookup(props, "virtualMachineId") or lookup(props, "sourceResourceId", default="")
    policy_id = lookup(props, "policyId", default="") or ""
    return Protection(
        vm_key=str(vm_id).lower(),
        vault_id=vault_id,
        item_id=lookup(item, "id", default=""),
        protection_state=lookup(props, "protectionState", default=""),
        health_status=lookup(props, "healthStatus", default=""),
        last_backup_status=lookup(props, "lastBackupStatus", default=""),
        last_backup_time=str(lookup(props, "lastBackupTime", default="") or ""),
        policy=lookup(props, "policyName") or policy_id.rsplit("/", 1)[-1],
    )


# -- jobs ---------------------------------------------------------------------------------------------
@dataclass
class JobRecord:
    vault: str
    vm_name: str
    operation: str
    status: str
    start: str
    end: str
    duration: str
    error: str
    id: str


def list_jobs(factory, vaults, since=None, concurrency=8) -> List[JobRecord]:
    return asyncio.run(_list_jobs(factory, vaults, since, concurrency))


def _job_filter(since):
    if since is None:
        return None
    fmt = "%Y-%m-%d %I:%M:%S %p"
    now = datetime.datetime.now(datetime.timezone.utc)
    return f"startTime eq '{since.strftime(fmt)}' and endTime eq '{now.strftime(fmt)}'"


async def _list_jobs(factory, vaults, since, concurrency):
    out = []

    def visit(vault, job):
        props = lookup(job, "properties", default={})
        start = str(lookup(props, "startTime", default="") or "")
        started = parse_time(start)
        if since and started and started < since:
            return
        errors = lookup(props, "errorDetails", default=[]) or []
        out.append(
            JobRecord(
                vault=vault.name,
                vm_name=lookup(props, "entityFriendlyName", default=""),
                operation=lookup(props, "operation", default=""),
                status=lookup(props, "status", default=""),
                start=start,
                end=str(lookup(props, "endTime", default="") or ""),
                duration=str(lookup(props, "duration", default="") or ""),
                error="; ".join(str(lookup(e, "errorCode", default="")) for e in errors),
                id=lookup(job, "name", default=""),
            )
        )

    await _each_item(
        factory,
        vaults,
        concurrency,
        lambda client, v: client.backup_jobs.list(v.name, v.resource_group, filter=_job_filter(since)),
        visit,
    )
    return out

"""The backup side of the fleet: which VMs are protected, by which vault and policy, and how their last
backup went; plus recent backup jobs. One paged list per vault (never one call per VM), or Resource Graph.

Protected items come back from recoveryservicesbackup 11.x as the base `ProtectedItem` model, whose VM
fields raise AttributeError (management-reference §4.4): every read here is mapping access on camelCase keys.
"""

import asyncio
import datetime
from dataclasses import dataclass
from typing import Dict, List, Optional

from . import graphquery
from .errors import EXIT_FORBIDDEN, KitError, error_code, error_message, translate
from .inventory import _get
from .throttle import AdaptiveLimiter

IAAS_FILTER = "backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'"


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


# -- Resource Graph ----------------------------------------------------------------------------------
def from_graph(factory, subscriptions, progress=None) -> Dict[str, Protection]:
    out = {}
    for row in graphquery.rows(factory, subscriptions, graphquery.PROTECTED_ITEMS_QUERY, progress):
        p = Protection(
            vm_key=str(row.get("vmId", "")).lower(),
            vault_id=row.get("vaultId", ""),
            item_id=row.get("itemId", ""),
            protection_state=row.get("protectionState") or "",
            health_status=row.get("healthStatus") or "",
            last_backup_status=row.get("lastBackupStatus") or "",
            last_backup_time=row.get("lastBackupTime") or "",
            policy=row.get("policyName") or "",
        )
        out[p.vm_key] = _prefer(out.get(p.vm_key), p)
    return out


def _prefer(old: Optional[Protection], new: Protection):
    """A VM protected twice (stopped in one vault, active in another): keep the active protection."""
    if old is None:
        return new
    return new if old.protection_state.lower() == "protectionstopped" else old


# -- direct ARM ---------------------------------------------------------------------------------------
def list_vaults(factory, subscriptions) -> List[Vault]:
    return asyncio.run(_list_vaults(factory, subscriptions))


async def _list_vaults(factory, subscriptions):
    out = []
    for sub in subscriptions:
        client = factory.avaults(sub)
        try:
            async for v in client.vaults.list_by_subscription_id():
                vid = _get(v, "id", default="")
                out.append(vault_from_id(vid, _get(v, "location", default="")))
        except Exception as exc:
            err = translate(exc, f"listing Recovery Services vaults of subscription {sub}")
            if err is None:
                raise
            raise err from None
        finally:
            await client.close()
    return out


def from_arm(factory, vaults, concurrency=16) -> Dict[str, Protection]:
    return asyncio.run(_from_arm(factory, vaults, concurrency))


async def _from_arm(factory, vaults, concurrency):
    limiter = AdaptiveLimiter(factory.monitor, "reads", concurrency)
    out: Dict[str, Protection] = {}

    async def one(vault):
        client = factory.abackup(vault.subscription)
        try:
            async with limiter:
                async for item in client.backup_protected_items.list(
                    vault.name, vault.resource_group, filter=IAAS_FILTER
                ):
                    p = protection_from_item(item, vault.id)
                    out[p.vm_key] = _prefer(out.get(p.vm_key), p)
        except Exception as exc:
            raise _vault_error(exc, vault) from None
        finally:
            await client.close()

    await asyncio.gather(*(one(v) for v in vaults))
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
    props = _get(item, "properties", default={})
    vm_id = _get(props, "virtualMachineId") or _get(props, "sourceResourceId", default="")
    policy_id = _get(props, "policyId", default="") or ""
    return Protection(
        vm_key=str(vm_id).lower(),
        vault_id=vault_id,
        item_id=_get(item, "id", default=""),
        protection_state=_get(props, "protectionState", default=""),
        health_status=_get(props, "healthStatus", default=""),
        last_backup_status=_get(props, "lastBackupStatus", default=""),
        last_backup_time=str(_get(props, "lastBackupTime", default="") or ""),
        policy=_get(props, "policyName") or policy_id.rsplit("/", 1)[-1],
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
    limiter = AdaptiveLimiter(factory.monitor, "reads", concurrency)
    out = []

    async def one(vault):
        client = factory.abackup(vault.subscription)
        try:
            async with limiter:
                async for job in client.backup_jobs.list(
                    vault.name, vault.resource_group, filter=_job_filter(since)
                ):
                    props = _get(job, "properties", default={})
                    start = str(_get(props, "startTime", default="") or "")
                    started = parse_time(start)
                    if since and started and started < since:
                        continue
                    errors = _get(props, "errorDetails", default=[]) or []
                    out.append(
                        JobRecord(
                            vault=vault.name,
                            vm_name=_get(props, "entityFriendlyName", default=""),
                            operation=_get(props, "operation", default=""),
                            status=_get(props, "status", default=""),
                            start=start,
                            end=str(_get(props, "endTime", default="") or ""),
                            duration=str(_get(props, "duration", default="") or ""),
                            error="; ".join(str(_get(e, "errorCode", default="")) for e in errors),
                            id=_get(job, "name", default=""),
                        )
                    )
        except Exception as exc:
            raise _vault_error(exc, vault) from None
        finally:
            await client.close()

    await asyncio.gather(*(one(v) for v in vaults))
    return out

"""The VM side of the fleet: each selected VM and its extensions, from Resource Graph or directly from ARM.

Resource Graph answers for 10,000 VMs in a few pages. The direct path (for clouds or identities without
Resource Graph, or --source arm) lists VMs per subscription and GETs each one with the async compute client
(the GET carries the extensions in `resources[]`), under a concurrency limit that follows ARM's budget.
"""

import asyncio
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from azure.core.exceptions import HttpResponseError

from . import graphquery
from .errors import error_code, error_message, translate, translated
from .protection import add_protection, protection_from_row
from .sdkmodels import lookup
from .selection import VM_ID, VmRef
from .throttle import AdaptiveLimiter, map_bounded

SNAPSHOT_PUBLISHERS = ("Microsoft.Azure.RecoveryServices", "Microsoft.RecoveryServices")
SNAPSHOT_TYPES = ("VMSnapshotLinux", "VMSnapshot")


@dataclass
class ExtensionState:
    name: str
    publisher: str
    type: str
    version: str
    provisioning_state: str
    auto_upgrade: Optional[bool] = None
    status_code: str = ""  # instance view (only fetched for the suspect subset)
    status_message: str = ""


@dataclass
class VmRecord:
    id: str
    name: str
    resource_group: str
    subscription: str
    location: str = ""
    tags: Dict[str, str] = field(default_factory=dict)
    extensions: List[ExtensionState] = field(default_factory=list)
    error: str = ""  # the VM could not be read (partial failure)

    @property
    def key(self):
        return self.id.lower()


def is_snapshot_extension(ext, publishers=SNAPSHOT_PUBLISHERS, types=SNAPSHOT_TYPES):
    return ext.publisher.lower() in {p.lower() for p in publishers} and ext.type.lower() in {t.lower() for t in types}


# -- Resource Graph ----------------------------------------------------------------------------------
def from_graph(factory, selection, all_extensions=False, progress=None, protection=None):
    """VM records from Resource Graph; with a `protection` dict, the same query also fills it with the
    VMs' protected items (protection.Protection by VM key)."""
    query = graphquery.extension_query(
        selection,
        None if all_extensions else SNAPSHOT_PUBLISHERS,
        None if all_extensions else SNAPSHOT_TYPES,
        with_protection=protection is not None,
    )
    vms: Dict[str, VmRecord] = {}
    for row in graphquery.rows(factory, selection.subscriptions, query, progress):
        key = str(row.get("vmId", "")).lower()
        rec = vms.get(key) or vms.setdefault(key, _record_from_row(key, row))
        if protection is not None and row.get("itemId"):
            add_protection(protection, protection_from_row(row))
        if row.get("extName") and not any(e.name == row["extName"] for e in rec.extensions):
            rec.extensions.append(_extension_from_row(row))
    out = [r for r in vms.values() if selection.matches(r.id, r.resource_group, r.tags)]
    if selection.vms:
        found = {r.key for r in out}
        out += [
            VmRecord(
                id=v.id,
                name=v.name,
                resource_group=v.resource_group,
                subscription=v.subscription,
                error="VM not found (Resource Graph has no such VM)",
            )
            for v in selection.vms
            if v.key not in found
        ]
    return sorted(out, key=lambda r: r.key)


def _record_from_row(key, row):
    """A VmRecord (no extensions yet) from the VM columns of a Resource Graph row."""
    ref = _ref_from_id(key) or VmRef(row.get("subscriptionId", ""), row.get("resourceGroup", ""), row.get("vmName", ""))
    return VmRecord(
        id=key,
        name=row.get("vmName") or ref.name,
        resource_group=row.get("resourceGroup") or ref.resource_group,
        subscription=row.get("subscriptionId") or ref.subscription,
        location=row.get("location") or "",
        tags=row.get("tags") or {},
    )


def _extension_from_row(row):
    return ExtensionState(
        name=row["extName"],
        publisher=row.get("publisher") or "",
        type=row.get("extType") or "",
        version=row.get("version") or "",
        provisioning_state=row.get("state") or "",
        auto_upgrade=row.get("autoUpgradeMinorVersion"),
    )


def _ref_from_id(vm_id):
    m = VM_ID.match(vm_id)
    return VmRef(m["sub"], m["rg"], m["name"]) if m else None


# -- direct ARM ---------------------------------------------------------------------------------------
def from_arm(factory, selection, all_extensions=False, concurrency=32, progress=None):
    return asyncio.run(_from_arm(factory, selection, all_extensions, concurrency, progress))


async def _from_arm(factory, selection, all_extensions, concurrency, progress):
    limiter = AdaptiveLimiter(factory.monitor, "reads", concurrency)
    clients = {sub: factory.acompute(sub) for sub in selection.subscriptions}
    try:
        refs = list(selection.vms)
        if not refs:
            listed = await asyncio.gather(
                *(_list_vms(clients[sub], sub, selection, limiter) for sub in selection.subscriptions)
            )
            refs = [r for group in listed for r in group]
        if progress:
            progress.total = len(refs)
        records = await map_bounded(lambda r: _get_vm(clients[r.subscription], r, limiter, progress), refs, concurrency)
    finally:
        for c in clients.values():
            await c.close()
    out = []
    for rec in records:
        if not all_extensions:
            rec.extensions = [e for e in rec.extensions if is_snapshot_extension(e)]
        if rec.error or selection.matches(rec.id, rec.resource_group, rec.tags):
            out.append(rec)
    return sorted(out, key=lambda r: r.key)


async def _list_vms(client, sub, selection, limiter):
    """VM references from list_all (or per resource group); tags are filtered here to skip useless GETs."""
    pagers = (
        [client.virtual_machines.list(rg) for rg in selection.resource_groups]
        if selection.resource_groups
        else [client.virtual_machines.list_all()]
    )
    refs = []
    with translated(f"listing VMs of subscription {sub}"):
        for pager in pagers:
            async for vm in pager:
                ref = _ref_from_id(lookup(vm, "id", default=""))
                if ref and selection.matches(ref.id, ref.resource_group, lookup(vm, "tags", default={})):
                    refs.append(ref)
    return refs


async def _get_vm(client, ref, limiter, progress):
    rec = VmRecord(id=ref.id, name=ref.name, resource_group=ref.resource_group, subscription=ref.subscription)
    async with limiter:
        try:
            vm = await client.virtual_machines.get(ref.resource_group, ref.name)
        except HttpResponseError as exc:
            if exc.status_code == 401:
                raise translate(exc) from None
            # One unreadable VM (500, 404, 403 on that VM) fails its own row, not the whole run.
            rec.error = f"GET failed: {exc.status_code} {error_code(exc)} {error_message(exc)}".strip()
            return rec
        finally:
            if progress:
                progress.advance(1)
    rec.id = lookup(vm, "id", default=ref.id)
    rec.location = lookup(vm, "location", default="")
    rec.tags = dict(lookup(vm, "tags", default={}) or {})
    for res in lookup(vm, "resources", default=[]) or []:
        rec.extensions.append(
            ExtensionState(
                name=lookup(res, "name", default=""),
                publisher=lookup(res, "properties", "publisher", default=""),
                type=lookup(res, "properties", "type", default=""),
                version=lookup(res, "properties", "typeHandlerVersion", default=""),
                provisioning_state=lookup(res, "properties", "provisioningState", default=""),
                auto_upgrade=lookup(res, "properties", "autoUpgradeMinorVersion"),
            )
        )
    return rec


# -- instance view for the suspect subset -------------------------------------------------------------
def fetch_instance_views(factory, pairs, concurrency=16):
    """Fill status_code/status_message of (VmRecord, ExtensionState) pairs from the instance view."""
    if pairs:
        asyncio.run(_instance_views(factory, pairs, concurrency))


async def _instance_views(factory, pairs, concurrency):
    limiter = AdaptiveLimiter(factory.monitor, "reads", concurrency)
    clients = {}
    try:

        async def one(rec, ext):
            client = clients.setdefault(rec.subscription, factory.acompute(rec.subscription))
            async with limiter:
                try:
                    res = await client.virtual_machine_extensions.get(
                        rec.resource_group, rec.name, ext.name, expand="instanceView"
                    )
                except Exception as exc:
                    ext.status_message = f"instance view unavailable: {error_code(exc) or type(exc).__name__}"
                    return
            statuses = lookup(res, "properties", "instanceView", "statuses", default=[]) or []
            subs = lookup(res, "properties", "instanceView", "substatuses", default=[]) or []
            worst = next(
                (s for s in statuses + subs if str(lookup(s, "level", default="")).lower() == "error"),
                statuses[0] if statuses else None,
            )
            if worst is not None:
                ext.status_code = lookup(worst, "code", default="")
                ext.status_message = lookup(worst, "message", default="") or lookup(worst, "displayStatus", default="")

        await map_bounded(lambda pair: one(*pair), pairs, concurrency)
    finally:
        for c in clients.values():
            await c.close()

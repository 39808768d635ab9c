"""`vmsnapkit backup enable`: protect many VMs in one run through the SDK.

Per vault: one container refresh, one protectable-items listing, policies sharded so none exceeds 1000
VMs, then the protected-item PUTs (each a long-running operation) in parallel under a write budget that
follows ARM's rate-limit headers. Already protected VMs and VMs finished in an earlier run (resume file)
are skipped, so a re-run after an interruption protects every VM exactly once.
"""

import asyncio
import collections
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .backupnames import BACKUP_MANAGEMENT_TYPE, CONTAINER_IN_ID, FABRIC, container_name, item_name
from .context import Result
from .errors import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    KitError,
    error_code,
    error_message,
    translate,
    translated,
)
from .fleet import load_fleet, selection
from .protection import Vault, list_vaults, vault_from_id
from .resume import ResumeFile
from .sdkmodels import lookup
from .throttle import AdaptiveLimiter, map_bounded

POLICY_CAPACITY = 1000
PROTECTABLE_FILTER = f"backupManagementType eq '{BACKUP_MANAGEMENT_TYPE}'"
REFRESH_TIMEOUT = 600  # seconds a vault's container refresh may take
ENABLE_COLUMNS = [
    ("VM", "vm"),
    ("ResourceGroup", "resourceGroup"),
    ("Vault", "vault"),
    ("Policy", "policy"),
    ("Action", "action"),
    ("Detail", "detail"),
]


@dataclass
class Task:
    vm: object  # inventory.VmRecord
    vault: Optional[Vault] = None
    container: str = ""
    item: str = ""
    policy: str = ""
    action: str = ""
    detail: str = ""

    def row(self):
        return {
            "vm": self.vm.name,
            "resourceGroup": self.vm.resource_group,
            "vmId": self.vm.id,
            "vault": self.vault.name if self.vault else "",
            "policy": self.policy,
            "action": self.action,
            "detail": self.detail,
            "container": self.container,
            "item": self.item,
        }


@dataclass
class PolicyPlan:
    name: str
    count: int
    exists: bool
    assigned: List[Task] = field(default_factory=list)


def run(ctx):
    args = ctx.args
    resume = ResumeFile(args.resume_file) if args.resume_file else None
    try:
        return _run(ctx, args, resume)
    finally:
        if resume:
            resume.close()


def _run(ctx, args, resume):
    sel = selection(ctx)
    vms, protected = load_fleet(ctx, sel, all_extensions=True)
    tasks = [_triage(vm, protected.get(vm.key), resume) for vm in vms]
    todo = [t for t in tasks if not t.action]
    _choose_vaults(ctx, args, sel, todo)
    _prepare_vaults(ctx, args, todo, resume)
    ready = [t for t in todo if not t.action]
    if args.dry_run:
        for t in ready:
            t.action = "would enable"
    elif ready:
        with ctx.progress("enabling", len(ready)) as prog:
            asyncio.run(_enable_all(ctx, ready, args.max_concurrency, resume, prog))
    counts = collections.Counter(t.action for t in tasks)
    failed = counts.get("failed", 0)
    summary = ", ".join(f"{n} {a}" for a, n in sorted(counts.items())) or "no VM matched the selection"
    rows = sorted((t.row() for t in tasks), key=lambda r: (r["action"] != "failed", r["vmId"].lower()))
    return Result(rows, ENABLE_COLUMNS, EXIT_FAILED if failed else 0, f"backup enable: {summary}")


def _triage(vm, prot, resume):
    """A Task for the VM: settled already (unreadable, enabled by an earlier run, protected) or to do
    (no action yet)."""
    t = Task(vm)
    done = resume.enabled.get(vm.key) if resume else None
    if vm.error:
        t.action, t.detail = "failed", f"VM could not be read: {vm.error}"
    elif done:
        t.action, t.detail, t.policy = "skipped", "enabled by an earlier run (resume file)", done["policy"]
        t.vault = vault_from_id(done["vault"])
    elif prot and prot.protection_state.lower() != "protectionstopped":
        t.action, t.detail, t.policy = "already protected", prot.protection_state, prot.policy
        t.vault = vault_from_id(prot.vault_id) if prot.vault_id else None
    return t


def _prepare_vaults(ctx, args, todo, resume):
    """Per vault: discover the VMs' containers and items, then assign them to policy shards."""
    by_vault = collections.defaultdict(list)
    for t in todo:
        if t.vault and not t.action:
            by_vault[t.vault.id.lower()].append(t)
    bk_clients = {}
    try:
        with translated("preparing the vaults"):
            for tasks_in_vault in by_vault.values():
                vault = tasks_in_vault[0].vault
                bk = bk_clients.setdefault(vault.subscription, ctx.factory.backup(vault.subscription))
                _discover(ctx, bk, vault, tasks_in_vault, args.dry_run, resume)
                pending = [t for t in tasks_in_vault if not t.action]
                _plan_policies(bk, vault, pending, args.policy, args.dry_run)
    finally:
        for c in bk_clients.values():
            c.close()


def _choose_vaults(ctx, args, sel, todo):
    """--vault (an id, or a name with --vault-resource-group), else the one vault in the VM's subscription and
    region; more than one candidate is a usage error rather than a guess."""
    if args.vault:
        vault = _named_vault(ctx, args, sel)
        for t in todo:
            if t.vm.location and vault.location and t.vm.location.lower() != vault.location.lower():
                t.action, t.detail = (
                    "failed",
                    f"VM is in {t.vm.location}, vault {vault.name} in {vault.location}",
                )
            t.vault = vault
        return
    subs = sorted({t.vm.subscription for t in todo})
    vaults = list_vaults(ctx.factory, subs) if subs else []
    for t in todo:
        cands = [
            v
            for v in vaults
            if v.subscription.lower() == t.vm.subscription.lower() and v.location.lower() == t.vm.location.lower()
        ]
        if len(cands) == 1:
            t.vault = cands[0]
        elif not cands:
            t.action, t.detail = (
                "failed",
                f"no Recovery Services vault in {t.vm.location} in its subscription",
            )
        else:
            raise KitError(
                f"several vaults serve {t.vm.location} in subscription {t.vm.subscription} ("
                + ", ".join(v.name for v in cands)
                + "): choose one with --vault",
                EXIT_USAGE,
            )


def _named_vault(ctx, args, sel):
    """The Vault of --vault (its id, or its name in --vault-resource-group), with its location read."""
    if args.vault.lower().startswith("/subscriptions/"):
        vault = vault_from_id(args.vault)
    else:
        if not args.vault_resource_group:
            raise KitError(
                "--vault NAME needs --vault-resource-group (or pass the vault's full resource id)",
                EXIT_USAGE,
            )
        sub = args.vault_subscription or (sel.subscriptions[0] if sel.subscriptions else "")
        vault = Vault(
            id=f"/subscriptions/{sub}/resourceGroups/{args.vault_resource_group}/providers/"
            f"Microsoft.RecoveryServices/vaults/{args.vault}",
            name=args.vault,
            resource_group=args.vault_resource_group,
            subscription=sub,
            location="",
        )
    client = ctx.factory.vaults(vault.subscription)
    try:
        with translated(f"vault {vault.name}"):
            vault.location = lookup(client.vaults.get(vault.resource_group, vault.name), "location", default="")
    finally:
        client.close()
    return vault


def _discover(ctx, bk, vault, tasks, dry_run, resume):
    """One container refresh (unless done by an earlier run), one protectable-items listing for the vault."""
    same_sub = [t for t in tasks if t.vm.subscription.lower() == vault.subscription.lower()]
    for t in tasks:
        if t not in same_sub:  # cross-subscription: the service takes the documented names directly
            t.container, t.item = _documented_names(t.vm)
    if not same_sub:
        return
    if not dry_run and not (resume and vault.id.lower() in resume.refreshed):
        _refresh_containers(ctx, bk, vault)
        if resume:
            resume.record_refresh(vault.id)
    found = {}
    for item in bk.backup_protectable_items.list(vault.name, vault.resource_group, filter=PROTECTABLE_FILTER):
        props = lookup(item, "properties", default={})
        vm_id = str(lookup(props, "virtualMachineId", default="")).lower()
        item_id = lookup(item, "id", default="")
        m = CONTAINER_IN_ID.search(item_id)
        if vm_id and m:
            container = m.group(1)
            found[vm_id] = (container, lookup(item, "name", default=""))
    for t in same_sub:
        hit = found.get(t.vm.key)
        if hit:
            t.container, t.item = hit
        elif dry_run:
            t.container, t.item = _documented_names(t.vm)
            t.detail = "not yet discovered by the vault; a real run refreshes its containers first"
        else:
            t.action = "failed"
            t.detail = (
                f"vault {vault.name} does not list this VM as protectable after a container refresh "
                "(another region, or protected by another vault?)"
            )


def _documented_names(vm):
    """(container, item) of a VM, built from its resource group and name."""
    return container_name(vm.resource_group, vm.name), item_name(vm.resource_group, vm.name)


def _refresh_containers(ctx, bk, vault, timeout=REFRESH_TIMEOUT):
    """Refresh the vault's containers and wait until it is done.

    refresh() answers 202 with a Location to poll but the SDK has no begin_ method for it, so its initial
    response is handed to azure-core's ARM poller (Retry-After honoured, failures raised as for any LRO).
    """
    from azure.core.polling import LROPoller
    from azure.mgmt.core.polling.arm_polling import ARMPolling

    initial = bk.protection_containers.refresh(
        vault.name, vault.resource_group, FABRIC, cls=lambda pipeline_response, _body, _headers: pipeline_response
    )
    # The generated operations poll through the client's pipeline the same way (LROPoller(self._client, ...)).
    poller = LROPoller(bk._client, initial, lambda _response: None, ARMPolling(ctx.factory.polling_interval))
    poller.wait(timeout)
    if not poller.done():
        raise KitError(f"container refresh of vault {vault.name} did not finish within {timeout}s", EXIT_FAILED)
    poller.result()  # raises the operation's failure


def _plan_policies(bk, vault, tasks, base_name, dry_run):
    """Assign VMs to the base policy while it has room, then to shards `<base>-2`, `<base>-3`, ... (missing
    shards are created as copies of the base policy)."""
    if not tasks:
        return
    from azure.mgmt.recoveryservicesbackup import models

    base_props = _base_policy(bk, vault, base_name)
    plans = _shard(bk, vault, tasks, base_name, int(base_props.get("protectedItemsCount") or 0))
    for plan in plans:
        if not plan.assigned:
            continue
        if not plan.exists and not dry_run:
            props = {k: v for k, v in base_props.items() if k != "protectedItemsCount"}
            bk.protection_policies.create_or_update(
                vault.name,
                vault.resource_group,
                plan.name,
                models.ProtectionPolicyResource({"properties": props}),
            )
        for t in plan.assigned:
            t.policy = plan.name
            if not plan.exists:
                t.detail = (t.detail + "; " if t.detail else "") + f"new policy shard {plan.name}"


def _base_policy(bk, vault, name):
    """The properties of the policy named by --policy; a clear error when it is missing or not for VMs."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        base = bk.protection_policies.get(vault.name, vault.resource_group, name)
    except ResourceNotFoundError:
        raise KitError(
            f"policy {name!r} not found in vault {vault.name}: create it or pass --policy",
            EXIT_NOT_FOUND,
        ) from None
    props = dict(lookup(base, "properties", default={}))
    if str(props.get("backupManagementType", "")).lower() != BACKUP_MANAGEMENT_TYPE.lower():
        raise KitError(f"policy {name!r} of vault {vault.name} is not an {BACKUP_MANAGEMENT_TYPE} policy", EXIT_USAGE)
    return props


def _shard(bk, vault, tasks, base_name, base_count):
    """PolicyPlans filling the base policy up to POLICY_CAPACITY, then `<base>-2`, `<base>-3`, ... (existing
    shards with their own counts, missing ones marked to create)."""
    from azure.core.exceptions import ResourceNotFoundError

    plans = [PolicyPlan(base_name, base_count, True)]
    queue = list(tasks)
    shard = 1
    while queue:
        plan = plans[-1]
        room = POLICY_CAPACITY - plan.count - len(plan.assigned)
        if room > 0:
            take, queue = queue[:room], queue[room:]
            plan.assigned += take
            continue
        shard += 1
        name = f"{base_name}-{shard}"
        try:
            existing = bk.protection_policies.get(vault.name, vault.resource_group, name)
            plans.append(PolicyPlan(name, int(lookup(existing, "properties", "protectedItemsCount", default=0)), True))
        except ResourceNotFoundError:
            plans.append(PolicyPlan(name, 0, False))
    return plans


async def _enable_all(ctx, tasks, concurrency, resume, progress):
    from azure.mgmt.recoveryservicesbackup import models

    limiter = AdaptiveLimiter(ctx.factory.monitor, "writes", concurrency)
    clients: Dict[str, object] = {}

    async def one(t):
        client = clients.setdefault(t.vault.subscription, ctx.factory.abackup(t.vault.subscription))
        body = models.ProtectedItemResource(
            properties=models.AzureIaaSComputeVMProtectedItem(
                policy_id=f"{t.vault.id}/backupPolicies/{t.policy}", source_resource_id=t.vm.id
            )
        )
        async with limiter:
            try:
                poller = await client.protected_items.begin_create_or_update(
                    t.vault.name, t.vault.resource_group, FABRIC, t.container, t.item, body
                )
                await poller.result()
            except Exception as exc:
                if translate(exc) is None:
                    raise
                t.action = "failed"
                t.detail = f"{error_code(exc) or type(exc).__name__}: {error_message(exc)}"
                if resume:
                    resume.record_failed(t.vm.key, t.detail)
                return
            finally:
                progress.advance(1)
        t.action = "enabled"
        if resume:
            resume.record_enabled(t.vm.key, t.vault.id, t.policy)

    try:
        await map_bounded(one, tasks, concurrency)
    finally:
        for c in clients.values():
            await c.close()

"""`vmsnapkit backup status` and `backup jobs`: protection and recent backup jobs per VM, one paged jobs
listing per vault that protects a selected VM."""

import datetime

from .context import Result
from .errors import EXIT_FAILED
from .fleet import load_fleet, selection
from .protection import list_jobs, parse_time, protection_columns, vault_from_id

STATUS_COLUMNS = [
    ("VM", "vm"),
    ("ResourceGroup", "resourceGroup"),
    ("Vault", "vault"),
    ("Policy", "policy"),
    ("ProtectionState", "protectionState"),
    ("Health", "healthStatus"),
    ("LastBackup", "lastBackupStatus"),
    ("LastBackupTime", "lastBackupTime"),
    ("LastJob", "lastJob"),
    ("LastJobStatus", "lastJobStatus"),
]
JOB_COLUMNS = [
    ("VM", "vm"),
    ("Vault", "vault"),
    ("Operation", "operation"),
    ("Status", "status"),
    ("StartTimeUTC", "startTime"),
    ("Duration", "duration"),
    ("Error", "error"),
]


def _fleet_with_jobs(ctx):
    """(VM records, Protection by VM key, jobs by VM key) of the selection."""
    vms, protection = load_fleet(ctx, selection(ctx))
    return vms, protection, _jobs_by_vm(ctx, vms, protection)


def _vm_columns(vm):
    return {"vm": vm.name, "resourceGroup": vm.resource_group, "vmId": vm.id}


def _jobs_by_vm(ctx, vms, protection):
    """Jobs of the vaults protecting the selected VMs, keyed by VM (jobs name the VM by its friendly name)."""
    names = {}
    for vm in vms:
        p = protection.get(vm.key)
        if p and p.vault_id:
            names.setdefault(p.vault_id.lower(), {})[vm.name.lower()] = vm
    vaults = [vault_from_id(v) for v in names]
    since = datetime.datetime.now(datetime.timezone.utc) - ctx.args.since.delta
    jobs = list_jobs(ctx.factory, vaults, since=since, concurrency=min(8, ctx.args.max_concurrency))
    by_vm = {}
    for job in jobs:
        for vault_key, members in names.items():
            if vault_key.endswith("/vaults/" + job.vault.lower()) and job.vm_name.lower() in members:
                by_vm.setdefault(members[job.vm_name.lower()].key, []).append(job)
    for lst in by_vm.values():
        lst.sort(
            key=lambda j: parse_time(j.start) or datetime.datetime.min.replace(tzinfo=datetime.timezone.utc),
            reverse=True,
        )
    return by_vm


def status(ctx):
    vms, protection, jobs = _fleet_with_jobs(ctx)
    rows = []
    for vm in vms:
        last = (jobs.get(vm.key) or [None])[0]
        rows.append(
            {
                **_vm_columns(vm),
                **protection_columns(protection.get(vm.key), unprotected_state="NotProtected"),
                "lastJob": last.operation if last else "",
                "lastJobStatus": last.status if last else "",
                "lastJobStart": last.start if last else "",
            }
        )
    unprotected = sum(1 for r in rows if not r["protected"])
    return Result(
        rows,
        STATUS_COLUMNS,
        EXIT_FAILED if unprotected else 0,
        f"{len(rows)} VM(s): {len(rows) - unprotected} protected, {unprotected} not protected",
    )


def jobs(ctx):
    vms, _, by_vm = _fleet_with_jobs(ctx)
    rows = []
    for vm in vms:
        for j in by_vm.get(vm.key, []):
            if ctx.args.operation and j.operation.lower() != ctx.args.operation.lower():
                continue
            if ctx.args.status and j.status.lower() != ctx.args.status.lower():
                continue
            rows.append(
                {
                    **_vm_columns(vm),
                    "vault": j.vault,
                    "operation": j.operation,
                    "status": j.status,
                    "startTime": j.start,
                    "endTime": j.end,
                    "duration": j.duration,
                    "error": j.error,
                    "jobId": j.id,
                }
            )
    rows.sort(key=lambda r: r["startTime"], reverse=True)
    failed = sum(1 for r in rows if r["status"].lower() == "failed")
    return Result(rows, JOB_COLUMNS, 0, f"{len(rows)} job(s) since {ctx.args.since} ago, {failed} failed")

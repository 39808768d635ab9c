"""`vmsnapkit verify`: one row per VM joining the snapshot extension with the backup state, judged by rules.

Only the suspect subset (extension present but not Succeeded, or a failing backup) costs an instance-view
call; everything else comes from two fleet-wide reads (inventory + protected items).
"""

import datetime
import os
import re
import tempfile

from . import report
from .context import Result
from .errors import EXIT_FAILED
from .fleet import load_fleet, selection
from .inventory import fetch_instance_views, is_snapshot_extension
from .protection import parse_time, protection_columns

OK_PROTECTION = {"protected", "irpending"}
VERIFY_COLUMNS = [
    ("VM", "vm"),
    ("ResourceGroup", "resourceGroup"),
    ("Extension", "extensionState"),
    ("Version", "extensionVersion"),
    ("Protected", "protected"),
    ("LastBackup", "lastBackupStatus"),
    ("AgeHours", "backupAgeHours"),
    ("Result", "result"),
    ("Reasons", "reasonsText"),
]


def version_tuple(text):
    parts = re.findall(r"\d+", str(text or ""))
    return tuple(int(p) for p in parts) if parts else ()


def check_vm(vm, prot, rules, now):
    """The verdict for one VM: (row dict, list of reasons it fails)."""
    reasons = []
    snap = next((e for e in vm.extensions if is_snapshot_extension(e)), None)
    if vm.error:
        reasons.append(f"VM could not be read: {vm.error}")
    elif snap is None:
        reasons.append("snapshot extension (VMSnapshotLinux) is not installed")
    else:
        if snap.provisioning_state.lower() != "succeeded":
            detail = f" ({snap.status_code}: {snap.status_message})" if snap.status_code else ""
            reasons.append(f"extension provisioningState is {snap.provisioning_state or 'unknown'}{detail}")
        if rules["min_version"] and version_tuple(snap.version) < version_tuple(rules["min_version"]):
            reasons.append(f"extension version {snap.version} is older than {rules['min_version']}")
    age_hours = None
    if prot is None:
        if not rules["allow_unprotected"]:
            reasons.append("not protected by any Recovery Services vault")
    else:
        if prot.protection_state.lower() not in OK_PROTECTION:
            reasons.append(f"protection state is {prot.protection_state or 'unknown'}")
        if prot.health_status and prot.health_status.lower() != "passed":
            reasons.append(f"backup health is {prot.health_status}")
        if prot.last_backup_status and prot.last_backup_status.lower() not in (
            "completed",
            "completedwithwarnings",
        ):
            reasons.append(f"last backup {prot.last_backup_status}")
        last = parse_time(prot.last_backup_time)
        if last:
            age_hours = round((now - last).total_seconds() / 3600, 1)
        if rules["max_age"] is not None:
            if last is None:
                reasons.append("no completed backup yet")
            elif now - last > rules["max_age"]:
                reasons.append(f"last backup {age_hours}h ago, older than {rules['max_age_text']}")
    row = {
        "vm": vm.name,
        "resourceGroup": vm.resource_group,
        "subscriptionId": vm.subscription,
        "vmId": vm.id,
        "extension": snap.name if snap else "",
        "extensionState": snap.provisioning_state if snap else "Missing",
        "extensionVersion": snap.version if snap else "",
        "extensionStatus": snap.status_code if snap else "",
        "extensionMessage": snap.status_message if snap else "",
        **protection_columns(prot),
        "backupAgeHours": age_hours,
        "passed": not reasons,
        "result": "PASS" if not reasons else "FAIL",
        "reasons": reasons,
        "reasonsText": "; ".join(reasons),
    }
    return row, reasons


def run(ctx):
    args = ctx.args
    rules = {
        "min_version": args.min_version,
        "allow_unprotected": args.allow_unprotected,
        "max_age": args.max_backup_age.delta if args.max_backup_age else None,
        "max_age_text": str(args.max_backup_age) if args.max_backup_age else None,
    }
    lang = report.resolve_language(getattr(args, "locale", None))  # a bad --locale fails before any call
    sel = selection(ctx)
    vms, prot = load_fleet(ctx, sel)
    now = datetime.datetime.now(datetime.timezone.utc)

    # Suspect subset: fetch the extension instance view only where it explains a failure.
    suspects = []
    for vm in vms:
        snap = next((e for e in vm.extensions if is_snapshot_extension(e)), None)
        p = prot.get(vm.key)
        failing_backup = p is not None and (
            p.last_backup_status.lower() == "failed" or (p.health_status and p.health_status.lower() != "passed")
        )
        if snap and (snap.provisioning_state.lower() != "succeeded" or failing_backup):
            suspects.append((vm, snap))
    fetch_instance_views(ctx.factory, suspects, args.max_concurrency)

    rows = [check_vm(vm, prot.get(vm.key), rules, now)[0] for vm in vms]
    rows.sort(key=lambda r: (r["passed"], r["vmId"].lower()))
    failed = sum(1 for r in rows if not r["passed"])
    if not rows:
        ctx.warn("no VM matched the selection")
    if args.report:
        _write_atomically(
            args.report,
            report.render(rows, rules, ctx.cloud.name, sel.describe(), now, args.report.lower().endswith(".md"), lang),
        )
    summary = f"{len(rows)} VM(s) checked: {len(rows) - failed} passed, {failed} failed"
    return Result(rows, VERIFY_COLUMNS, EXIT_FAILED if failed or not rows else 0, summary)


def _write_atomically(path, text):
    """Write the whole report or nothing: a temp file in the same directory, then rename."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".vmsnapkit-report-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

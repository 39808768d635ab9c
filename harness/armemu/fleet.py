"""Generate a realistic fleet for the emulator: many VMs over several subscriptions and resource groups,
with a known, reproducible set of problems planted in it.

Every planted problem is recorded in `estate.expect` (lists of lower-case VM ids per category), so a test
asserts what the kit found against what was planted rather than against hard-coded numbers.
"""

import datetime
import random
import uuid

from .state import VM, Estate, Extension, Vault, utcnow

OTHER_EXTENSION = ("AzureMonitorLinuxAgent", "Microsoft.Azure.Monitor", "AzureMonitorLinuxAgent", "1.33")


def subscription_id(index, seed=0):
    return f"{index + 1:08x}-{seed:04x}-4000-8000-00000000{index + 1:04x}"


def generate_fleet(
    vms=100,
    subscriptions=2,
    resource_groups=3,
    *,
    seed=7,
    location="westus",
    missing_extension=None,
    failed_extension=None,
    old_version=0,
    unprotected=None,
    failing_backup=1,
    stale_backup=0,
    undiscovered=0,
    fail_enable=0,
    other_extension_every=7,
    estate=None,
):
    """Return an Estate holding `vms` VMs; problem counts default to about 5 % missing extension,
    3 % failed extension, 10 % unprotected and one VM whose last backup failed.

    Categories never overlap; `undiscovered` and `fail_enable` VMs are drawn from the unprotected ones
    (they only matter to `backup enable`).
    """
    estate = estate or Estate()
    rng = random.Random(seed)
    now = utcnow()
    subs = [subscription_id(i, seed) for i in range(subscriptions)]
    vaults = []
    for si, sub in enumerate(subs):
        estate.add_subscription(sub, f"Fleet subscription {si + 1}")
        vaults.append(
            estate.add_vault(
                Vault(subscription=sub, resource_group="rg-backup", name=f"vault-{si + 1}", location=location)
            )
        )

    def default(given, share):
        return given if given is not None else (max(1, vms // share) if vms >= 10 else 0)

    count = {
        "missing_extension": default(missing_extension, 20),
        "failed_extension": default(failed_extension, 33),
        "old_version": old_version,
        "unprotected": default(unprotected, 10),
        "failing_backup": failing_backup if vms >= 10 else 0,
        "stale_backup": stale_backup,
    }
    if sum(count.values()) > vms:
        raise ValueError(f"fleet of {vms} VMs cannot hold {sum(count.values())} planted problems")
    order = list(range(vms))
    rng.shuffle(order)
    category = {}
    pos = 0
    for name, n in count.items():
        for idx in order[pos : pos + n]:
            category[idx] = name
        pos += n

    expect = {k: [] for k in list(count) + ["undiscovered", "fail_enable", "healthy"]}
    unprotected_vms = []
    for i in range(vms):
        si = i % subscriptions
        rg = f"rg-app-{(i // subscriptions) % resource_groups + 1}"
        vm = estate.add_vm(_vm(estate, subs[si], rg, f"vm-{i:05d}", location, i))
        cat = category.get(i, "healthy")
        expect[cat].append(vm.id.lower())
        if cat != "missing_extension":
            ext = Extension(name="VMSnapshotLinux")
            if cat == "failed_extension":
                ext.provisioning_state = "Failed"
                ext.status_code = "ProvisioningState/failed/11"
                ext.status_message = "Enable failed: the handler could not read its settings (code 11)"
            elif cat == "old_version":
                ext.version = "1.0"
            vm.extensions.append(ext)
        if other_extension_every and i % other_extension_every == 0:
            name, pub, typ, ver = OTHER_EXTENSION
            vm.extensions.insert(
                0, Extension(name=name, publisher=pub, type=typ, version=ver, status_message="Agent running")
            )
        if cat == "unprotected":
            unprotected_vms.append(vm)
            continue
        kw = {"last_backup_time": now - datetime.timedelta(hours=5, minutes=i % 50)}
        if cat == "failing_backup":
            kw.update(last_backup_status="Failed", health_status="ActionRequired")
            vm.fail_backup = True
        elif cat == "stale_backup":
            kw["last_backup_time"] = now - datetime.timedelta(days=3)
        vault = vaults[si]
        estate.protect(vault, vm, **kw)
        job = vault.add_job(
            vm.name,
            "Backup",
            "Failed" if cat == "failing_backup" else "Completed",
            error="UserErrorGuestAgentStatusUnavailable" if cat == "failing_backup" else None,
        )
        job.start = kw["last_backup_time"]
        job.end = job.start + datetime.timedelta(minutes=12)

    for vm in unprotected_vms[:undiscovered]:
        vm.discovered = False
        expect["undiscovered"].append(vm.id.lower())
    for vm in unprotected_vms[undiscovered : undiscovered + fail_enable]:
        vm.fail_enable = True
        expect["fail_enable"].append(vm.id.lower())
    estate.expect = expect
    return estate


def _vm(estate, sub, rg, name, location, i):
    tags = {"env": "prod" if i % 2 == 0 else "dev", "team": "abc"[i % 3]}
    return VM(
        subscription=sub,
        resource_group=rg,
        name=name,
        location=location,
        tags=tags,
        vm_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{sub}/{rg}/{name}")),
    )

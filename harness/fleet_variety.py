"""Make a generated estate (harness.armemu.generate_fleet) look like a fleet people run: daily backups that
finished at different hours (a few late ones past a 26 h rule) and a mix of extension versions from rolling
upgrades. The fleet report's charts then have something to show; the planted problems are left untouched.

Deterministic for a seed. Returns what it changed, so a test can predict the verdicts."""

import datetime
import random

from harness.armemu.state import utcnow

VERSION_MIX = (("1.9", 70), ("1.10", 22), ("1.8", 8))


def vary(estate, seed=11, late_share=0.04, versions=VERSION_MIX):
    rng = random.Random(seed)
    now = utcnow()
    healthy = set(estate.expect.get("healthy", []))
    changed = {"late": [], "versions": {}}
    for vault in estate.vaults.values():
        for key, item in sorted(vault.items.items()):
            if key not in healthy:
                continue
            if rng.random() < late_share:
                hours = rng.uniform(27, 44)  # a missed daily backup
                changed["late"].append(key)
            else:
                hours = rng.triangular(0.5, 24, 6)
            item.last_backup_time = now - datetime.timedelta(hours=hours)
    labels = [v for v, _ in versions]
    weights = [w for _, w in versions]
    for key in sorted(healthy):
        vm = estate.vms[key]
        for ext in vm.extensions:
            if ext.type == "VMSnapshotLinux":
                ext.version = rng.choices(labels, weights)[0]
                changed["versions"][key] = ext.version
    return changed

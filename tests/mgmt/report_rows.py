"""Verify rows made up in memory for report tests that need many VMs but no emulator run."""

import datetime

NOW = datetime.datetime(2026, 12, 6, 23, 30, tzinfo=datetime.timezone.utc)
RULE_SET = {
    "min_version": "1.9",
    "allow_unprotected": False,
    "max_age": datetime.timedelta(hours=26),
    "max_age_text": "26h",
}


def synthetic_rows(n, groups=25, subscriptions=3):
    rows = []
    for i in range(n):
        failed = i % 7 == 0
        rows.append(
            {
                "vm": f"vm-with-a-realistic-name-{i:05d}",
                "resourceGroup": f"rg-workload-{i % groups:02d}",
                "subscriptionId": f"{i % subscriptions:08d}-aaaa-4bbb-8ccc-0000000000{i % subscriptions:02d}",
                "vmId": f"/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{i}",
                "extensionState": "Failed" if i % 31 == 0 else "Succeeded",
                "extensionVersion": "1.9",
                "vault": "vault-production-westeurope",
                "policy": "DailyPolicy-2",
                "lastBackupStatus": "Completed",
                "lastBackupTime": "2026-12-06T18:47:12.1234567Z",
                "backupAgeHours": round((i % 300) / 10, 1) if i % 50 else None,
                "passed": not failed,
                "result": "FAIL" if failed else "PASS",
                "reasons": ["last backup 29.9h ago, older than 26h"] if failed else [],
            }
        )
    return rows

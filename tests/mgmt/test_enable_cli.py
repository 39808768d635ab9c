"""`vmsnapkit backup enable`, `backup status` and `backup jobs` against the emulator, asserted on the exact
REST sequence the emulator recorded."""

import collections
import os
import signal
import subprocess
import time

from .conftest import VMSNAPKIT

# Azure answers InProgress polls with Retry-After; the emulator sends 0, which the SDK treats as "absent".
ENABLE = ("backup", "enable", "--polling-interval", "0")


def puts_per_vm(emu):
    return collections.Counter(
        r["body"]["properties"]["sourceResourceId"].lower() for r in emu.requests(method="PUT", path="/protectedItems/")
    )


def test_dry_run_writes_nothing_then_enable_protects_each_vm_once(emulator, kit_for):
    emu = emulator(vms=40, subscriptions=2, unprotected=8, undiscovered=2, lro_polls=1)
    kit = kit_for(emu)
    unprotected = set(emu.estate.expect["unprotected"])
    _, plan = kit.json(*ENABLE, "--dry-run", check=0)
    assert {r["vmId"].lower() for r in plan if r["action"] == "would enable"} == unprotected
    assert not [
        r for r in emu.requests() if r["method"] in ("PUT", "POST", "DELETE") and "ResourceGraph" not in r["path"]
    ]
    emu.clear_log()
    proc, rows = kit.json(*ENABLE, check=0)
    assert {r["vmId"].lower() for r in rows if r["action"] == "enabled"} == unprotected
    assert sum(1 for r in rows if r["action"] == "already protected") == 40 - len(unprotected)
    assert "8 enabled" in proc.stderr
    assert puts_per_vm(emu) == {k: 1 for k in unprotected}
    refresh = emu.requests(method="POST", path="refreshContainers")
    listing = emu.requests(method="GET", path="backupProtectableItems")
    vaults_used = {emu.estate.protecting_vault(emu.estate.vms[k]).id.lower() for k in unprotected}
    assert len(refresh) == len(listing) == len(vaults_used)
    # in each vault the refresh came before the listing, and every PUT after all listings
    for ref, lst in zip(sorted(refresh, key=lambda r: r["path"]), sorted(listing, key=lambda r: r["path"])):
        assert ref["path"].split("/backupFabrics")[0] == lst["path"].split("/backupProtectableItems")[0]
        assert ref["seq"] < lst["seq"]
    assert max(r["seq"] for r in listing) < min(r["seq"] for r in emu.requests(method="PUT"))
    assert len(emu.requests(method="GET", path="/operationsStatus/")) == 2 * len(unprotected)  # lro_polls=1
    for key in unprotected:
        item = emu.estate.protecting_vault(emu.estate.vms[key]).items[key]
        assert item.policy_id.endswith("/backupPolicies/DefaultPolicy")
    emu.clear_log()
    _, again = kit.json(*ENABLE, check=0)
    assert {r["action"] for r in again} == {"already protected"} and not puts_per_vm(emu)


def test_failing_vm_is_reported_and_exit_code_is_1(emulator, kit_for):
    emu = emulator(vms=20, subscriptions=1, unprotected=4, fail_enable=1)
    kit = kit_for(emu)
    proc, rows = kit.json(*ENABLE, check=1)
    failed = [r for r in rows if r["action"] == "failed"]
    assert [r["vmId"].lower() for r in failed] == emu.estate.expect["fail_enable"] and rows[0] == failed[0]
    assert "1 failed" in proc.stderr and "3 enabled" in proc.stderr


def test_policy_sharding_past_1000_vms(emulator, kit_for):
    emu = emulator(vms=30, subscriptions=1, unprotected=5)
    vault = next(iter(emu.estate.vaults.values()))
    vault.policies["defaultpolicy"].extra_count = 998 - vault.policy_count("DefaultPolicy")
    kit = kit_for(emu)
    _, rows = kit.json(*ENABLE, "--query", "[?action=='enabled'].policy", check=0)
    assert collections.Counter(rows) == {"DefaultPolicy": 2, "DefaultPolicy-2": 3}
    created = emu.requests(method="PUT", path="/backupPolicies/")
    assert [r["path"].rsplit("/", 1)[-1] for r in created] == ["DefaultPolicy-2"]
    assert created[0]["body"]["properties"]["backupManagementType"] == "AzureIaasVM"
    assert vault.policy_count("DefaultPolicy") == 1000 and vault.policy_count("DefaultPolicy-2") == 3


def test_killed_run_resumes_and_protects_every_vm_exactly_once(emulator, kit_for, tmp_path):
    emu = emulator(vms=120, subscriptions=2, unprotected=60, latency_ms=15, lro_polls=2)
    kit = kit_for(emu)
    resume = tmp_path / "enable.resume"
    argv = VMSNAPKIT + [
        *ENABLE,
        "--arm-endpoint",
        emu.url,
        "--resume-file",
        str(resume),
        "--max-concurrency",
        "4",
        "-o",
        "json",
    ]
    child = subprocess.Popen(argv, env=kit.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(tmp_path))
    deadline = time.monotonic() + 60
    while len(emu.requests(method="PUT", path="/protectedItems/")) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate()
    first = puts_per_vm(emu)
    assert 20 <= len(first) < 60, "the kill must land mid-run"
    assert resume.read_text().count('"event": "enabled"') >= 1
    emu.set_knob("latency_ms", 0)
    proc, rows = kit.json(*ENABLE, "--resume-file", str(resume), check=0)
    total = puts_per_vm(emu)
    unprotected = set(emu.estate.expect["unprotected"])
    assert set(total) == unprotected and set(total.values()) == {1}, "every VM exactly one PUT over both runs"
    actions = collections.Counter(r["action"] for r in rows)
    assert actions["enabled"] == 60 - len(first)
    assert actions["skipped"] + actions["already protected"] == 120 - actions["enabled"]
    assert all(emu.estate.protecting_vault(emu.estate.vms[k]) for k in unprotected)
    refreshes = emu.requests(method="POST", path="refreshContainers")
    assert len(refreshes) == 2, "each vault refreshed once across both runs"


def test_backup_status_and_jobs(emulator, kit_for):
    emu = emulator(vms=20, subscriptions=1)
    kit = kit_for(emu)
    _, status = kit.json("backup", "status", check=1)
    by = {r["vmId"].lower(): r for r in status}
    bad = emu.estate.expect["failing_backup"][0]
    assert by[bad]["lastJob"] == "Backup" and by[bad]["lastJobStatus"] == "Failed"
    assert all(by[k]["protectionState"] == "NotProtected" for k in emu.estate.expect["unprotected"])
    emu.clear_log()
    _, jobs = kit.json("backup", "jobs", "--status", "Failed", check=0)
    assert [j["vm"] for j in jobs] == [emu.estate.vms[bad].name]
    assert jobs[0]["error"] == "UserErrorGuestAgentStatusUnavailable"
    assert len(emu.requests(method="GET", path="/backupJobs$")) == 1  # one listing per vault, not per VM
    table = kit.run("backup", "jobs", "--since", "2d", check=0).stdout.splitlines()
    assert table[0].split() == ["VM", "Vault", "Operation", "Status", "StartTimeUTC", "Duration", "Error"]
    assert len(table) - 2 == 20 - len(emu.estate.expect["unprotected"])


def test_explicit_vault_in_another_subscription_skips_discovery(emulator, kit_for):
    """--vault with a full id: VMs of another subscription get the documented container/item names directly
    (no refresh, no listing), as the CLI's cross-subscription shortcut does."""
    emu = emulator(vms=20, subscriptions=2, unprotected=6)
    subs = sorted(emu.estate.subscriptions)
    vault1 = next(v for v in emu.estate.vaults.values() if v.subscription == subs[0])
    targets = [k for k in emu.estate.expect["unprotected"] if emu.estate.vms[k].subscription == subs[1]]
    assert targets
    kit = kit_for(emu)
    _, rows = kit.json(*ENABLE, "--subscription", subs[1], "--vault", vault1.id, check=0)
    assert {r["vmId"].lower() for r in rows if r["action"] == "enabled"} == set(targets)
    assert not emu.requests(path="refreshContainers") and not emu.requests(path="backupProtectableItems")
    for key in targets:
        assert emu.estate.protecting_vault(emu.estate.vms[key]) is vault1
        put = [r for r in emu.requests(method="PUT") if emu.estate.vms[key].name in r["path"]]
        assert put[0]["path"].endswith(
            f"/protectedItems/VM;iaasvmcontainerv2;{emu.estate.vms[key].resource_group};{emu.estate.vms[key].name}"
        )

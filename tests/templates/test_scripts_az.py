"""The az scripts, run with the real az CLI against the loopback ARM emulator (registered custom cloud)."""

import collections
import json
import os
import signal
import subprocess
import time

import pytest

from .conftest import SCRIPTS, SUB, build_estate, run_script, table_rows

ENABLE = "enable-backup.sh"
VERIFY = "verify-extension.sh"
VAULT = ["-g", "rg-backup", "-v", "vault1"]


def puts_by_vm(emu):
    """{lower VM id: number of protected-item PUTs} from the emulator's request log."""
    counts = collections.Counter()
    for e in emu.requests(method="PUT", path="/protectedItems/"):
        counts[e["body"]["properties"]["sourceResourceId"].lower()] += 1
    return counts


@pytest.mark.parametrize("script", [ENABLE, VERIFY, "deploy-template.sh"])
def test_help_and_bad_usage(script):
    ok = subprocess.run([os.path.join(SCRIPTS, script), "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "Usage:" in ok.stdout
    bad = subprocess.run([os.path.join(SCRIPTS, script), "--no-such-option"], capture_output=True, text=True)
    assert bad.returncode == 2 and "error:" in bad.stderr


def test_enable_50_vms_two_groups_some_protected_one_failing(loopback):
    est, vault, vms = build_estate(per_group=25, protected=36, fail_enable=[40])
    emu, az = loopback(est)
    proc = run_script(
        ENABLE,
        *VAULT,
        "-p",
        "DefaultPolicy",
        "--vm-resource-group",
        "rg-web",
        "--vm-resource-group",
        "rg-db",
        "-j",
        "8",
        env=az.env,
    )
    assert proc.returncode == 1, proc.stderr  # one VM failed
    rows = table_rows(proc.stdout)
    results = collections.Counter(r[2] for r in rows)
    assert results == {"AlreadyProtected": 36, "Enabled": 13, "Failed": 1}
    (failed,) = [r for r in rows if r[2] == "Failed"]
    assert failed[:2] == [vms[40].name, "rg-db"] and "UserErrorVmProvisioningStateFailed" in failed[4]
    # every unprotected VM got exactly one PUT, with its full id; protected ones none
    assert puts_by_vm(emu) == {vm.id.lower(): 1 for vm in vms[36:]}
    assert {k for k in vault.items} == {vm.id.lower() for vm in vms if vm is not vms[40]}
    # full ids: az never looked a VM up in the vault's resource group (what --vm NAME would do)
    vm_gets = emu.requests(method="GET", path="/virtualMachines/[^/]+$")
    assert vm_gets and all("/resourcegroups/rg-backup/" not in e["path"].lower() for e in vm_gets)
    assert len(emu.requests(method="GET", path="/backupProtectedItems$")) == 1  # one listing, not per VM

    # Re-run: only the failed VM is tried again.
    emu.clear_log()
    again = run_script(
        ENABLE,
        *VAULT,
        "-p",
        "DefaultPolicy",
        "--vm-resource-group",
        "rg-web",
        "--vm-resource-group",
        "rg-db",
        "-o",
        "json",
        env=az.env,
    )
    assert again.returncode == 1
    summary = json.loads(again.stdout)
    assert collections.Counter(r["Result"] for r in summary) == {"AlreadyProtected": 49, "Failed": 1}
    assert puts_by_vm(emu) == {vms[40].id.lower(): 1}


def test_dry_run_prints_full_id_commands_and_changes_nothing(loopback, tmp_path):
    est, vault, vms = build_estate(per_group=2, protected=1)
    emu, az = loopback(est)
    id_file = tmp_path / "vms.txt"
    id_file.write_text(
        "# production web tier\n%s\n\n%s\n"
        % (vms[1].id, vms[2].id.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/"))
    )
    proc = run_script(
        ENABLE,
        *VAULT,
        "-p",
        "DefaultPolicy",
        "--dry-run",
        "--file",
        str(id_file),
        "--ids",
        vms[0].id,
        vms[3].id,
        env=az.env,
    )
    assert proc.returncode == 0, proc.stderr
    commands = [ln for ln in proc.stdout.splitlines() if "enable-for-vm" in ln]
    assert len(commands) == 3  # vms[0] is protected already
    for vm, line in zip(sorted(vms[1:], key=lambda v: v.id.lower()), sorted(commands, key=str.lower)):
        assert "--vm %s" % vm.id.lower() in line.lower() and "--resource-group rg-backup" in line
    assert emu.requests(method="PUT") == [] and len(vault.items) == 1
    assert collections.Counter(r[2] for r in table_rows(proc.stdout.split("\n", 3)[-1])) == {
        "AlreadyProtected": 1,
        "DryRun": 3,
    }


def test_bad_vm_id_is_refused_before_any_change(loopback):
    est, vault, vms = build_estate(per_group=1)
    emu, az = loopback(est)
    proc = run_script(ENABLE, *VAULT, "-p", "DefaultPolicy", "--ids", vms[0].id, "vm-by-name-only", env=az.env)
    assert proc.returncode == 2
    assert "not a full VM resource id: vm-by-name-only" in proc.stderr
    assert emu.requests(method="PUT") == []


def test_policies_fill_to_their_1000_vm_limit_in_order(loopback):
    est, vault, vms = build_estate(per_group=3)
    vault.policies["defaultpolicy"].extra_count = 997  # room for 3 more
    emu, az = loopback(est)
    proc = run_script(
        ENABLE,
        *VAULT,
        "-p",
        "DefaultPolicy",
        "-p",
        "SecondPolicy",
        "--vm-resource-group",
        "rg-web",
        "--vm-resource-group",
        "rg-db",
        env=az.env,
    )
    assert proc.returncode == 0, proc.stderr
    policies = collections.Counter(
        e["body"]["properties"]["policyId"].rsplit("/", 1)[-1]
        for e in emu.requests(method="PUT", path="/protectedItems/")
    )
    assert policies == {"DefaultPolicy": 3, "SecondPolicy": 3}


def test_killed_run_resumes_and_protects_each_vm_exactly_once(loopback):
    est, vault, vms = build_estate(per_group=8, tags=lambda g, i: {"backup": "daily"})
    emu, az = loopback(est)
    argv = [os.path.join(SCRIPTS, ENABLE), *VAULT, "-p", "DefaultPolicy", "--tag", "backup=daily", "-j", "2"]
    first = subprocess.Popen(argv, env=az.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(puts_by_vm(emu)) < 5 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)  # the whole run: script, xargs and every az child
    first.communicate()
    done_before = len(vault.items)
    assert 5 <= done_before < len(vms), "the kill must land halfway"
    time.sleep(0.5)  # let any request already on the wire finish

    second = run_script(ENABLE, *VAULT, "-p", "DefaultPolicy", "--tag", "backup=daily", "-j", "4", env=az.env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert collections.Counter(r[2] for r in table_rows(second.stdout))["AlreadyProtected"] >= done_before
    assert set(vault.items) == {vm.id.lower() for vm in vms}
    assert puts_by_vm(emu) == {vm.id.lower(): 1 for vm in vms}


def test_verify_extension_table_json_and_exit_codes(loopback):
    est, vault, vms = build_estate(per_group=3, tags=lambda g, i: {"tier": g})
    vms[1].extensions.clear()  # missing
    vms[2].extensions[0].provisioning_state = "Failed"
    emu, az = loopback(est)
    proc = run_script(VERIFY, "--tag", "tier=rg-web", env=az.env)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0].split() == [
        "VM",
        "ResourceGroup",
        "Name",
        "ProvisioningState",
        "Publisher",
        "Version",
        "AutoUpgradeMinorVersion",
    ]
    rows = {r[0]: r for r in table_rows(proc.stdout)}
    assert rows[vms[0].name][2:] == ["VMSnapshotLinux", "Succeeded", "Microsoft.Azure.RecoveryServices", "1.9", "true"]
    assert rows[vms[1].name][3] == "Missing" and rows[vms[2].name][3] == "Failed"

    as_json = run_script(VERIFY, "-g", "rg-db", "-o", "json", env=az.env)
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert sorted(d["VM"] for d in data) == sorted(vm.name for vm in vms[3:])
    assert all(d["ProvisioningState"] == "Succeeded" and d["AutoUpgradeMinorVersion"] is True for d in data)
    # one extension list per VM, by full id, under the registered custom cloud
    assert len(emu.requests(method="GET", path="/extensions$")) == 3 + 3
    cloud = json.loads(az.run("cloud", "show", "-o", "json").stdout)
    assert cloud["name"] == "KitLoopCloud" and cloud["endpoints"]["resourceManager"].startswith(emu.url)


def test_verify_extension_publisher_filter(loopback):
    est, vault, vms = build_estate(per_group=1)
    emu, az = loopback(est)
    proc = run_script(VERIFY, "--ids", vms[0].id, "--publisher", "Microsoft.RecoveryServices", env=az.env)
    assert proc.returncode == 1 and "Missing" in proc.stdout
    proc = run_script(VERIFY, "--ids", vms[0].id, "--publisher", "Microsoft.Azure.RecoveryServices", env=az.env)
    assert proc.returncode == 0, proc.stderr


def test_az_error_is_reported_not_hidden(loopback):
    est, vault, vms = build_estate(per_group=1)
    emu, az = loopback(est)
    ghost = vms[0].id.replace("-vm00", "-ghost")
    proc = run_script(VERIFY, "--ids", ghost, env=az.env)
    assert proc.returncode == 2 and "az failed for a VM" in proc.stderr and "Error" in proc.stdout
    assert SUB in ghost

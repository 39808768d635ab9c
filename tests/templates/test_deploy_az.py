"""`az deployment group|sub create / what-if` of every kit template through deploy-template.sh, against the
emulator, which validates each deployment with the same schemas as the offline validator."""

import collections
import json
import os
import sys

from harness.armemu.plugins.deployments import deployments

from .conftest import REPO, SUB, build_estate, run_script

DEPLOY = "deploy-template.sh"


def committed(name, fname="azuredeploy.json"):
    with open(os.path.join(REPO, "arm-templates", name, fname), encoding="utf-8") as f:
        return json.load(f)


def params_file(tmp_path, name, **overrides):
    """The committed example parameters with overrides (e.g. VMs that exist in the emulator)."""
    doc = committed(name, "azuredeploy.parameters.example.json")
    for key, value in overrides.items():
        doc["parameters"][key] = {"value": value}
    path = tmp_path / ("%s.parameters.json" % name)
    path.write_text(json.dumps(doc))
    return str(path)


def test_every_template_deploys_with_az(loopback, tmp_path):
    est, vault, vms = build_estate(per_group=2)
    emu, az = loopback(est)
    env = dict(az.env, PYTHONPATH=os.path.join(REPO, "deploy"), PYTHON=sys.executable)

    enable = run_script(
        DEPLOY,
        "create",
        "enable-backup",
        "-g",
        "rg-backup",
        "-n",
        "enable1",
        "-p",
        params_file(tmp_path, "enable-backup", vaultName="vault1", virtualMachineIds=[vm.id for vm in vms]),
        env=env,
    )
    assert enable.returncode == 0, enable.stderr
    assert json.loads(enable.stdout)["properties"]["provisioningState"] == "Succeeded"

    ext = run_script(
        DEPLOY,
        "create",
        "vm-snapshot-extension",
        "-g",
        "rg-web",
        "-n",
        "ext1",
        "-p",
        params_file(tmp_path, "vm-snapshot-extension", vmNames=[vms[0].name], protectedSettings={}),
        env=env,
    )
    assert ext.returncode == 0, ext.stderr

    policy = run_script(
        DEPLOY,
        "create",
        "backup-policy-at-scale",
        "-l",
        "westus",
        "-n",
        "atscale1",
        "-p",
        params_file(
            tmp_path, "backup-policy-at-scale", backupPolicyId=vault.policy_id("DefaultPolicy"), vaultLocation="westus"
        ),
        env=env,
    )
    assert policy.returncode == 0, policy.stderr

    # the emulator applied what the templates describe
    assert {k: it.policy_id.rsplit("/", 1)[-1] for k, it in vault.items.items()} == {
        vm.id.lower(): "DailyLinux" for vm in vms
    }
    (snapshot,) = [e for e in vms[0].extensions if e.name == "VMSnapshotLinux"]
    assert (snapshot.publisher, snapshot.type, snapshot.version) == (
        "Microsoft.RecoveryServices",
        "VMSnapshotLinux",
        "1.9",
    )
    verify = run_script("verify-extension.sh", "--ids", vms[0].id, "--publisher", "Microsoft.RecoveryServices", env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    recorded = {d["name"]: d for d in deployments(emu)}
    assert set(recorded) == {"enable1", "ext1", "atscale1"}
    assert recorded["enable1"]["template"] == committed("enable-backup")
    assert recorded["enable1"]["parameters"]["virtualMachineIds"]["value"] == [vm.id for vm in vms]
    assert recorded["ext1"]["resource_group"] == "rg-web"
    assert recorded["ext1"]["template"]["resources"][0]["properties"]["typeHandlerVersion"] == "1.9"
    assert recorded["atscale1"]["scope"] == "subscription" and recorded["atscale1"]["location"] == "westus"
    assert all(e["path"].startswith("/subscriptions/%s/" % SUB) for e in emu.requests(path="deployments"))


def test_what_if_and_validate(loopback, tmp_path):
    est, vault, vms = build_estate(per_group=1)
    emu, az = loopback(est)
    env = dict(az.env, PYTHONPATH=os.path.join(REPO, "deploy"), PYTHON=sys.executable)
    pfile = params_file(tmp_path, "vm-snapshot-extension", vmNames=[vms[0].name], protectedSettings={})
    what_if = run_script(DEPLOY, "what-if", "vm-snapshot-extension", "-g", "rg-web", "-p", pfile, env=env)
    assert what_if.returncode == 0, what_if.stderr
    assert "Microsoft.Compute/virtualMachines/extensions" in what_if.stdout
    validate = run_script(DEPLOY, "validate", "vm-snapshot-extension", "-g", "rg-web", "-p", pfile, env=env)
    assert validate.returncode == 0, validate.stderr
    assert emu.requests(method="POST", path="/whatIf$") and emu.requests(method="POST", path="/validate$")
    assert deployments(emu) == []  # neither deploys anything


def test_invalid_template_is_refused_offline_and_by_the_emulator(loopback):
    est, vault, vms = build_estate(per_group=1)
    emu, az = loopback(est)
    env = dict(az.env, PYTHONPATH=os.path.join(REPO, "deploy"), PYTHON=sys.executable)
    quickstart = os.path.join(REPO, "tests", "templates", "fixtures", "quickstart-backup-vms.json")
    params = [
        "--param",
        "existingVirtualMachinesResourceGroup=rg-web",
        "--param",
        'existingVirtualMachines=["%s"]' % vms[0].name,
    ]
    offline = run_script(DEPLOY, "create", quickstart, "-g", "rg-backup", *params, env=env)
    assert offline.returncode == 2 and "offline check failed" in offline.stderr
    assert "protectedItemType" in offline.stderr
    assert emu.requests(path="deployments") == []

    server = run_script(DEPLOY, "create", quickstart, "-g", "rg-backup", "--no-offline-check", *params, env=env)
    assert server.returncode != 0
    assert "InvalidTemplate" in server.stderr and "protectedItemType" in server.stderr
    assert deployments(emu) == []


def test_dry_run_prints_the_az_command(tmp_path):
    proc = run_script(
        DEPLOY,
        "what-if",
        "backup-policy-at-scale",
        "-l",
        "chinaeast2",
        "--dry-run",
        "--no-offline-check",
        env=dict(os.environ),
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("az deployment sub what-if ") and "--location chinaeast2" in proc.stdout
    wrong = run_script(DEPLOY, "create", "backup-policy-at-scale", "-g", "rg", env=dict(os.environ))
    assert wrong.returncode == 2 and "subscription deployment" in wrong.stderr


def test_enable_backup_template_shards_policies_past_1000_vms(loopback, tmp_path):
    est, vault, vms = build_estate(groups=("rg-a", "rg-b", "rg-c"), per_group=767)  # 2,301 VMs
    emu, az = loopback(est)
    env = dict(az.env, PYTHONPATH=os.path.join(REPO, "deploy"), PYTHON=sys.executable)
    pfile = params_file(
        tmp_path,
        "enable-backup",
        vaultName="vault1",
        isNewVault=False,
        policyName="DefaultPolicy",
        isNewPolicy=False,
        virtualMachineIds=[vm.id for vm in vms],
    )
    proc = run_script(DEPLOY, "create", "enable-backup", "-g", "rg-backup", "-n", "fleet", "-p", pfile, env=env)
    assert proc.returncode == 0, proc.stderr
    per_policy = collections.Counter(it.policy_id.rsplit("/", 1)[-1] for it in vault.items.values())
    assert per_policy == {"DefaultPolicy": 1000, "DefaultPolicy-2": 1000, "DefaultPolicy-3": 301}
    assert len(emu.requests(method="PUT", path="deployments")) == 1  # one az call for 2,301 VMs


def test_nearly_full_policy_fails_unless_vms_per_policy_leaves_room(loopback, tmp_path):
    est, vault, vms = build_estate(per_group=12)
    vault.policies["defaultpolicy"].extra_count = 990
    emu, az = loopback(est)
    env = dict(az.env, PYTHONPATH=os.path.join(REPO, "deploy"), PYTHON=sys.executable)
    ids = [vm.id for vm in vms]
    full = run_script(
        DEPLOY,
        "create",
        "enable-backup",
        "-g",
        "rg-backup",
        "-n",
        "full",
        "-p",
        params_file(
            tmp_path,
            "enable-backup",
            vaultName="vault1",
            isNewVault=False,
            policyName="DefaultPolicy",
            isNewPolicy=False,
            virtualMachineIds=ids,
        ),
        env=env,
    )
    assert full.returncode != 0 and "1000 VMs per policy" in full.stderr
    vault.items.clear()
    fits = run_script(
        DEPLOY,
        "create",
        "enable-backup",
        "-g",
        "rg-backup",
        "-n",
        "fits",
        "-p",
        params_file(
            tmp_path,
            "enable-backup",
            vaultName="vault1",
            isNewVault=False,
            policyName="DefaultPolicy",
            isNewPolicy=False,
            virtualMachineIds=ids,
            vmsPerPolicy=10,
        ),
        env=env,
    )
    assert fits.returncode == 0, fits.stderr
    per_policy = collections.Counter(it.policy_id.rsplit("/", 1)[-1] for it in vault.items.values())
    assert per_policy == {"DefaultPolicy": 10, "DefaultPolicy-2": 10, "DefaultPolicy-3": 4}

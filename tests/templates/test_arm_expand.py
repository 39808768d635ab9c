"""The offline expander: what the kit's templates turn into for given parameters (no Azure, no az)."""

import collections
import json
import os
import subprocess
import sys

import pytest
from vmsnapkit.arm import templates
from vmsnapkit.arm.expand import Context, ExpandError, expand

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CTX = Context("sub-1", "rg-backup", "chinaeast2", "kit-deploy")


def vm_ids(n):
    return [
        "/subscriptions/sub-1/resourceGroups/rg-%d/providers/Microsoft.Compute/virtualMachines/vm-%05d" % (i % 7, i)
        for i in range(n)
    ]


@pytest.mark.parametrize(
    "count, expected",
    [
        (1, {"DefaultPolicy": 1}),
        (1000, {"DefaultPolicy": 1000}),
        (1001, {"DefaultPolicy": 1000, "DefaultPolicy-2": 1}),
        (3500, {"DefaultPolicy": 1000, "DefaultPolicy-2": 1000, "DefaultPolicy-3": 1000, "DefaultPolicy-4": 500}),
    ],
)
def test_enable_backup_never_puts_more_than_1000_vms_in_a_policy(count, expected):
    template = templates.enable_backup()[0]
    resources = expand(template, {"vaultName": "v", "virtualMachineIds": vm_ids(count)}, CTX)
    items = [r for r in resources if r.type.endswith("/protectedItems")]
    assert collections.Counter(r.body["properties"]["policyId"].rsplit("/", 1)[-1] for r in items) == expected
    # existing first policy (isNewPolicy false): only the extra shards are created, with the same schedule
    created = sorted(r.name for r in resources if r.type.endswith("/backupPolicies"))
    assert created == sorted("v/" + p for p in expected if p != "DefaultPolicy")
    # each VM once, in the documented name format, with the literal discriminator and its own full id
    assert sorted(r.body["properties"]["sourceResourceId"] for r in items) == sorted(vm_ids(count))
    first = items[0]
    assert first.name == ("v/Azure/iaasvmcontainer;iaasvmcontainerv2;rg-0;vm-00000/vm;iaasvmcontainerv2;rg-0;vm-00000")
    assert first.body["properties"]["protectedItemType"] == "Microsoft.Compute/virtualMachines"


def test_enable_backup_batches_stay_under_arms_800_resource_limit():
    template = templates.enable_backup()[0]
    resources = expand(template, {"vaultName": "v", "virtualMachineIds": vm_ids(2301)}, CTX)
    per_batch = collections.Counter(r.deployment for r in resources if r.type.endswith("/protectedItems"))
    assert len(per_batch) == 5 and max(per_batch.values()) <= 800 and sum(per_batch.values()) == 2301


def test_new_vault_and_policy_come_from_the_parameters():
    template = templates.enable_backup()[0]
    resources = expand(
        template,
        {
            "vaultName": "v",
            "isNewVault": True,
            "isNewPolicy": True,
            "policyName": "Nightly",
            "scheduleRunTime": "23:15",
            "virtualMachineIds": vm_ids(2),
        },
        CTX,
    )
    vault = [r for r in resources if r.type == "Microsoft.RecoveryServices/vaults"][0]
    assert vault.body["location"] == "chinaeast2"  # resourceGroup().location, never a literal region
    (policy,) = [r for r in resources if r.type.endswith("/backupPolicies")]
    assert policy.name == "v/Nightly"
    assert policy.body["properties"]["schedulePolicy"]["scheduleRunTimes"] == ["2020-01-01T23:15:00Z"]


def test_extension_template_expands_per_vm_with_the_version_from_the_version_file():
    template = templates.vm_snapshot_extension()[0]
    given = {"vmNames": ["a", "b"], "locale": "zh-cn", "protectedSettings": {"k": 1}}
    resources = expand(template, given, CTX)
    assert [r.name for r in resources] == ["a/VMSnapshotLinux", "b/VMSnapshotLinux"]
    props = resources[0].body["properties"]
    assert props["typeHandlerVersion"] == "1.9" and props["settings"] == {"locale": "zh-cn"}
    assert props["protectedSettings"] == {"k": 1}


def test_policy_template_keeps_policy_expressions_for_azure_policy():
    template = templates.backup_policy_at_scale()[0]
    resources = expand(
        template, {"backupPolicyId": "/x/backupPolicies/p", "vaultLocation": "westus"}, Context("sub-1", None, "westus")
    )
    kinds = collections.Counter(r.type for r in resources)
    assert kinds == {
        "Microsoft.Authorization/policyDefinitions": 1,
        "Microsoft.Authorization/policyAssignments": 1,
        "Microsoft.Authorization/roleAssignments": 2,
    }
    rule = [r for r in resources if r.type.endswith("policyDefinitions")][0].body["properties"]["policyRule"]
    assert rule["then"]["effect"] == "[parameters('effect')]"  # unescaped once, evaluated by Azure Policy
    assert rule["then"]["details"]["deployment"]["properties"]["parameters"]["sourceResourceId"] == {
        "value": "[field('id')]"
    }
    roles = [r for r in resources if r.type.endswith("roleAssignments")]
    assert len({r.name for r in roles}) == 2  # distinct deterministic guids


def test_unknown_function_and_missing_parameter_are_clear_errors():
    with pytest.raises(ExpandError, match="function nosuch"):
        expand({"resources": [{"type": "A.B/c", "apiVersion": "2025-01-01", "name": "[nosuch()]"}]}, {}, CTX)
    with pytest.raises(ExpandError, match="required parameter 'vmNames'"):
        expand(templates.vm_snapshot_extension()[0], {}, CTX)


def test_cli_expand_summary(tmp_path):
    params = tmp_path / "p.json"
    params.write_text(
        json.dumps({"parameters": {"vaultName": {"value": "v"}, "virtualMachineIds": {"value": vm_ids(1500)}}})
    )
    proc = subprocess.run(
        [sys.executable, "-m", "vmsnapkit.arm", "expand", "enable-backup", "-p", str(params), "--summary"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=os.path.join(REPO, "deploy")),
    )
    assert proc.returncode == 0, proc.stderr
    per_policy = json.loads(proc.stdout)["protectedItemsPerPolicy"]
    assert per_policy == {"DefaultPolicy": 1000, "DefaultPolicy-2": 500}

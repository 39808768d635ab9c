"""The offline ARM validator: Draft 4 schemas and the reviewer's rules, on good and bad "
"input."""

import copy
import datetime
import json
import os
import subprocess
import sys

import pytest
from vmsnapkit.arm import generate, templates
from vmsnapkit.arm.schemas import SchemaStore
from vmsnapkit.arm.validate import Validator

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
QUICKSTART = os.path.join(HERE, "fixtures", "quickstart-backup-vms.json")
TODAY = datetime.date(2026, 11, 29)


@pytest.fixture(scope="module")
def validator():
    return Validator(today=TODAY)


def rules_of(findings):
    return sorted({f.rule for f in findings})


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def extension_template():
    return templates.vm_snapshot_extension()[0]


# -- the kit's own templates ----------------------------------------------------------------------------
def test_committed_templates_are_what_the_description_generates():
    assert generate.stale() == [], "committed templates are stale: run `make templates`"


def test_stale_check_notices_a_hand_edit(tmp_path):
    generate.write(str(tmp_path))
    assert generate.stale(str(tmp_path)) == []
    path = tmp_path / "enable-backup" / "azuredeploy.json"
    path.write_text(path.read_text().replace("DefaultPolicy", "HandEdited"))
    assert generate.stale(str(tmp_path)) == [str(path)]


@pytest.mark.parametrize("name", sorted(templates.TEMPLATES))
@pytest.mark.parametrize("fname", [generate.TEMPLATE_FILE, generate.PARAMETERS_FILE])
def test_committed_files_validate(validator, name, fname):
    findings = validator.check_file(os.path.join(REPO, "arm-templates", name, fname))
    assert findings == []


def test_extension_template_matches_the_seed_and_version_file():
    with open(os.path.join(REPO, "VERSION")) as f:
        major_minor = ".".join(f.read().strip().split(".")[:2])
    tpl = load(os.path.join(REPO, "arm-templates", "vm-snapshot-extension", "azuredeploy.json"))
    (res,) = tpl["resources"]
    props = res["properties"]
    assert res["type"] == "Microsoft.Compute/virtualMachines/extensions"
    assert (props["publisher"], props["type"]) == ("Microsoft.RecoveryServices", "VMSnapshotLinux")
    assert props["typeHandlerVersion"] == major_minor == "1.9"
    assert props["autoUpgradeMinorVersion"] is True
    assert props["protectedSettings"] == "[parameters('protectedSettings')]"
    assert tpl["parameters"]["protectedSettings"]["type"] == "secureObject"


def test_enable_backup_uses_literal_discriminator_and_documented_names():
    tpl = load(os.path.join(REPO, "arm-templates", "enable-backup", "azuredeploy.json"))
    inner = tpl["resources"][2]["properties"]["template"]["resources"][0]
    assert inner["properties"]["protectedItemType"] == "Microsoft.Compute/virtualMachines"
    assert "/Azure/iaasvmcontainer;iaasvmcontainerv2;{1};{2}/vm;iaasvmcontainerv2;{1};{2}'" in inner["name"]


# -- schema failures --------------------------------------------------------------------------------------
def test_quickstart_expression_discriminator_fails_with_the_deepest_error(validator):
    findings = validator.check_file(QUICKSTART)
    schema = [f for f in findings if f.rule == "schema"]
    assert len(schema) == 1
    assert schema[0].path == "$.resources[2].properties.protectedItemType"
    assert "Microsoft.Compute/virtualMachines" in schema[0].message  # names the allowed literals


def test_quickstart_passes_with_a_literal_discriminator(validator):
    tpl = load(QUICKSTART)
    tpl["resources"][2]["properties"]["protectedItemType"] = "Microsoft.Compute/virtualMachines"
    assert [f for f in validator.check_template(tpl) if f.rule == "schema"] == []


def test_quickstart_at_its_original_api_version_has_no_schema(validator):
    tpl = load(QUICKSTART)
    for res in tpl["resources"]:
        res["apiVersion"] = "2021-03-01"
    messages = [f.message for f in validator.check_template(tpl) if f.rule == "schema"]
    assert len(messages) == 3 and all("no schema found" in m for m in messages)


def _mutated(mutate):
    tpl = copy.deepcopy(load(QUICKSTART))
    tpl["resources"][2]["properties"]["protectedItemType"] = "Microsoft.Compute/virtualMachines"
    mutate(tpl)
    return tpl


@pytest.mark.parametrize(
    "mutate, path, words",
    [
        (lambda t: t.update(contentVersion=5), "$.contentVersion", "is not of type 'string'"),
        (lambda t: t["resources"][0].update(apiVersion="2099-01-01"), "$.resources[0]", "no schema found"),
        (
            lambda t: t["resources"][1]["properties"]["schedulePolicy"].update(scheduleRunFrequency="Fortnightly"),
            "$.resources[1].properties.schedulePolicy.scheduleRunFrequency",
            "Fortnightly",
        ),
        (
            lambda t: t["resources"][2]["properties"].update(protectedItemType="Microsoft.Compute/virtualMachinez"),
            "$.resources[2].properties.protectedItemType",
            "virtualMachinez",
        ),
    ],
)
def test_schema_errors_name_the_offending_field(validator, mutate, path, words):
    schema = [f for f in validator.check_template(_mutated(mutate)) if f.rule == "schema"]
    assert [f.path for f in schema] == [path]
    assert words in schema[0].message


def test_nested_child_resource_is_validated_with_its_full_type(validator):
    tpl = extension_template()
    ext = tpl["resources"].pop()
    ext = dict(ext, type="extensions", name="VMSnapshotLinux")
    ext.pop("copy")
    ext["properties"] = dict(ext["properties"], publisher=None)  # wrong type, must be caught
    tpl["parameters"]["vmNames"] = {"type": "string"}
    tpl["outputs"] = {}
    tpl["resources"] = [
        {
            "type": "Microsoft.Compute/virtualMachines",
            "apiVersion": "2025-04-01",
            "name": "[parameters('vmNames')]",
            "location": "[parameters('location')]",
            "properties": {},
            "resources": [ext],
        }
    ]
    schema = [f for f in validator.check_template(tpl) if f.rule == "schema"]
    assert any(f.path.startswith("$.resources[0].resources[0].properties") for f in schema), schema


def test_registry_refuses_uris_outside_the_schema_host():
    import referencing.exceptions

    store = SchemaStore()
    with pytest.raises(referencing.exceptions.NoSuchResource):
        store.registry.get_or_retrieve("https://example.com/schemas/evil.json")
    with pytest.raises(referencing.exceptions.NoSuchResource):
        store.registry.get_or_retrieve("https://schema.management.azure.com/schemas/../../etc/passwd")
    assert store.registry.get_or_retrieve(
        "https://schema.management.azure.com/schemas/common/definitions.json"
    ).value.contents


# -- reviewer rules ---------------------------------------------------------------------------------------
def check(validator, tpl):
    return validator.check_template(tpl)


def test_unused_parameter(validator):
    tpl = extension_template()
    tpl["parameters"]["forgotten"] = {"type": "string", "defaultValue": "x"}
    found = [(f.path, f.rule) for f in check(validator, tpl)]
    assert found == [("$.parameters.forgotten", "unused-parameter")]


def test_secret_in_plain_parameter_default_output_and_property(validator):
    tpl = extension_template()
    tpl["parameters"]["adminPassword"] = {"type": "string", "defaultValue": "hunter2"}
    tpl["parameters"]["protectedSettings"]["defaultValue"] = {"storageAccountKey": "k"}
    tpl["outputs"]["leak"] = {"type": "object", "value": "[parameters('protectedSettings')]"}
    tpl["resources"][0]["properties"]["settings"] = "[parameters('adminPassword')]"
    rules = rules_of(check(validator, tpl))
    assert {"secret-parameter", "secret-default", "secret-output"} <= set(rules)
    for f in check(validator, tpl):
        assert "hunter2" not in str(f)


def test_protected_settings_must_come_from_a_secure_parameter(validator):
    tpl = extension_template()
    tpl["resources"][0]["properties"]["protectedSettings"] = "[parameters('settings')]"
    assert "secret-property" in rules_of(check(validator, tpl))
    tpl["resources"][0]["properties"]["protectedSettings"] = {"objectStr": "abc"}
    assert "secret-property" in rules_of(check(validator, tpl))


def test_sas_signature_literal_is_flagged(validator):
    tpl = extension_template()
    tpl["resources"][0]["properties"]["settings"] = {"logsBlobUri": "https://x/y?sv=1&sig=SECRETSIG"}
    findings = check(validator, tpl)
    assert "secret-literal" in rules_of(findings)
    assert all("SECRETSIG" not in str(f) for f in findings)


def test_api_version_older_than_two_years_when_a_newer_exists(validator):
    tpl = extension_template()
    tpl["resources"][0]["apiVersion"] = "2024-11-01"
    findings = check(validator, tpl)
    assert [(f.rule, "2025-04-01" in f.message) for f in findings] == [("api-version", True)]
    assert Validator(today=datetime.date(2026, 6, 1)).check_template(tpl) == []


def test_newest_known_api_version_is_not_flagged_for_age(validator):
    tpl = templates.backup_policy_at_scale()[0]  # roleAssignments@2022-04-01: nothing newer exists
    assert check(validator, tpl) == []


def test_location_must_be_parameterised(validator):
    tpl = extension_template()
    tpl["resources"][0]["location"] = "westeurope"
    assert rules_of(check(validator, tpl)) == ["location", "unused-parameter"]


def test_depends_on_must_resolve(validator):
    tpl = extension_template()
    tpl["resources"][0]["dependsOn"] = ["nothingHere", "[resourceId('Microsoft.Network/networkInterfaces', 'nic')]"]
    assert [f.path for f in check(validator, tpl) if f.rule == "depends-on"] == [
        "$.resources[0].dependsOn[0]",
        "$.resources[0].dependsOn[1]",
    ]


def test_names_well_formed(validator):
    tpl = extension_template()
    tpl["resources"][0]["name"] = "[format('{0}', parameters('vmNames')[copyIndex()])]"  # 1 segment, needs 2
    assert rules_of(check(validator, tpl)) == ["name"]
    tpl = load(QUICKSTART)
    tpl["resources"][2]["properties"]["protectedItemType"] = "Microsoft.Compute/virtualMachines"
    tpl["resources"][2]["name"] = "[format('{0}/Azure/container1/{1}', parameters('vaultName'), 'i')]"
    assert "name" in rules_of(check(validator, tpl))


def test_hard_coded_cloud_host_is_flagged_but_schema_uri_is_not(validator):
    tpl = extension_template()
    tpl["resources"][0]["tags"] = {"endpoint": "https://myacct.blob.core.windows.net/"}
    findings = check(validator, tpl)
    assert rules_of(findings) == ["cloud-host"]
    assert findings[0].path == "$.resources[0].tags.endpoint"


# -- parameters files -----------------------------------------------------------------------------------
def test_parameters_file_rules(validator):
    tpl = extension_template()
    doc = templates.vm_snapshot_extension()[1]
    assert validator.check_parameters(doc, tpl) == []
    doc["parameters"]["vmNames"] = {"value": "vm1"}  # not an array
    doc["parameters"]["nope"] = {"value": 1}
    doc["parameters"]["protectedSettings"] = {"value": {"objectStr": "c2VjcmV0"}}
    rules = [(f.path, f.rule) for f in validator.check_parameters(doc, tpl)]
    assert ("$.parameters.vmNames", "parameter-type") in rules
    assert ("$.parameters.nope", "unknown-parameter") in rules
    assert ("$.parameters.protectedSettings", "secret-value") in rules
    del doc["parameters"]["vmNames"]
    found = [(f.path, f.rule) for f in validator.check_parameters(doc, tpl)]
    assert ("$.parameters", "missing-parameter") in found


# -- command line ------------------------------------------------------------------------------------------
def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "deploy"))
    return subprocess.run(
        [sys.executable, "-m", "vmsnapkit.arm", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=60
    )


def test_cli_validates_the_kit_templates():
    proc = run_cli("validate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 file(s) checked, 0 problem(s)" in proc.stderr


def test_cli_reports_bad_files_without_traceback(tmp_path):
    bad_json = tmp_path / "broken.json"
    bad_json.write_text("{not json")
    proc = run_cli("validate", QUICKSTART, str(bad_json), str(tmp_path / "missing.json"))
    assert proc.returncode == 1
    assert "protectedItemType" in proc.stdout and "not valid JSON" in proc.stdout
    assert "cannot read file" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_cli_json_output_and_missing_schema_folder(tmp_path):
    proc = run_cli("validate", "-o", "json", QUICKSTART)
    assert json.loads(proc.stdout)["findings"][0]["rule"] == "schema"
    proc = run_cli("validate", "--schemas", str(tmp_path), QUICKSTART)
    assert proc.returncode == 2 and "ARM schema folder not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_check_detects_stale_output(tmp_path):
    assert run_cli("check").returncode == 0
    proc = run_cli("check", "--out", str(tmp_path))
    assert proc.returncode == 1 and "stale" in proc.stderr

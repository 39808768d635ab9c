"""`vmsnapkit extensions list` and `verify` as a user runs them: the console command in a child process,
real SDK clients, verified TLS to the emulator, always through --arm-endpoint."""

import csv
import io
import json

import pytest
import yaml
from vmsnapkit import __version__

REPO_VERSION = open(__file__.rsplit("/tests/", 1)[0] + "/VERSION").read().strip()


def failing(emu):
    e = emu.estate.expect
    return set(e["missing_extension"] + e["failed_extension"] + e["unprotected"] + e["failing_backup"])


def test_version_comes_from_the_version_file(emulator, kit_for):
    kit = kit_for(emulator(vms=1))
    proc = kit.run("--version", endpoint=False, check=0)
    assert proc.stdout.strip() == f"vmsnapkit {REPO_VERSION}" and __version__ == REPO_VERSION


def test_extensions_list_every_format_agrees(emulator, kit_for):
    emu = emulator(vms=30, subscriptions=2)
    kit = kit_for(emu)
    _, rows = kit.json("extensions", "list", check=0)
    with_ext = [vm for vm in emu.estate.vms.values() if any(e.type == "VMSnapshotLinux" for e in vm.extensions)]
    assert len(rows) == len(with_ext)
    assert {r["typePropertiesType"] for r in rows} == {"VMSnapshotLinux"}
    names = sorted(r["vm"] for r in rows)
    table = kit.run("extensions", "list", check=0).stdout.splitlines()
    assert table[0].split() == [
        "Name",
        "ProvisioningState",
        "Publisher",
        "Version",
        "AutoUpgradeMinorVersion",
        "VM",
        "ResourceGroup",
    ]
    assert sorted(line.split()[5] for line in table[2:]) == names
    assert sorted(r["vm"] for r in yaml.safe_load(kit.run("extensions", "list", "-o", "yaml", check=0).stdout)) == names
    csv_rows = list(csv.DictReader(io.StringIO(kit.run("extensions", "list", "-o", "csv", check=0).stdout)))
    assert sorted(r["vm"] for r in csv_rows) == names
    tsv = kit.run("extensions", "list", "-o", "tsv", "--query", "[].[vm, provisioningState]", check=0).stdout
    assert sorted(line.split("\t")[0] for line in tsv.splitlines()) == names
    jsonc = kit.run("extensions", "list", "-o", "jsonc", check=0).stdout
    assert "\x1b[94m" in jsonc
    failed = json.loads(
        kit.run("extensions", "list", "-o", "json", "--query", "[?provisioningState=='Failed'].vm", check=0).stdout
    )
    assert sorted(failed) == sorted(emu.estate.vms[k].name for k in emu.estate.expect["failed_extension"])
    _, every = kit.json("extensions", "list", "--all", check=0)
    assert {r["typePropertiesType"] for r in every} == {"VMSnapshotLinux", "AzureMonitorLinuxAgent"}


def test_selection_by_resource_group_tag_ids_and_file(emulator, kit_for, tmp_path):
    emu = emulator(vms=40, subscriptions=2, missing_extension=0)
    kit = kit_for(emu)
    vms = sorted(emu.estate.vms.values(), key=lambda v: v.id)
    _, rows = kit.json("extensions", "list", "-g", "rg-app-2", "--tag", "env=prod", check=0)
    expect = {v.name for v in vms if v.resource_group == "rg-app-2" and v.tags["env"] == "prod"}
    assert {r["vm"] for r in rows} == expect and expect
    picked = vms[:3]
    _, rows = kit.json("extensions", "list", "--vm-ids", ",".join(v.id for v in picked), check=0)
    assert {r["vm"] for r in rows} == {v.name for v in picked}
    f = tmp_path / "vms.txt"
    f.write_text("# fleet\n" + "\n".join(v.id.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/") for v in picked))
    _, rows = kit.json("extensions", "list", "--vms-file", str(f), check=0)
    assert {r["vm"] for r in rows} == {v.name for v in picked}
    f.write_text(picked[0].id + "\nnot-a-vm-id\n")
    proc = kit.run("extensions", "list", "--vms-file", str(f), check=2)
    assert "--vms-file line 2" in proc.stderr and "Traceback" not in proc.stderr
    assert "expected KEY=VALUE" in kit.run("verify", "--tag", "env", check=2).stderr


def test_verify_fails_exactly_the_planted_vms(emulator, kit_for, tmp_path):
    emu = emulator(vms=60, subscriptions=2, stale_backup=2, old_version=2)
    kit = kit_for(emu)
    proc, rows = kit.json(
        "verify",
        "--max-backup-age",
        "26h",
        "--min-version",
        "1.9",
        "--report",
        str(tmp_path / "r.html"),
        check=1,
    )
    e = emu.estate.expect
    bad = {r["vmId"].lower() for r in rows if not r["passed"]}
    assert bad == failing(emu) | set(e["stale_backup"]) | set(e["old_version"])
    assert len(rows) == 60 and "60 VM(s) checked" in proc.stderr
    by_id = {r["vmId"].lower(): r for r in rows}
    assert "not installed" in by_id[e["missing_extension"][0]]["reasonsText"]
    assert "older than 26h" in by_id[e["stale_backup"][0]]["reasonsText"]
    assert "older than 1.9" in by_id[e["old_version"][0]]["reasonsText"]
    assert "ProvisioningState/failed/11" in by_id[e["failed_extension"][0]]["reasonsText"]
    assert "last backup Failed" in by_id[e["failing_backup"][0]]["reasonsText"]
    # the instance view was read for the suspect subset only (failed extension, failing backup)
    ext_gets = emu.requests(method="GET", path="/extensions/")
    assert {r["path"].split("/virtualMachines/")[1].split("/")[0] for r in ext_gets} == {
        emu.estate.vms[k].name for k in e["failed_extension"] + e["failing_backup"]
    }
    assert not emu.requests(path="/virtualMachines/[^/]+$")  # Resource Graph path: no per-VM GET
    page = (tmp_path / "r.html").read_text()
    first_pass = page.index("<tr class=p>")  # one table, failing rows first
    for key in bad:
        assert page.index(emu.estate.vms[key].name) < first_pass
    assert "<style>" in page and "http" not in page.split("<body>")[1].replace("https://", "")
    healthy = [emu.estate.vms[k].id for k in e["healthy"][:5]]
    kit.run(
        "verify",
        "--vm-ids",
        ",".join(healthy),
        "--max-backup-age",
        "26h",
        "--report",
        str(tmp_path / "ok.md"),
        check=0,
    )
    md = (tmp_path / "ok.md").read_text()
    assert "| 5 | 5 | 0 |" in md and "Failing VMs" not in md


def test_verify_csv_and_table(emulator, kit_for):
    emu = emulator(vms=20, subscriptions=1)
    kit = kit_for(emu)
    rows = list(csv.DictReader(io.StringIO(kit.run("verify", "-o", "csv", check=1).stdout)))
    assert len(rows) == 20 and {r["result"] for r in rows} == {"PASS", "FAIL"}
    table = kit.run("verify", check=1).stdout.splitlines()
    assert table[0].split()[:2] == ["VM", "ResourceGroup"] and table[2].split()[-1] != "PASS"


def test_resource_graph_and_direct_arm_agree_and_page(emulator, kit_for):
    emu = emulator(vms=120, subscriptions=3, graph_max_top=25, page_size=20, stale_backup=1)
    kit = kit_for(emu)
    args = ("verify", "--max-backup-age", "26h", "--query", "[].[vmId, passed, reasonsText]")
    _, graph = kit.json(*args, check=1)
    graph_posts = len(emu.requests(method="POST", path="ResourceGraph"))
    emu.clear_log()
    _, direct = kit.json(*args, "--source", "arm", check=1)
    assert sorted([r[0].lower()] + r[1:] for r in graph) == sorted([r[0].lower()] + r[1:] for r in direct)
    assert graph_posts == -(-120 // 25)  # one query, a row per VM (only the snapshot extension joins)
    lists = emu.requests(method="GET", path="/providers/Microsoft.Compute/virtualMachines$")
    assert len(lists) == 3 * 2 and sum(1 for r in lists if "$skiptoken" in r["query"]) == 3
    assert len(emu.requests(method="GET", path="/virtualMachines/[^/]+$")) == 120


def test_throttling_429_is_retried_transparently(emulator, kit_for):
    emu = emulator(vms=40, subscriptions=1, throttle_every=7, retry_after=1)
    kit = kit_for(emu)
    _, direct = kit.json("verify", "--source", "arm", "--query", "[].[vmId, passed]", check=1)
    throttled = [r for r in emu.requests() if r["status"] == 429]
    assert throttled and len(direct) == 40
    for r in throttled:  # every throttled request was sent again and then succeeded
        assert any(o["seq"] > r["seq"] and o["path"] == r["path"] and o["status"] == 200 for o in emu.requests())


def test_partial_failure_vm_get_fails_only_that_vm(emulator, kit_for):
    emu = emulator(vms=12, subscriptions=1)
    victim = sorted(emu.estate.expect["healthy"])[0]
    emu.set_knob("fail_vm_get", [victim])
    kit = kit_for(emu)
    _, rows = kit.json("verify", "--source", "arm", check=1)
    r = {x["vmId"].lower(): x for x in rows}
    assert "VM could not be read" in r[victim]["reasonsText"] and "500" in r[victim]["reasonsText"]
    assert sum(1 for x in rows if not x["passed"]) == len(failing(emu)) + 1


def test_error_paths_never_print_a_traceback(emulator, kit_for, tmp_path):
    emu = emulator(vms=10, subscriptions=2, forbidden_vaults=["vault-2"])
    kit = kit_for(emu)
    report = tmp_path / "never.html"
    proc = kit.run("verify", "--source", "arm", "--report", str(report), check=4)
    assert "permission denied on vault vault-2" in proc.stderr and not report.exists() and not proc.stdout
    proc = kit.run("verify", "--subscription", "deadbeef-0000-4000-8000-000000000000", check=5)
    assert "unknown subscription 'deadbeef-0000-4000-8000-000000000000'" in proc.stderr
    # a workstation with no az login: only developer credentials are tried, none is available
    no_identity = {
        "IDENTITY_ENDPOINT": "",
        "IDENTITY_HEADER": "",
        "AZURE_TOKEN_CREDENTIALS": "dev",
        "AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:9",
        "PATH": "/usr/bin:/bin",
    }
    proc = kit.run("verify", env=no_identity, check=3)
    assert proc.stderr.startswith("ERROR: no usable Azure credentials") and not proc.stdout
    proc = kit.run("verify", endpoint=False, env={"VMSNAPKIT_ARM_ENDPOINT": "http://127.0.0.1:9"}, check=2)
    assert "https://" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_custom_cloud_from_env_and_from_the_active_az_cloud(emulator, kit_for, tmp_path):
    emu = emulator(vms=6, subscriptions=1)
    kit = kit_for(emu)
    _, rows = kit.json("extensions", "list", endpoint=False, env={"VMSNAPKIT_ARM_ENDPOINT": emu.url}, check=0)
    assert rows
    azdir = tmp_path / "azconfig"
    azdir.mkdir(exist_ok=True)
    (azdir / "config").write_text("[cloud]\nname = LoopCloud\n")
    (azdir / "clouds.config").write_text(f"[LoopCloud]\nendpoint_resource_manager = {emu.url}/\n")
    _, rows2 = kit.json("extensions", "list", endpoint=False, check=0)
    assert rows2 == rows
    metadata = emu.requests(path="/metadata/endpoints")
    assert metadata and metadata[-1]["query"]["api-version"] == "2022-09-01"


def test_direct_path_slows_down_as_the_read_budget_runs_low(emulator, kit_for):
    """ARM's real read bucket (small here): the kit reads x-ms-ratelimit-remaining-subscription-reads and
    throttles itself, so it finishes with few or no 429s and a complete, correct answer."""
    emu = emulator(vms=50, subscriptions=1, read_budget=[20, 10])  # without the limiter: ~100 429s
    kit = kit_for(emu)
    _, rows = kit.json("verify", "--source", "arm", "--query", "[].[vmId, passed]", check=1)
    assert len(rows) == 50
    assert sum(1 for _, passed in rows if not passed) == len(failing(emu))
    throttled = [r for r in emu.requests() if r["status"] == 429]
    gets = emu.requests(method="GET", path="/virtualMachines/[^/]+$")
    assert len(throttled) <= 3, f"{len(throttled)} requests throttled: the limiter did not adapt"
    assert len({r["path"] for r in gets if r["status"] == 200}) == 50


def test_kit_follows_a_cloud_registered_with_the_real_az_cli(emulator, kit_for, tmp_path):
    """Issue 9: `az cloud register` + `az cloud set` (real az, its own venv) and nothing else: the kit finds
    the active cloud in the az profile and discovers its endpoints from the metadata URL."""
    from harness.azcli import AzCli

    az = AzCli.find()
    if az is None:
        pytest.skip("az CLI venv missing (make setup-azcli, mk/azcli.mk)")
    emu = emulator(vms=8, subscriptions=1)
    kit = kit_for(emu)
    session = az.session(emu, str(tmp_path / "az"))
    _, rows = kit.json("extensions", "list", endpoint=False, env={"AZURE_CONFIG_DIR": session.config_dir}, check=0)
    with_ext = [v for v in emu.estate.vms.values() if any(e.type == "VMSnapshotLinux" for e in v.extensions)]
    assert len(rows) == len(with_ext) > 0

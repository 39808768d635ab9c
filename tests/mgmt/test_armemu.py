"""The loopback ARM emulator itself: TLS, routing, knobs, the request log and the fleet generator."""

import base64
import json
import ssl
import urllib.error

import pytest

from harness.armemu import generate_fleet, json_response

from .conftest import http

API = "?api-version=2025-02-01"


def vault_path(emu, n=1):
    sub = sorted(emu.estate.subscriptions)[n - 1]
    return f"/subscriptions/{sub}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/vault-{n}"


def test_tls_is_verified_against_the_test_ca_only(emulator):
    emu = emulator(vms=4)
    status, _, body = http(emu, "/metadata/endpoints")
    assert status == 200 and body["resourceManager"] == emu.url + "/"
    with pytest.raises(urllib.error.URLError) as err:
        http(emu, "/metadata/endpoints", verify=False)  # the system trust store does not know it
    assert isinstance(err.value.reason, ssl.SSLCertVerificationError)


def test_metadata_has_suffixes_and_token_has_tenant(emulator):
    emu = emulator(vms=2)
    _, _, meta = http(emu, "/metadata/endpoints?api-version=2022-09-01")
    assert {"storage", "keyVaultDns"} <= set(meta["suffixes"]) and meta["authentication"]["audiences"]
    _, _, tok = http(
        emu,
        "/msi/token?resource=https://management.core.windows.net/&api-version=2019-08-01",
        headers={"X-IDENTITY-HEADER": "h"},
    )
    claims = tok["access_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert claims["tid"] == emu.estate.tenant_id and int(tok["expires_on"]) > claims["iat"]
    assert http(emu, "/msi/token?resource=x", headers={})[0] == 400


def test_routes_are_case_insensitive_and_auth_is_required(emulator):
    emu = emulator(vms=6)
    p = vault_path(emu).upper().replace("SUBSCRIPTIONS", "subscriptions")
    status, headers, body = http(emu, p + API)
    assert status == 200 and body["name"] == "vault-1"
    assert int(headers["x-ms-ratelimit-remaining-subscription-reads"]) > 0
    assert http(emu, vault_path(emu) + API, headers={})[0] == 401


def test_error_paths_unknown_subscription_forbidden_vault_failing_vm(emulator):
    emu = emulator(vms=6, forbidden_vaults=["vault-2"])
    status, _, body = http(
        emu,
        "/subscriptions/deadbeef-0000-0000-0000-000000000000/providers/Microsoft.Compute/virtualMachines" + API,
    )
    assert status == 404 and body["error"]["code"] == "SubscriptionNotFound"
    status, _, body = http(emu, vault_path(emu, 2) + "/backupProtectedItems" + API)
    assert status == 403 and body["error"]["code"] == "AuthorizationFailed"
    vm = sorted(emu.estate.vms.values(), key=lambda v: v.id)[0]
    emu.set_knob("fail_vm_get", [vm.name])
    assert http(emu, vm.id + API)[0] == 500
    assert http(emu, vm.id + "/instanceView" + API)[0] == 500


def test_throttling_every_n_requests_with_retry_after(emulator):
    emu = emulator(vms=4, throttle_every=3, retry_after=2)
    statuses = [http(emu, vault_path(emu) + API) for _ in range(6)]
    codes = [s for s, _, _ in statuses]
    assert codes == [200, 200, 429, 200, 200, 429]
    assert statuses[2][1]["retry-after"] == "2" and statuses[2][2]["error"]["code"] == "TooManyRequests"


def test_read_token_bucket_counts_down_then_throttles(emulator):
    emu = emulator(vms=2, read_budget=[3, 0.5])
    remaining = [
        http(emu, vault_path(emu) + API)[1].get("x-ms-ratelimit-remaining-subscription-reads") for _ in range(4)
    ]
    assert remaining[:3] == ["2", "1", "0"] and remaining[3] == "0"
    assert http(emu, vault_path(emu) + API)[0] == 429


def test_vm_list_pages_with_nextlink(emulator):
    emu = emulator(vms=25, subscriptions=1, page_size=10)
    sub = sorted(emu.estate.subscriptions)[0]
    path, names, pages = f"/subscriptions/{sub}/providers/Microsoft.Compute/virtualMachines{API}", [], 0
    while path:
        _, _, body = http(emu, path)
        names += [v["name"] for v in body["value"]]
        pages += 1
        path = body.get("nextLink", "").replace(emu.url, "") or None
    assert pages == 3 and len(names) == len(set(names)) == 25


def test_refresh_then_lro_put_sequence(emulator):
    emu = emulator(vms=20, subscriptions=1, unprotected=4, undiscovered=2, lro_polls=2, refresh_polls=1)
    v = vault_path(emu)
    _, _, before = http(emu, v + "/backupProtectableItems" + API)
    status, headers, _ = http(emu, v + "/backupFabrics/Azure/refreshContainers" + API, method="POST")
    assert status == 202
    loc = headers["location"].replace(emu.url, "")
    assert [http(emu, loc)[0] for _ in range(2)] == [202, 204]
    _, _, after = http(emu, v + "/backupProtectableItems" + API)
    assert len(before["value"]) == 2 and len(after["value"]) == 4
    item = after["value"][0]
    cont = item["id"].split("/protectionContainers/")[1].split("/")[0]
    body = {
        "properties": {
            "protectedItemType": "Microsoft.Compute/virtualMachines",
            "policyId": emu.estate.vaults[v.lower()].policy_id("DefaultPolicy"),
            "sourceResourceId": item["properties"]["virtualMachineId"],
        }
    }
    ipath = f"{v}/backupFabrics/Azure/protectionContainers/{cont}/protectedItems/{item['name']}"
    status, headers, _ = http(emu, ipath + API, method="PUT", body=body)
    assert status == 202 and {"location", "azure-asyncoperation", "retry-after"} <= set(headers)
    assert {
        "x-ms-ratelimit-remaining-subscription-reads",
        "x-ms-ratelimit-remaining-subscription-writes",
    } <= set(headers)
    op = headers["azure-asyncoperation"].replace(emu.url, "")
    states = [http(emu, op)[2]["status"] for _ in range(3)]
    assert states == ["InProgress", "InProgress", "Succeeded"]
    job_id = http(emu, op)[2]["properties"]["jobId"]
    _, _, job = http(emu, f"{v}/backupJobs/{job_id}{API}")
    assert job["properties"]["operation"] == "ConfigureBackup" and job["properties"]["status"] == "Completed"
    puts = emu.requests(method="PUT", path="protectedItems")
    assert len(puts) == 1 and puts[0]["body"] == body and puts[0]["auth"] == "Bearer"


def test_policy_limit_of_1000(emulator):
    emu = emulator(vms=6, subscriptions=1, unprotected=2)
    vault = next(iter(emu.estate.vaults.values()))
    vault.policies["defaultpolicy"].extra_count = 1000 - vault.policy_count("DefaultPolicy")
    vm = emu.estate.vms[emu.estate.expect["unprotected"][0]]
    body = {
        "properties": {
            "protectedItemType": "Microsoft.Compute/virtualMachines",
            "policyId": vault.policy_id("DefaultPolicy"),
            "sourceResourceId": vm.id,
        }
    }
    p = f"{vault.id}/backupFabrics/Azure/protectionContainers/{vm.container_name}"
    p += f"/protectedItems/{vm.item_name}"
    status, _, err = http(emu, p + API, method="PUT", body=body)
    assert status == 400 and "1000" in err["error"]["message"]


def test_resource_graph_paging_and_quota_headers(emulator):
    emu = emulator(vms=30, subscriptions=2, graph_max_top=7)
    q = (
        "Resources | where type =~ 'microsoft.compute/virtualmachines' | join kind=leftouter (Resources "
        "| where type =~ 'microsoft.compute/virtualmachines/extensions' "
        "| where tostring(properties.type) in~ ('VMSnapshotLinux')) on vmId | order by vmId asc"
    )
    body = {"subscriptions": sorted(emu.estate.subscriptions), "query": q, "options": {"$top": 1000}}
    rows, tok, pages = [], None, 0
    while True:
        if tok:
            body["options"]["$skipToken"] = tok
        status, headers, res = http(
            emu,
            "/providers/Microsoft.ResourceGraph/resources?api-version=2021-03-01",
            method="POST",
            body=body,
        )
        assert status == 200 and "x-ms-user-quota-remaining" in headers
        rows += res["data"]
        pages += 1
        tok = res.get("$skipToken")
        if not tok:
            break
    assert len(rows) == 30 and pages == 5 and [r["vmId"] for r in rows] == sorted(r["vmId"] for r in rows)
    assert sum(1 for r in rows if not r["extName"]) == len(emu.estate.expect["missing_extension"])
    bad = http(
        emu,
        "/providers/Microsoft.ResourceGraph/resources",
        method="POST",
        body={"subscriptions": [], "query": "Resources | take 5"},
    )
    assert bad[0] == 400


def test_route_plugin_hook_and_log_endpoint(emulator):
    emu = emulator(vms=2)
    emu.router.add(
        "PUT",
        "/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Example/widgets/{name}",
        lambda req: json_response({"name": req.params["name"], "echo": req.body}, status=201),
    )
    status, _, body = http(
        emu,
        "/subscriptions/s/resourceGroups/rg/providers/microsoft.example/WIDGETS/d1?api-version=2024-03-01",
        method="PUT",
        body={"x": 1},
    )
    assert status == 201 and body == {"name": "d1", "echo": {"x": 1}}
    _, _, log = http(emu, "/__log?method=PUT")
    assert [e["path"].rsplit("/", 1)[-1] for e in log["value"]] == ["d1"]
    _, _, knobs = http(emu, "/__knobs", method="POST", body={"latency_ms": 5})
    assert knobs["latency_ms"] == 5 and emu.knobs.latency_ms == 5


def test_fleet_generator_plants_disjoint_problems():
    est = generate_fleet(1000, subscriptions=4, resource_groups=5, stale_backup=3, old_version=2)
    e = est.expect
    assert len(est.vms) == 1000 and len(est.subscriptions) == 4
    planted = [
        vm
        for k in (
            "missing_extension",
            "failed_extension",
            "old_version",
            "unprotected",
            "failing_backup",
            "stale_backup",
        )
        for vm in e[k]
    ]
    assert len(planted) == len(set(planted)) and len(e["failing_backup"]) == 1
    assert len(e["healthy"]) == 1000 - len(planted)
    assert len({vm.resource_group for vm in est.vms.values()}) == 5
    protected = sum(len(v.items) for v in est.vaults.values())
    assert protected == 1000 - len(e["unprotected"])
    again = generate_fleet(1000, subscriptions=4, resource_groups=5, stale_backup=3, old_version=2)
    assert again.expect == e

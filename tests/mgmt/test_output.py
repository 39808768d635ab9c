"""az-style output formatting and --query."""

import json

import pytest
import yaml
from vmsnapkit.errors import KitError
from vmsnapkit.fleet import EXTENSION_COLUMNS
from vmsnapkit.output import render
from vmsnapkit.throttle import RateMonitor

ROW = {
    "name": "VMSnapshotLinux",
    "provisioningState": "Failed",
    "publisher": "Microsoft.Azure.RecoveryServices",
    "typeHandlerVersion": "1.0",
    "autoUpgradeMinorVersion": True,
    "vm": "vm1",
    "resourceGroup": "rg-app",
    "typePropertiesType": "VMSnapshotLinux",
}


def test_table_matches_az_vm_extension_list_layout():
    out = render([ROW], "table", columns=EXTENSION_COLUMNS[:5])
    assert out == (
        "Name             ProvisioningState    Publisher                         Version    AutoUpgradeMinorVersion\n"  # noqa: E501 (the az layout itself)
        "---------------  -------------------  --------------------------------  ---------  -------------------------\n"  # noqa: E501
        "VMSnapshotLinux  Failed               Microsoft.Azure.RecoveryServices  1.0        True\n"
    )


def test_formats_and_query():
    rows = [ROW, dict(ROW, vm="vm2", provisioningState="Succeeded", autoUpgradeMinorVersion=None)]
    assert json.loads(render(rows, "json")) == rows
    assert yaml.safe_load(render(rows, "yaml")) == rows
    colored = render(rows, "jsonc", color=True)
    assert (
        "\x1b[" in colored
        and json.loads(
            colored.replace("\x1b[94m", "")
            .replace("\x1b[32m", "")
            .replace("\x1b[96m", "")
            .replace("\x1b[33m", "")
            .replace("\x1b[0m", "")
        )
        == rows
    )
    tsv = render(rows, "tsv").splitlines()
    assert tsv[1].split("\t")[:5] == [
        "VMSnapshotLinux",
        "Succeeded",
        "Microsoft.Azure.RecoveryServices",
        "1.0",
        "",
    ]
    csv_lines = render(rows, "csv").splitlines()
    assert csv_lines[0].split(",")[:2] == ["name", "provisioningState"] and len(csv_lines) == 3
    assert json.loads(render(rows, "json", query="[?provisioningState=='Failed'].vm")) == ["vm1"]
    table = render(rows, "table", query="[].{VM:vm, State:provisioningState}", columns=EXTENSION_COLUMNS)
    assert table.splitlines()[0].split() == ["VM", "State"]
    assert render(rows, "tsv", query="length(@)") == "2\n"
    with pytest.raises(KitError, match="not valid JMESPath"):
        render(rows, "json", query="[?")


class _Resp:
    def __init__(self, status, headers):
        self.http_response = type("R", (), {"status_code": status, "headers": headers})()


def test_rate_monitor_lowers_concurrency_as_budget_falls():
    mon = RateMonitor()
    assert mon.allowed("reads", 32) == 32
    for left, expect in ((150, 32), (60, 16), (30, 8), (5, 1)):
        mon.observe(_Resp(200, {"x-ms-ratelimit-remaining-subscription-reads": str(left)}))
        assert mon.allowed("reads", 32) == expect
    assert mon.pause("reads") > 0
    mon.observe(_Resp(429, {"Retry-After": "1"}))
    mon.observe(_Resp(200, {"x-ms-user-quota-remaining": "0", "x-ms-user-quota-resets-after": "00:00:03"}))
    assert mon.throttled == 1 and mon.graph_wait() == 3.0

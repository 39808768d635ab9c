"""Issue 9: templates and az scripts must work in every cloud, so no public-cloud host name is hard-coded."""

import os

import pytest
from vmsnapkit.arm.rules import PUBLIC_CLOUD_HOSTS, hard_coded_hosts

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCANNED = ("arm-templates", os.path.join("deploy", "scripts"))


def scanned_files():
    for top in SCANNED:
        for root, _dirs, files in os.walk(os.path.join(REPO, top)):
            for name in files:
                yield os.path.join(root, name)


def test_something_is_scanned():
    files = list(scanned_files())
    assert any(f.endswith("azuredeploy.json") for f in files)
    assert any(f.endswith("enable-backup.sh") for f in files)


@pytest.mark.parametrize("path", sorted(scanned_files()), ids=lambda p: os.path.relpath(p, REPO))
def test_no_hard_coded_cloud_host(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    hits = [(n, msg) for n, line in enumerate(text.splitlines(), 1) for msg in hard_coded_hosts(line)]
    assert hits == []


@pytest.mark.parametrize(
    "text",
    [
        "https://management.azure.com/subscriptions",
        "https://management.chinacloudapi.cn/",
        "acct.blob.core.chinacloudapi.cn",
        "https://login.microsoftonline.com/tenant",
        "x.blob.core.usgovcloudapi.net",
        "https://login.chinacloudapi.cn",
        "kv.vault.azure.net",
    ],
)
def test_scanner_catches_each_cloud(text):
    assert hard_coded_hosts(text)


def test_scanner_ignores_schema_uris():
    uri = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
    assert hard_coded_hosts(uri) == []
    assert "chinacloudapi.cn" in PUBLIC_CLOUD_HOSTS and "usgovcloudapi.net" in PUBLIC_CLOUD_HOSTS

"""The public cloud table and how the kit chooses a cloud."""

import pytest
from vmsnapkit import cloud
from vmsnapkit.errors import KitError


@pytest.mark.parametrize(
    "name,arm,login,audience,storage",
    [
        (
            "AzureCloud",
            "https://management.azure.com/",
            "https://login.microsoftonline.com",
            "https://management.core.windows.net/",
            "core.windows.net",
        ),
        (
            "AzureChinaCloud",
            "https://management.chinacloudapi.cn/",
            "https://login.chinacloudapi.cn",
            "https://management.core.chinacloudapi.cn/",
            "core.chinacloudapi.cn",
        ),
        (
            "AzureUSGovernment",
            "https://management.usgovcloudapi.net/",
            "https://login.microsoftonline.us",
            "https://management.core.usgovcloudapi.net/",
            "core.usgovcloudapi.net",
        ),
    ],
)
def test_public_cloud_endpoints(name, arm, login, audience, storage):
    c = cloud.public_cloud(name.lower())
    assert (c.name, c.resource_manager, c.authority_host, c.audience, c.storage_suffix) == (
        name,
        arm,
        login,
        audience,
        storage,
    )
    assert c.resource_graph == arm
    assert c.scope == audience.rstrip("/") + "/.default"


def test_unknown_cloud_and_http_endpoint_are_refused():
    with pytest.raises(KitError, match="unknown cloud 'AzureGermanCloud'"):
        cloud.public_cloud("AzureGermanCloud")
    with pytest.raises(KitError, match="https://"):
        cloud.discover("http://127.0.0.1:1")
    with pytest.raises(KitError, match="not both"):
        cloud.resolve("https://x", "AzureCloud", env={})


def test_precedence_env_then_az_config(tmp_path):
    empty = tmp_path / "none"
    assert cloud.resolve(env={}, az_config_dir=str(empty)).name == "AzureCloud"
    assert cloud.resolve(env={"VMSNAPKIT_CLOUD": "AzureChinaCloud"}, az_config_dir=str(empty)).name == "AzureChinaCloud"
    assert (
        cloud.resolve(cloud_name="AzureUSGovernment", env={"VMSNAPKIT_CLOUD": "AzureChinaCloud"}).name
        == "AzureUSGovernment"
    )
    (tmp_path / "config").write_text("[cloud]\nname = AzureChinaCloud\n")
    assert cloud.resolve(env={}, az_config_dir=str(tmp_path)).resource_manager == "https://management.chinacloudapi.cn/"
    (tmp_path / "config").write_text("[cloud]\nname = StackHub\n")
    (tmp_path / "clouds.config").write_text(
        "[StackHub]\nendpoint_resource_manager = https://management.local.azurestack.external\n"
        "endpoint_active_directory = https://login.example.test/\n"
        "endpoint_active_directory_resource_id = https://management.adfs.example.test/abc\n"
    )
    hub = cloud.resolve(env={}, az_config_dir=str(tmp_path))
    assert hub.resource_manager == "https://management.local.azurestack.external/"
    assert (
        hub.authority_host == "https://login.example.test"
        and hub.scope == "https://management.adfs.example.test/abc/.default"
    )


def test_metadata_document_forms():
    doc = {
        "name": "Hub",
        "resourceManager": "https://arm.example.test/",
        "authentication": {
            "loginEndpoint": "https://login.example.test/",
            "audiences": ["https://aud.test/"],
        },
        "suffixes": {"storage": "blob.example.test"},
    }
    c = cloud.from_metadata(doc, "https://arm.example.test")
    assert (c.resource_manager, c.authority_host, c.scope, c.storage_suffix) == (
        "https://arm.example.test/",
        "https://login.example.test",
        "https://aud.test/.default",
        "blob.example.test",
    )
    assert (
        cloud.from_metadata([dict(doc, resourceManager="https://other/"), doc], "https://arm.example.test/").name
        == "Hub"
    )
    with pytest.raises(KitError, match="lacks"):
        cloud.from_metadata({"resourceManager": "https://x/"}, "https://x/")


def test_discovery_against_the_emulator(emulator):
    emu = emulator(vms=2)
    c = cloud.discover(emu.url, verify=emu.ca_file)
    assert c.resource_manager == emu.url + "/" and c.scope == "https://management.core.windows.net/.default"
    with pytest.raises(KitError, match="TLS verification failed"):
        cloud.discover(emu.url, verify=True)

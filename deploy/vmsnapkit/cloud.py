"""Which Azure cloud to talk to: the three public clouds, or any ARM endpoint described by its metadata.

Precedence: --arm-endpoint, --cloud, VMSNAPKIT_ARM_ENDPOINT, VMSNAPKIT_CLOUD, the active az CLI cloud
(AZURE_CONFIG_DIR or ~/.azure), then AzureCloud. Every SDK client, the credential's authority and the
token scope come from the chosen Cloud; nothing else in the kit names a host.
"""

import configparser
import os
from dataclasses import dataclass

from .errors import EXIT_SERVICE, EXIT_USAGE, KitError

METADATA_API_VERSION = "2022-09-01"


@dataclass(frozen=True)
class Cloud:
    name: str
    resource_manager: str  # ARM base URL, with a trailing slash
    authority_host: str  # Entra ID authority for azure-identity
    audience: str  # token audience of ARM; the scope is "<audience>/.default"
    resource_graph: str  # Resource Graph is served by ARM itself in every public cloud
    storage_suffix: str

    @property
    def scope(self):
        return self.audience.rstrip("/") + "/.default"


def _cloud(name, arm, login, audience, storage):
    return Cloud(name, arm, login, audience, arm, storage)


PUBLIC_CLOUDS = {
    "AzureCloud": _cloud(
        "AzureCloud",
        "https://management.azure.com/",
        "https://login.microsoftonline.com",
        "https://management.core.windows.net/",
        "core.windows.net",
    ),
    "AzureChinaCloud": _cloud(
        "AzureChinaCloud",
        "https://management.chinacloudapi.cn/",
        "https://login.chinacloudapi.cn",
        "https://management.core.chinacloudapi.cn/",
        "core.chinacloudapi.cn",
    ),
    "AzureUSGovernment": _cloud(
        "AzureUSGovernment",
        "https://management.usgovcloudapi.net/",
        "https://login.microsoftonline.us",
        "https://management.core.usgovcloudapi.net/",
        "core.usgovcloudapi.net",
    ),
}


def public_cloud(name):
    for key, cloud in PUBLIC_CLOUDS.items():
        if key.lower() == name.lower():
            return cloud
    raise KitError(
        f"unknown cloud {name!r}: choose one of {', '.join(PUBLIC_CLOUDS)} or pass --arm-endpoint URL",
        EXIT_USAGE,
    )


def _with_slash(url):
    return url if url.endswith("/") else url + "/"


def from_metadata(doc, endpoint):
    """Build a Cloud from an ARM metadata document (a dict, or the list form holding several clouds)."""
    if isinstance(doc, list):
        match = [
            d for d in doc if _with_slash(str(d.get("resourceManager", ""))).lower() == _with_slash(endpoint).lower()
        ]
        if not match:
            raise KitError(f"the metadata at {endpoint} does not describe that endpoint", EXIT_SERVICE)
        doc = match[0]
    try:
        auth = doc["authentication"]
        audiences = auth.get("audiences") or []
        return Cloud(
            name=str(doc.get("name") or "Custom"),
            resource_manager=_with_slash(doc["resourceManager"]),
            authority_host=str(auth["loginEndpoint"]).rstrip("/"),
            audience=str(audiences[0]) if audiences else _with_slash(doc["resourceManager"]),
            resource_graph=_with_slash(doc.get("resourceGraph") or doc["resourceManager"]),
            storage_suffix=str((doc.get("suffixes") or {}).get("storage", "")),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise KitError(f"the cloud metadata at {endpoint} lacks {exc}", EXIT_SERVICE) from None


def discover(endpoint, verify=True):
    """GET <endpoint>/metadata/endpoints?api-version=2022-09-01, as az does for a registered cloud."""
    import requests

    if not endpoint.lower().startswith("https://"):
        raise KitError(
            f"--arm-endpoint must be an https:// URL (got {endpoint!r}): bearer tokens never travel over plain HTTP",
            EXIT_USAGE,
        )
    url = _with_slash(endpoint) + f"metadata/endpoints?api-version={METADATA_API_VERSION}"
    try:
        resp = requests.get(url, timeout=30, verify=verify)
    except requests.exceptions.SSLError as exc:
        raise KitError(
            f"TLS verification failed for {endpoint}: set REQUESTS_CA_BUNDLE to the CA that signed it ({_short(exc)})",
            EXIT_SERVICE,
        ) from None
    except requests.RequestException as exc:
        raise KitError(f"cannot read cloud metadata from {url}: {_short(exc)}", EXIT_SERVICE) from None
    if resp.status_code != 200:
        raise KitError(f"cloud metadata {url} answered HTTP {resp.status_code}", EXIT_SERVICE)
    try:
        doc = resp.json()
    except ValueError:
        raise KitError(f"cloud metadata {url} is not JSON", EXIT_SERVICE) from None
    return from_metadata(doc, endpoint)


def _short(exc):
    return str(exc).splitlines()[0][:200]


def az_active_cloud(config_dir=None):
    """(name, clouds.config section or None) of the az CLI's active cloud, or None without an az config."""
    config_dir = config_dir or os.environ.get("AZURE_CONFIG_DIR") or os.path.expanduser("~/.azure")
    cfg = configparser.ConfigParser()
    try:
        cfg.read([os.path.join(config_dir, "config")])
    except configparser.Error:
        return None
    name = cfg.get("cloud", "name", fallback=None)
    if not name:
        return None
    clouds = configparser.ConfigParser()
    try:
        clouds.read([os.path.join(config_dir, "clouds.config")])
    except configparser.Error:
        return name, None
    return name, dict(clouds[name]) if clouds.has_section(name) else None


def resolve(arm_endpoint=None, cloud_name=None, env=None, verify=True, az_config_dir=None):
    env = os.environ if env is None else env
    if arm_endpoint and cloud_name:
        raise KitError("give either --cloud or --arm-endpoint, not both", EXIT_USAGE)
    if arm_endpoint:
        return discover(arm_endpoint, verify)
    if cloud_name:
        return public_cloud(cloud_name)
    if env.get("VMSNAPKIT_ARM_ENDPOINT"):
        return discover(env["VMSNAPKIT_ARM_ENDPOINT"], verify)
    if env.get("VMSNAPKIT_CLOUD"):
        return public_cloud(env["VMSNAPKIT_CLOUD"])
    active = az_active_cloud(az_config_dir)
    if active:
        name, section = active
        for key, cloud in PUBLIC_CLOUDS.items():
            if key.lower() == name.lower():
                return cloud
        arm = (section or {}).get("endpoint_resource_manager")
        if not arm:
            raise KitError(
                f"the active az cloud {name!r} has no endpoint_resource_manager; pass --arm-endpoint",
                EXIT_USAGE,
            )
        if section.get("endpoint_active_directory") and section.get("endpoint_active_directory_resource_id"):
            return Cloud(
                name,
                _with_slash(arm),
                section["endpoint_active_directory"].rstrip("/"),
                section["endpoint_active_directory_resource_id"],
                _with_slash(arm),
                section.get("suffix_storage_endpoint", ""),
            )
        return discover(arm, verify)
    return PUBLIC_CLOUDS["AzureCloud"]

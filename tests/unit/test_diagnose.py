"""diagnose.py: the handler folder it picks is the one whose certificates it uses, for every lookup."""

import json
import os
import socket

from vmsnapshot import diagnose, identity


def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _installed_handler(lib, tenant, status_uri):
    """An agent-style lib dir with one installed handler whose status blob URI is only in the protected
    settings, and the tenant certificate laid out as the agent does."""
    base = os.path.join(lib, "%s-%s" % (identity.HANDLER_NAME, identity.VERSION))
    os.makedirs(os.path.join(base, "config"))
    with open(os.path.join(base, "HandlerEnvironment.json"), "w") as f:
        json.dump([{"handlerEnvironment": {"logFolder": os.path.join(base, "logs")}}], f)
    tenant.install(lib)
    handler = {
        "publicSettings": {"commandToExecute": "snapshot"},
        "protectedSettings": tenant.encrypt(json.dumps({"statusBlobUri": status_uri})),
        "protectedSettingsCertThumbprint": tenant.thumbprint,
    }
    with open(os.path.join(base, "config", "0.settings"), "w") as f:
        json.dump({"runtimeSettings": [{"handlerSettings": handler}]}, f)
    return base


def test_status_blob_probe_uses_the_certificates_of_the_picked_handler(tmp_path, tenant, monkeypatch):
    status_uri = "https://127.0.0.1:%d/c/status?sv=1&sig=SECRETSIG" % _closed_port()
    base = _installed_handler(str(tmp_path / "lib"), tenant, status_uri)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no HandlerEnvironment.json here: diagnose picks the installed handler
    for name in ("AZURE_GUEST_AGENT_EXTENSION_PATH", "ConfigSequenceNumber"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VMSNAPSHOT_CONFIG", str(tmp_path / "no-such.conf"))

    doc = diagnose.collect(check_network=True, lib_dir=str(tmp_path / "lib"))

    assert doc["handler"]["base_dir"] == base
    assert doc["settings"]["certificate_found"] and doc["settings"]["private_key_found"]
    probe = doc["status_blob"]
    # Decrypted with the picked handler's certificates: the URI was found and really probed.
    assert probe["uri"] == status_uri.split("?")[0], probe
    assert probe["reachable"] is False and "SECRETSIG" not in json.dumps(doc)

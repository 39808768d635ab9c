"""Fixtures for the fleet tooling tests: the loopback ARM emulator over verified TLS, and a runner for the
real `vmsnapkit` console command pointed at it through --arm-endpoint (the custom-endpoint path)."""

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from azure.core.credentials import AccessToken, AccessTokenInfo

from harness.armemu import ArmEmulator, generate_fleet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VMSNAPKIT = [sys.executable, "-m", "vmsnapkit"]


@pytest.fixture
def emulator():
    """Factory: emulator(vms=..., **knobs) -> a started ArmEmulator, stopped after the test."""
    started = []

    def make(vms=40, subscriptions=2, resource_groups=3, fleet=None, **knobs):
        fleet_kw = {k: knobs.pop(k) for k in list(knobs) if k in FLEET_KEYS}
        estate = fleet or generate_fleet(vms, subscriptions, resource_groups, **fleet_kw)
        emu = ArmEmulator(estate, **knobs).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


FLEET_KEYS = {
    "seed",
    "missing_extension",
    "failed_extension",
    "old_version",
    "unprotected",
    "failing_backup",
    "stale_backup",
    "undiscovered",
    "fail_enable",
    "other_extension_every",
}


class Kit:
    """Runs `python -m vmsnapkit` in a child process with the emulator's CA and managed identity."""

    def __init__(self, emu, tmp_path):
        self.emu, self.tmp = emu, tmp_path
        self.env = emu.client_env()
        self.env["AZURE_CONFIG_DIR"] = str(tmp_path / "azconfig")  # never the developer's az profile
        self.env.pop("VMSNAPKIT_ARM_ENDPOINT", None)
        self.env.pop("VMSNAPKIT_CLOUD", None)
        self.env["PYTHONPATH"] = os.path.join(ROOT, "deploy")

    def run(self, *args, endpoint=True, env=None, timeout=120, check=None):
        argv = list(VMSNAPKIT) + list(args)
        if endpoint:
            argv += ["--arm-endpoint", self.emu.url]
        proc = subprocess.run(
            argv,
            env=dict(self.env, **(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(self.tmp),
        )
        if check is not None:
            assert proc.returncode == check, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        return proc

    def json(self, *args, **kw):
        proc = self.run(*args, "-o", "json", **kw)
        return proc, json.loads(proc.stdout) if proc.stdout.strip() else None


@pytest.fixture
def kit_for(tmp_path):
    return lambda emu: Kit(emu, tmp_path)


def http(emu, path, method="GET", body=None, headers=None, verify=True):
    """One raw HTTPS request to the emulator: (status, headers, parsed JSON or None)."""
    ctx = ssl.create_default_context(cafile=emu.ca_file) if verify else ssl.create_default_context()
    hdrs = {"Authorization": "Bearer test"} if headers is None else headers
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(emu.url + path, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            raw, status, h = r.read(), r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        raw, status, h = e.read(), e.code, dict(e.headers)
    return status, {k.lower(): v for k, v in h.items()}, (json.loads(raw) if raw else None)


class TinyCredential:
    """The smallest credential the SDKs accept: a bearer token, no token endpoint involved."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken("in-process-token", int(time.time()) + 3600)

    def get_token_info(self, *scopes, options=None):
        return AccessTokenInfo("in-process-token", int(time.time()) + 3600)


def in_process_factory(emu, monkeypatch, **kw):
    """A vmsnapkit ClientFactory for the emulator's cloud, trusting its CA, in this process."""
    from vmsnapkit import cloud
    from vmsnapkit.clients import ClientFactory

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_file)
    return ClientFactory(cloud.discover(emu.url, verify=emu.ca_file), TinyCredential(), **kw)

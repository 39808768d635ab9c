"""Pieces of the kit driven in-process with a tiny credential (no token endpoint involved)."""

import io
import time

from azure.core.credentials import AccessToken, AccessTokenInfo
from vmsnapkit import cloud, graphquery
from vmsnapkit.clients import ClientFactory
from vmsnapkit.progress import Progress


class TinyCredential:
    """The smallest credential the SDKs accept (management-reference §4.6)."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken("in-process-token", int(time.time()) + 3600)

    def get_token_info(self, *scopes, options=None):
        return AccessTokenInfo("in-process-token", int(time.time()) + 3600)


def test_resource_graph_batches_subscriptions_by_300(emulator, monkeypatch):
    emu = emulator(vms=30, subscriptions=2)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_file)
    factory = ClientFactory(cloud.discover(emu.url, verify=emu.ca_file), TinyCredential())
    real = sorted(emu.estate.subscriptions)
    subs = real + [f"{i:08x}-0000-4000-8000-000000000000" for i in range(299)]  # 301 in all
    rows = list(graphquery.rows(factory, subs, graphquery.PROTECTED_ITEMS_QUERY))
    posts = emu.requests(method="POST", path="ResourceGraph")
    assert [len(p["body"]["subscriptions"]) for p in posts] == [300, 1]
    assert all(p["body"]["options"]["$top"] == 1000 and p["auth"] == "Bearer" for p in posts)
    assert len(rows) == 30 - len(emu.estate.expect["unprotected"])


class _Tty(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_progress_bar_only_on_a_terminal():
    for tty in (True, False):
        stream = _Tty(tty)
        with Progress("VMs", total=4, stream=stream, min_interval=0) as p:
            for _ in range(4):
                p.advance()
        assert ("[##############################] 4/4" in stream.getvalue()) is tty
        assert (stream.getvalue() == "") is not tty

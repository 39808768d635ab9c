"""Pieces of the kit driven in-process with a tiny credential (no token endpoint involved)."""

import io

from vmsnapkit import graphquery
from vmsnapkit.progress import Progress
from vmsnapkit.selection import Selection

from .conftest import in_process_factory


def test_resource_graph_batches_subscriptions_by_300(emulator, monkeypatch):
    emu = emulator(vms=30, subscriptions=2)
    factory = in_process_factory(emu, monkeypatch)
    real = sorted(emu.estate.subscriptions)
    subs = real + [f"{i:08x}-0000-4000-8000-000000000000" for i in range(299)]  # 301 in all
    query = graphquery.extension_query(Selection(subscriptions=subs), with_protection=True)
    rows = list(graphquery.rows(factory, subs, query))
    posts = emu.requests(method="POST", path="ResourceGraph")
    assert [len(p["body"]["subscriptions"]) for p in posts] == [300, 1]
    assert all(p["body"]["options"]["$top"] == 1000 and p["auth"] == "Bearer" for p in posts)
    assert len(rows) == sum(max(1, len(vm.extensions)) for vm in emu.estate.vms.values())
    assert sum(1 for r in rows if r["itemId"]) == sum(
        max(1, len(vm.extensions)) for k, vm in emu.estate.vms.items() if k not in emu.estate.expect["unprotected"]
    )


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

"""Benchmark: the guest path's snapshot phase vs a minimal single-threaded client, same Azurite, same run.

The minimal client is the floor for this server: one pre-opened TLS connection per disk, every snapshot
request pre-built, all written back to back, the answers read with select. The runtime's figure is its
`snapshot` timing (release of the parked requests -> last answer) in a real job (no freezing: the phase is
the same, and it needs no root). Target (issue 12): runtime <= 1.1 x the minimal client at every size, so
the server, not the kit, is what limits. Prints JSON.

usage: python bench/guest_snapshot.py [--reps N] [--disks 1,4,16,64]
"""

import argparse
import json
import os
import select
import socket
import ssl
import statistics
import sys
import tempfile
import time

from vmsnapshot.rawhttp import complete

from harness.azurite import Azurite
from harness.certs import TenantCert, make_tls
from harness.handler import build_zip
from harness.jobs import SnapshotVM


def runtime_snapshot_ms(vm, seq):
    vm.write(seq, public=vm.public(seq, customSettings=json.dumps({"takeSnapshotFrom": "onlyGuest"})))
    assert vm.agent.run("enable", seq=seq).returncode == 0
    doc = vm.agent.wait_terminal(seq, timeout=120)
    status = doc[0]["status"]
    if status["code"] != 1:
        raise SystemExit("job failed: %s" % status["formattedMessage"]["message"])
    tel = dict((t["Key"], t["Value"]) for t in json.loads(status["substatus"][0]["name"])[0]["status"]["telemetryData"])
    return float(tel["snapshotMs"])


def minimal_client_ms(uris, ca):
    """Pre-opened TLS sockets, pre-built requests written back to back, answers read with select."""
    ctx = ssl.create_default_context(cafile=ca)
    socks, requests = [], []
    for uri in uris:
        rest = uri.split("://", 1)[1]
        netloc, _, path = rest.partition("/")
        host, port = netloc.rsplit(":", 1)
        s = ctx.wrap_socket(socket.create_connection((host, int(port))), server_hostname=host)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(s)
        requests.append(
            (
                "PUT /%s&comp=snapshot HTTP/1.1\r\nHost: %s\r\nx-ms-version: 2020-04-08\r\n"
                "x-ms-meta-BackupTaskId: bench\r\nContent-Length: 0\r\n\r\n" % (path, netloc)
            ).encode()
        )
    buffers = dict((s, b"") for s in socks)
    started = time.monotonic()
    for s, r in zip(socks, requests):
        s.sendall(r)
    pending = set(socks)
    while pending:
        ready, _, _ = select.select(list(pending), [], [], 30)
        if not ready:
            raise SystemExit("minimal client: no answer within 30 s")
        for s in ready:
            buffers[s] += s.recv(65536)
            while s.pending():
                buffers[s] += s.recv(65536)
            if complete(buffers[s]):
                pending.discard(s)
    took = (time.monotonic() - started) * 1000
    for s in socks:
        status = buffers[s].split(b" ", 2)[1]
        if status != b"201":
            raise SystemExit("minimal client: snapshot answered %s" % status.decode())
        s.close()
    return took


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--disks", default="1,4,16,64")
    args = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="bench-guest-")
    tls = make_tls(os.path.join(work, "tls"))
    os.environ["SSL_CERT_FILE"] = tls["ca"]
    tenant = TenantCert(os.path.join(work, "tenant"))
    zip_path = build_zip(os.path.join(work, "dist"))
    out = {"benchmark": "guest_snapshot", "unit": "ms (median of %d)" % args.reps, "results": []}
    with Azurite(work, tls=tls, in_memory=True) as azurite:
        for disks in [int(x) for x in args.disks.split(",")]:
            vm = SnapshotVM(os.path.join(work, "vm-%d" % disks), azurite, tenant, zip_path, disks=disks)
            kit, floor = [], []
            for rep in range(args.reps):  # interleaved, so both see the same server state
                kit.append(runtime_snapshot_ms(vm, rep))
                floor.append(minimal_client_ms(vm.disk_uris(), tls["ca"]))
            row = {
                "disks": disks,
                "runtime_snapshot": round(statistics.median(kit), 1),
                "minimal_client": round(statistics.median(floor), 1),
            }
            row["ratio"] = round(row["runtime_snapshot"] / row["minimal_client"], 2)
            row["target_met"] = row["ratio"] <= 1.1
            out["results"].append(row)
            print("# %s" % json.dumps(row), file=sys.stderr)
    out["target_met"] = all(r["target_met"] for r in out["results"])
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

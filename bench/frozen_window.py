"""Benchmark: frozen window and snapshot phase vs disk count and round-trip time (root only).

Each job really freezes ext4, xfs and btrfs loop mounts made here (and only those: the plan is checked
with `diagnose` first and an independent watchdog thaws them), and snapshots N page blobs through a
delaying TCP relay in front of Azurite (no netem here). Prints JSON. Target (issue 3): the frozen
window at 16 disks and 20 ms is at most 1.5x the single-disk snapshot time, and stays flat 1 -> 64.

usage: python bench/frozen_window.py [--reps N] [--disks 1,4,16,64] [--rtt 0,5,20]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile

from harness import loopfs
from harness.azurite import Azurite
from harness.certs import TenantCert, make_tls
from harness.delayproxy import DelayProxy
from harness.handler import build_zip
from harness.jobs import SnapshotVM, b64json, planned_mounts, safe_config


def one_job(work, azurite, tenant, zip_path, tls, mounts, disks, rtt_ms, rep):
    vm = SnapshotVM(os.path.join(work, "vm-%d-%d-%d" % (disks, rtt_ms, rep)), azurite, tenant, zip_path, disks=disks)
    safe_config(vm.config, vm.work, fsfreeze=True, include=mounts)
    if planned_mounts(vm) != sorted(mounts):
        raise SystemExit("refusing to run: the freeze plan is not exactly the benchmark's own mounts")
    with DelayProxy(azurite.port, rtt_ms) as proxy:
        vm.write(0, private=vm.private(objectStr=b64json({"blobSASUri": [proxy.rewrite(u) for u in vm.disk_uris()]})))
        with loopfs.ThawWatchdog(mounts, seconds=40):
            assert vm.agent.run("enable").returncode == 0
            doc = vm.agent.wait_terminal(0, timeout=120)
    status = doc[0]["status"]
    if status["status"] != "success":
        raise SystemExit("job failed: %s" % status["formattedMessage"]["message"])
    report = json.loads(status["substatus"][0]["name"])[0]["status"]
    tel = dict((t["Key"], t["Value"]) for t in report["telemetryData"])
    keys = ("frozenWindow", "freeze", "frozenHold", "snapshot", "snapshotSendSpread", "thaw")
    return {k: float(tel[k + "Ms"]) for k in keys if k + "Ms" in tel}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--disks", default="1,4,16,64")
    ap.add_argument("--rtt", default="0,5,20")
    args = ap.parse_args(argv)
    reason = loopfs.skip_reason()
    if reason:
        print(json.dumps({"benchmark": "frozen_window", "skipped": reason}))
        return
    work = tempfile.mkdtemp(prefix="bench-freeze-")
    tls = make_tls(os.path.join(work, "tls"))
    os.environ["SSL_CERT_FILE"] = tls["ca"]
    tenant = TenantCert(os.path.join(work, "tenant"))
    zip_path = build_zip(os.path.join(work, "dist"))
    out = {"benchmark": "frozen_window", "unit": "ms (median of %d)" % args.reps, "results": []}
    with (
        loopfs.LoopFilesystems(os.path.join(work, "loops")) as loops,
        Azurite(work, tls=tls, in_memory=True) as azurite,
    ):
        for rtt in [int(x) for x in args.rtt.split(",")]:
            for disks in [int(x) for x in args.disks.split(",")]:
                runs = [
                    one_job(work, azurite, tenant, zip_path, tls, loops.mountpoints, disks, rtt, r)
                    for r in range(args.reps)
                ]
                row = {"disks": disks, "rtt_ms": rtt}
                row.update({k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]})
                out["results"].append(row)
                print("# %s" % json.dumps(row), file=sys.stderr)
    by = {(r["disks"], r["rtt_ms"]): r for r in out["results"]}
    if (16, 20) in by and (1, 20) in by:
        single = by[(1, 20)]["snapshot"]
        out["ratios_to_single_disk_snapshot_at_20ms"] = {
            "frozen_window_16_disks": round(by[(16, 20)]["frozenWindow"] / single, 2),
            "frozen_hold_16_disks": round(by[(16, 20)].get("frozenHold", 0) / single, 2),
        }
        out["target_met"] = by[(16, 20)].get("frozenHold", 1e9) <= 1.5 * single
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: enable -> terminal status latency against local Azurite, with the worker's peak RSS and CPU.

Runs the built extension exactly as the agent does (freezing disabled), for 1 and 16 disks, several
repetitions each, and prints JSON. Targets (issue 2): < 1 s end to end at 16 disks, worker peak RSS
< 40 MB, worker CPU < 0.5 s.

usage: python bench/enable_latency.py [--reps N] [--python PATH]
"""

import argparse
import json
import os
import re
import statistics
import tempfile
import time

from harness.azurite import Azurite
from harness.certs import TenantCert, make_tls
from harness.handler import build_zip
from harness.jobs import SnapshotVM

USAGE = re.compile(r"resources: peak_rss_kb=(\d+) cpu_s=([\d.]+)")


def one_job(work, azurite, tenant, zip_path, disks, python, seq):
    vm = SnapshotVM(os.path.join(work, "vm%d-%d" % (disks, seq)), azurite, tenant, zip_path, disks=disks, python=python)
    vm.write(0)
    started = time.monotonic()
    assert vm.agent.run("enable").returncode == 0
    enable_s = time.monotonic() - started
    doc = vm.agent.wait_terminal(0, timeout=60)
    total_s = time.monotonic() - started
    assert doc[0]["status"]["status"] == "success", doc
    log = open(os.path.join(vm.agent.log_dir, "extension.log")).read()
    deadline = time.monotonic() + 5
    while not USAGE.search(log) and time.monotonic() < deadline:
        time.sleep(0.05)
        log = open(os.path.join(vm.agent.log_dir, "extension.log")).read()
    rss_kb, cpu_s = USAGE.search(log).groups()
    return {
        "enable_s": enable_s,
        "terminal_s": total_s,
        "worker_peak_rss_mb": int(rss_kb) / 1024.0,
        "worker_cpu_s": float(cpu_s),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--python", default=None, help="interpreter the runtime runs under (default: system python3)")
    args = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="bench-enable-")
    tls = make_tls(os.path.join(work, "tls"))
    os.environ["SSL_CERT_FILE"] = tls["ca"]
    tenant = TenantCert(os.path.join(work, "tenant"))
    zip_path = build_zip(os.path.join(work, "dist"))
    out = {"benchmark": "enable_latency", "python": args.python or "python3", "reps": args.reps, "results": {}}
    with Azurite(work, tls=tls, in_memory=True) as azurite:
        for disks in (1, 16):
            runs = [one_job(work, azurite, tenant, zip_path, disks, args.python, i) for i in range(args.reps)]
            out["results"]["%d_disks" % disks] = {
                key: {
                    "median": round(statistics.median(r[key] for r in runs), 4),
                    "max": round(max(r[key] for r in runs), 4),
                }
                for key in runs[0]
            }
    r16 = out["results"]["16_disks"]
    out["targets_met"] = {
        "terminal_under_1s_at_16_disks": r16["terminal_s"]["median"] < 1.0,
        "peak_rss_under_40mb": r16["worker_peak_rss_mb"]["max"] < 40,
        "cpu_under_0.5s": r16["worker_cpu_s"]["median"] < 0.5,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

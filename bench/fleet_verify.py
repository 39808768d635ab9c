"""Benchmark: `vmsnapkit verify` on generated fleets against the loopback ARM emulator, printing JSON.

    .venv/bin/python bench/fleet_verify.py                   # 1,000 and 10,000 VMs, both paths, az loop
    .venv/bin/python bench/fleet_verify.py --sizes 1000 --az-vms 0

Each figure is the wall time of the real console command in a child process (interpreter start and SDK
imports included), talking HTTPS to the emulator with `--latency-ms` (default 20 ms) added to every request.
Paths: Resource Graph (the default) and direct ARM (`--source arm`, async clients, 32 in flight). The
per-VM comparison runs the real `az vm extension list` once per VM (the loop operators write today) on
`--az-vms` VMs and extrapolates linearly; it needs the az CLI venv from `make setup-azcli` (mk/azcli.mk)
and is reported as skipped without it. `--budget` adds a direct-ARM run under ARM's real read bucket
(250 tokens, 25/s refill) to show the adaptive limiter keeping 429s rare.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from harness.armemu import ArmEmulator, generate_fleet
from harness.azcli import AzCli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

KIT = [sys.executable, "-m", "vmsnapkit"]


def kit_env(emu, workdir):
    env = emu.client_env()
    env["AZURE_CONFIG_DIR"] = os.path.join(workdir, "azconfig-none")
    env["PYTHONPATH"] = os.path.join(ROOT, "deploy")
    return env


def run_verify(emu, workdir, source):
    emu.clear_log()
    argv = KIT + [
        "verify",
        "--arm-endpoint",
        emu.url,
        "--source",
        source,
        "--max-backup-age",
        "26h",
        "-o",
        "json",
        "--no-progress",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, env=kit_env(emu, workdir), capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"verify failed ({proc.returncode}): {proc.stderr[-2000:]}")
    rows = json.loads(proc.stdout)
    log = emu.requests()
    return {
        "source": source,
        "vms": len(rows),
        "failed": sum(1 for r in rows if not r["passed"]),
        "seconds": round(seconds, 2),
        "kit_cpu_seconds": round(cpu, 2),
        "requests": len(log),
        "throttled_429": sum(1 for r in log if r["status"] == 429),
    }


def az_loop(emu, workdir, count):
    """Serial `az vm extension list` per VM, as an operator's shell loop does it."""
    az = AzCli.find()
    if az is None:
        return {"skipped": "az CLI venv missing: run `make setup-azcli` (mk/azcli.mk)"}
    session = az.session(emu, workdir)
    vms = sorted(emu.estate.vms.values(), key=lambda v: v.id)[:count]
    start = time.perf_counter()
    for vm in vms:
        session.run(
            "vm",
            "extension",
            "list",
            "-g",
            vm.resource_group,
            "--vm-name",
            vm.name,
            "--subscription",
            vm.subscription,
            "-o",
            "json",
        )
    seconds = time.perf_counter() - start
    return {
        "vms": len(vms),
        "seconds": round(seconds, 2),
        "per_vm_seconds": round(seconds / len(vms), 3),
        "note": "extension list only: the backup side (az backup item list per vault) is not even included",
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--subscriptions", type=int, default=4)
    ap.add_argument("--az-vms", type=int, default=100, help="VMs in the az loop (0: skip)")
    ap.add_argument("--budget", action="store_true", help="also run direct ARM under a 250/25 read bucket")
    args = ap.parse_args()

    out = {
        "benchmark": "fleet_verify",
        "latency_ms": args.latency_ms,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as workdir:
        for size in args.sizes:
            estate = generate_fleet(size, args.subscriptions, 10, stale_backup=max(1, size // 200))
            with ArmEmulator(estate, latency_ms=args.latency_ms) as emu:
                for source in ("resourcegraph", "arm"):
                    res = run_verify(emu, workdir, source)
                    res["fleet"] = size
                    out["runs"].append(res)
                    print(json.dumps(res), file=sys.stderr, flush=True)
                if args.budget and size <= 1000:
                    emu.set_knob("read_budget", [250, 25])
                    res = run_verify(emu, workdir, "arm")
                    res.update(fleet=size, read_budget="250 tokens, 25/s")
                    out["runs"].append(res)
                    print(json.dumps(res), file=sys.stderr, flush=True)
        if args.az_vms:
            estate = generate_fleet(max(args.az_vms, 10), 1, 3)
            with ArmEmulator(estate, latency_ms=args.latency_ms) as emu:
                out["az_loop"] = az_loop(emu, workdir, args.az_vms)
    if "seconds" in out.get("az_loop", {}):
        per_vm = out["az_loop"]["per_vm_seconds"]
        for run in out["runs"]:
            run["az_loop_extrapolated_seconds"] = round(per_vm * run["fleet"], 1)
            run["speedup_vs_az_loop"] = round(per_vm * run["fleet"] / run["seconds"], 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

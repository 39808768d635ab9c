"""The fleet part of the `make run` demo: a generated estate in the loopback ARM emulator, the real
`vmsnapkit` command against it (--arm-endpoint, verified TLS, managed-identity login), a verify report.

    .venv/bin/python -m harness.fleet_demo [--vms 500] [--out out/fleet-report.html]

Prints the verify table's summary and where the report is; exit code 0 whatever the fleet's verdict
(the demo fleet has planted problems on purpose), non-zero only when the demo itself fails.
"""

import argparse
import os
import subprocess
import sys
import tempfile

from harness.armemu import ArmEmulator, generate_fleet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vms", type=int, default=500)
    ap.add_argument("--subscriptions", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "fleet-report.html"))
    ap.add_argument("--latency-ms", type=float, default=5.0)
    args = ap.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    estate = generate_fleet(args.vms, args.subscriptions, 5, stale_backup=max(1, args.vms // 100))
    with ArmEmulator(estate, latency_ms=args.latency_ms) as emu, tempfile.TemporaryDirectory() as tmp:
        env = emu.client_env()
        env["AZURE_CONFIG_DIR"] = tmp
        env["PYTHONPATH"] = os.path.join(ROOT, "deploy") + os.pathsep + env.get("PYTHONPATH", "")
        kit = [sys.executable, "-m", "vmsnapkit"]
        print(f"fleet demo: {args.vms} VMs in {args.subscriptions} subscriptions behind {emu.url}", flush=True)
        steps = [
            ["extensions", "list", "--query", "[?provisioningState!='Succeeded']"],
            ["backup", "enable", "--dry-run", "--query", "[?action=='would enable'].{VM:vm, Vault:vault}"],
            [
                "verify",
                "--max-backup-age",
                "26h",
                "--min-version",
                "1.9",
                "--report",
                args.out,
                "--query",
                "[?!passed].{VM:vm, Why:reasonsText}",
            ],
        ]
        for step in steps:
            print(f"\n$ vmsnapkit {' '.join(step)} --arm-endpoint {emu.url}", flush=True)
            proc = subprocess.run(kit + step + ["--arm-endpoint", emu.url, "--no-progress"], env=env)
            if proc.returncode not in (0, 1):
                return proc.returncode
    print(f"\nreport: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

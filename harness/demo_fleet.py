"""The fleet part of `make run`: a simulated fleet in the loopback ARM emulator, verified by vmsnapkit.

The fleet has VMs without the snapshot extension, one with a failed extension, unprotected VMs and one
whose last backup failed; `vmsnapkit verify` runs through `--arm-endpoint` exactly as against Azure and
writes the HTML and Markdown reports.
"""

import os
import subprocess
import sys

from harness.armemu import ArmEmulator, generate_fleet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_fleet_report(work, say, vms=60):
    estate = generate_fleet(
        vms=vms,
        subscriptions=2,
        resource_groups=3,
        missing_extension=3,
        failed_extension=1,
        unprotected=4,
        failing_backup=1,
    )
    out_dir = os.path.join(ROOT, "out")
    os.makedirs(out_dir, exist_ok=True)
    html, md = os.path.join(out_dir, "fleet-report.html"), os.path.join(out_dir, "fleet-report.md")
    with ArmEmulator(estate) as emu:
        env = emu.client_env()
        env["AZURE_CONFIG_DIR"] = os.path.join(work, "azconfig")
        env["PYTHONPATH"] = os.path.join(ROOT, "deploy")
        say("%d VMs over 2 subscriptions, served at %s" % (vms, emu.url))
        base = [
            sys.executable,
            "-m",
            "vmsnapkit",
            "verify",
            "--arm-endpoint",
            emu.url,
            "--max-backup-age",
            "26h",
            "--no-progress",
        ]
        proc = subprocess.run(base + ["--report", html], env=env, capture_output=True, text=True, timeout=300)
        subprocess.run(base + ["--report", md, "-o", "json"], env=env, capture_output=True, text=True, timeout=300)
    lines = proc.stdout.strip().splitlines()
    for line in lines[:12]:
        say(line)
    if len(lines) > 12:
        say("... (%d more rows)" % (len(lines) - 12))
    if proc.stderr.strip():
        say(proc.stderr.strip().splitlines()[-1])
    say("verify exit code %d (non-zero: some VMs fail the rules, as this fleet is meant to)" % proc.returncode)
    say("report: %s" % html)
    say("report: %s" % md)

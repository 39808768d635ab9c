"""The fleet report as a person gets it: the real `vmsnapkit verify --report` run against the loopback ARM
emulator on a lived-in generated fleet (harness.fleet_variety), then opened in headless Chromium.

    .venv/bin/python -m harness.report_page --vms 60 --screenshot docs/fleet-report.png   # the docs picture
    .venv/bin/python -m harness.report_page --vms 500 --locale zh-CN --out out/fleet-cn.html

Used by bench/fleet_report.py (size and render time at 10,000 VMs) and for the screenshot in docs/.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from harness import fleet_variety
from harness.armemu import ArmEmulator, generate_fleet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = ["--max-backup-age", "26h", "--min-version", "1.9"]

# Milliseconds since navigation start: DOM ready, load, first contentful paint, and the first frame drawn
# after the load event (layout and paint of the whole table and every chart included).
TIMINGS_JS = """
new Promise(function (done) {
  requestAnimationFrame(function () { requestAnimationFrame(function () {
    var nav = performance.getEntriesByType("navigation")[0];
    var fcp = performance.getEntriesByName("first-contentful-paint")[0];
    done({dom_content_loaded_ms: nav.domContentLoadedEventEnd, load_ms: nav.loadEventEnd,
          first_contentful_paint_ms: fcp ? fcp.startTime : null, first_frame_after_load_ms: performance.now()});
  }); });
})
"""


def fleet(vms, subscriptions=None, resource_groups=None, seed=7):
    """A generated estate with the usual planted problems, made to look lived-in."""
    subscriptions = subscriptions or (2 if vms <= 100 else 4)
    resource_groups = resource_groups or (6 if vms <= 100 else 30)
    estate = generate_fleet(
        vms, subscriptions, resource_groups, seed=seed, stale_backup=max(1, vms // 200), old_version=max(1, vms // 100)
    )
    fleet_variety.vary(estate)
    return estate


def verify_report(estate, out, extra=(), latency_ms=0.0):
    """Run `vmsnapkit verify -o json --report out` against the estate; returns the JSON rows."""
    with ArmEmulator(estate, latency_ms=latency_ms) as emu, tempfile.TemporaryDirectory() as azconfig:
        env = emu.client_env()
        env["AZURE_CONFIG_DIR"] = azconfig
        env["PYTHONPATH"] = os.path.join(ROOT, "deploy")
        argv = (
            [
                sys.executable,
                "-m",
                "vmsnapkit",
                "verify",
                "--arm-endpoint",
                emu.url,
                "--no-progress",
                "-o",
                "json",
                "--report",
                out,
            ]
            + RULES
            + list(extra)
        )
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"vmsnapkit verify failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vms", type=int, default=60)
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "fleet-report.html"))
    ap.add_argument("--locale", default="en-US")
    ap.add_argument("--screenshot", metavar="PNG", help="also save a screenshot of the page's first screen")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=1500)
    args = ap.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    rows = verify_report(fleet(args.vms), args.out, ["--locale", args.locale])
    print(
        f"{args.out}: {len(rows)} VMs, {sum(1 for r in rows if not r['passed'])} failing, "
        f"{os.path.getsize(args.out)} bytes"
    )
    if args.screenshot:
        from harness.chromium import Chromium

        with Chromium(args.width, args.height) as browser:
            browser.navigate("file://" + os.path.abspath(args.out))
            problems = browser.problems()
            if problems:
                raise SystemExit(f"the page did not run clean: {problems}")
            browser.screenshot(args.screenshot)
        print(f"screenshot: {args.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the HTML fleet report's size and its render time in headless Chromium, printing JSON.

    .venv/bin/python bench/fleet_report.py                  # 1,000 and 10,000 VMs, 3 cold loads each
    .venv/bin/python bench/fleet_report.py --sizes 10000 --runs 5

For each fleet size the real `vmsnapkit verify --report` runs against the loopback ARM emulator (a lived-in
generated fleet: harness.report_page), then each run starts a fresh Chromium (new profile, nothing cached) and
loads the page from file://. Render time is the first frame drawn after the load event, in milliseconds since
navigation start (the whole table and every chart laid out and painted); sorting (one click on the age header)
and filtering (a resource group typed in the filter) are timed in the page up to the next painted frame.
Targets at 10,000 VMs: under 3 MB and under 2 s to render.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from harness.chromium import Chromium, skip_reason
from harness.report_page import TIMINGS_JS, fleet, verify_report

SORT_JS = """
new Promise(function (done) {
  var b = document.querySelector("#vmt thead th[data-t=n] button"), t = performance.now();
  b.click();
  requestAnimationFrame(function () { requestAnimationFrame(function () { done(performance.now() - t); }); });
})
"""

FILTER_JS = """
new Promise(function (done) {
  var q = document.getElementById("q"), t = performance.now();
  q.value = "rg-app-2";
  q.dispatchEvent(new KeyboardEvent("keydown", {key: "Enter"}));
  requestAnimationFrame(function () { requestAnimationFrame(function () {
    done([performance.now() - t, document.querySelectorAll("#vmt tbody tr:not([hidden])").length]);
  }); });
})
"""

MB = 1024 * 1024
CPU_METRICS = {
    "main_thread": "ThreadTime",
    "process": "ProcessTime",
    "parse_and_tasks": "TaskDuration",
    "layout": "LayoutDuration",
    "style": "RecalcStyleDuration",
    "script": "ScriptDuration",
}


def one_load(path):
    with Chromium(1400, 1000) as browser:
        browser.send("Performance.enable", timeDomain="threadTicks")
        wall = browser.navigate("file://" + path)
        timings = browser.evaluate(TIMINGS_JS, await_promise=True)
        metrics = {m["name"]: m["value"] for m in browser.send("Performance.getMetrics")["metrics"]}
        sort_ms = browser.evaluate(SORT_JS, await_promise=True)
        filter_ms, shown = browser.evaluate(FILTER_JS, await_promise=True)
        problems = browser.problems()
    out = {k: round(v, 1) for k, v in timings.items() if v is not None}
    # the renderer's own CPU time for the page: steadier than wall time on a shared machine
    out["renderer_cpu_ms"] = {k: round(metrics[v] * 1000, 1) for k, v in CPU_METRICS.items() if v in metrics}
    out.update(
        navigate_to_load_wall_ms=round(wall * 1000, 1),
        sort_ms=round(sort_ms, 1),
        filter_ms=round(filter_ms, 1),
        filter_rows_shown=shown,
        problems=problems,
    )
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    reason = skip_reason()
    if reason:
        print(json.dumps({"benchmark": "fleet_report", "skipped": reason}))
        return 0
    out = {
        "benchmark": "fleet_report",
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        "targets": {"size_mb": 3.0, "render_s": 2.0, "at_vms": 10000},
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-report-") as workdir:
        for size in args.sizes:
            path = os.path.join(workdir, f"fleet-{size}.html")
            start = time.perf_counter()
            rows = verify_report(fleet(size), path)
            verify_s = time.perf_counter() - start
            loads = [one_load(path) for _ in range(args.runs)]
            render = [x["first_frame_after_load_ms"] for x in loads]
            res = {
                "vms": len(rows),
                "failing": sum(1 for r in rows if not r["passed"]),
                "verify_with_report_s": round(verify_s, 2),
                "html_bytes": os.path.getsize(path),
                "html_mb": round(os.path.getsize(path) / MB, 2),
                "render_ms_median": round(statistics.median(render), 1),
                "render_ms_max": round(max(render), 1),
                "sort_ms_median": round(statistics.median(x["sort_ms"] for x in loads), 1),
                "filter_ms_median": round(statistics.median(x["filter_ms"] for x in loads), 1),
                "loads": loads,
            }
            if size >= 10000:
                res["meets_targets"] = res["html_mb"] < 3.0 and res["render_ms_max"] < 2000
            out["runs"].append(res)
            print(json.dumps({k: v for k, v in res.items() if k != "loads"}), file=sys.stderr, flush=True)
    out["load_average_at_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark `make dist`: wall time of the first and of later runs, and whether they are byte-identical.

Prints one JSON document. Target: a run after the first takes < 10 s. Runs `make dist` in the repository
(it writes dist/ and build/ there, as a user's `make dist` does); the first run starts with neither
dist/ nor build/package/. The virtualenv must exist (`make venv`, about a minute, not counted).

usage: python bench/packaging_dist.py [--runs N] [--packager nfpm]
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def digests(dist):
    out = {}
    for name in sorted(os.listdir(dist)):
        with open(os.path.join(dist, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--packager", default="nfpm")
    args = ap.parse_args(argv)
    # The first run starts without dist/ and build/package/, as after a fresh clone (venv excepted).
    for stale in ("dist", os.path.join("build", "package")):
        shutil.rmtree(os.path.join(ROOT, stale), ignore_errors=True)
    times, hashes = [], []
    for _ in range(args.runs):
        start = time.monotonic()
        proc = subprocess.run(
            ["make", "-s", "-C", ROOT, "dist", "PACKAGER=" + args.packager],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        times.append(round(time.monotonic() - start, 3))
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout)
            return 1
        hashes.append(digests(os.path.join(ROOT, "dist")))
    later = times[1:] or times
    print(
        json.dumps(
            {
                "benchmark": "make dist",
                "packager": args.packager,
                "runs": args.runs,
                "wall_seconds": times,
                "first_run_seconds": times[0],
                "later_runs_max_seconds": max(later),
                "later_runs_median_seconds": sorted(later)[len(later) // 2],
                "target_seconds": 10,
                "meets_target": max(later) < 10,
                "byte_identical_across_runs": all(h == hashes[0] for h in hashes),
                "artefacts": {name: os.path.getsize(os.path.join(ROOT, "dist", name)) for name in hashes[0]},
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

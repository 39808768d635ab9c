"""Benchmark of the freeze engine on real loop-mounted ext4, xfs and btrfs (root only). Prints JSON.

usage: python bench/freeze_engine.py [--reps N] [--hold-ms MS]

Per repetition, with one fsync writer per filesystem running in its own process:
  start_ms        spawn of the guardian until it has opened every mount point
  syncfs_ms       syncfs of the three filesystems before the freeze
  freeze_ms       the three FIFREEZE calls
  thaw_ms         the three FITHAW calls
  window_ms       first FIFREEZE call to last FITHAW return (hold included)
  overhead_ms     window_ms - hold: what the engine adds to the time the worker needs
  stall_ms        the writers' longest gap between two completed writes
  raw_freeze_ms   the same FIFREEZE calls made directly in alternate cycles prepared the same way
                  (writers, syncfs): what the kernel itself needs
With --no-writers the filesystems are idle. Then the kill path: the process driving the guardian is
SIGKILLed while frozen and a writer is blocked; kill_to_write_ms is the time from the SIGKILL to that
writer's next completed write.
"""

import argparse
import errno
import fcntl
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from vmsnapshot.freezeproto import FIFREEZE, FITHAW
from vmsnapshot.guardian_client import GuardianClient
from vmsnapshot.mounts import plan_from_mountinfo
from vmsnapshot.syncfs import syncfs_all

from harness import loopfs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DRIVER = os.path.join(ROOT, "tests", "engine", "freeze_driver.py")


def writers(mounts, seconds):
    return [
        subprocess.Popen(
            [sys.executable, "-B", "-m", "harness.fswriter", os.path.join(m, "bench.dat"), str(seconds)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        for m in mounts
    ]


def collect(procs):
    return [json.loads(p.communicate(timeout=60)[0]) for p in procs]


def raw_freeze_ms(mounts):
    """FIFREEZE of every mount made directly in this process, then FITHAW: the kernel's own cost."""
    fds = [os.open(m, os.O_RDONLY) for m in mounts]
    try:
        t0 = time.monotonic()
        for fd in fds:
            fcntl.ioctl(fd, FIFREEZE, 0)
        took = (time.monotonic() - t0) * 1000
        for fd in reversed(fds):
            try:
                fcntl.ioctl(fd, FITHAW, 0)
            except OSError as e:
                if e.errno != errno.EINVAL:  # EINVAL: thawed by someone else (see "interference")
                    raise
    finally:
        for fd in fds:
            os.close(fd)
    return took


def raw_cycle(mounts, with_writers=True):
    procs = writers(mounts, 0.6) if with_writers else []
    time.sleep(0.2 if with_writers else 0.02)
    syncfs_all(mounts)
    took = raw_freeze_ms(mounts)
    collect(procs)
    return took


def one_cycle(mounts, hold_s, with_writers=True):
    procs = writers(mounts, 0.6 + hold_s) if with_writers else []
    time.sleep(0.2 if with_writers else 0.02)
    t = time.monotonic()
    syncfs_all(mounts)
    sync_ms = (time.monotonic() - t) * 1000
    g = GuardianClient(mounts, hard_deadline_s=10, lock_path=None)
    t = time.monotonic()
    g.start()
    start_ms = (time.monotonic() - t) * 1000
    try:
        r = g.freeze()
        if hold_s:
            time.sleep(hold_s)
        th = g.thaw()
    finally:
        g.close()
    res = collect(procs)
    assert r.ok and th.ok, (r, th)
    return {
        "start_ms": start_ms,
        "syncfs_ms": sync_ms,
        "freeze_ms": r.freeze_ms,
        "thaw_ms": th.thaw_ms,
        "window_ms": th.frozen_window_ms,
        "overhead_ms": th.frozen_window_ms - hold_s * 1000,
        "stall_ms": max([x["max_gap_ms"] for x in res] or [0.0]),
    }


def kill_cycle(mounts):
    procs = writers(mounts, 3.0)
    time.sleep(0.3)  # writers running
    drv = subprocess.Popen([sys.executable, "-B", DRIVER, "frozen", "20"] + mounts, cwd="/", stdout=subprocess.PIPE)
    drv.stdout.readline()  # started
    json.loads(drv.stdout.readline())  # frozen
    time.sleep(0.1)  # writers are now blocked on the frozen filesystems
    killed = time.monotonic()
    os.kill(drv.pid, signal.SIGKILL)
    drv.wait()
    res = collect(procs)
    return max((min(s for s in x["stamps"] if s > killed) - killed) * 1000 for x in res)


def summary(values):
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3), "min": round(min(values), 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--no-writers", action="store_true", help="idle filesystems (no stall figure)")
    ap.add_argument("--hold-ms", type=float, default=0.0, help="time held frozen (the snapshots' stand-in)")
    args = ap.parse_args()
    reason = loopfs.skip_reason()
    if reason:
        print(json.dumps({"skipped": reason}))
        return 0
    base = tempfile.mkdtemp(prefix="vmsnapshot-bench-")
    with loopfs.LoopFilesystems(base) as fs:
        mounts = fs.mountpoints
        plan = plan_from_mountinfo(include=mounts)
        assert sorted(plan.mountpoints) == sorted(mounts), plan.mountpoints
        with loopfs.ThawWatchdog(mounts, 120):
            cycles, raws = [], []
            for _ in range(args.reps):
                cycles.append(one_cycle(plan.mountpoints, args.hold_ms / 1000.0, not args.no_writers))
                raws.append(raw_cycle(plan.mountpoints, not args.no_writers))
            kills = [kill_cycle(plan.mountpoints) for _ in range(max(3, args.reps // 2))]
            interference = loopfs.foreign_openers(mounts)
    shutil.rmtree(base, ignore_errors=True)
    out = {
        "filesystems": ["ext4", "xfs", "btrfs"],
        "reps": args.reps,
        "hold_ms": args.hold_ms,
        "writers": not args.no_writers,
        "load_average_1m": os.getloadavg()[0],
        "python": "%d.%d.%d" % sys.version_info[:3],
    }
    for key in ("start_ms", "syncfs_ms", "freeze_ms", "thaw_ms", "window_ms", "overhead_ms", "stall_ms"):
        out[key] = summary([c[key] for c in cycles])
    out["raw_freeze_ms"] = summary(raws)
    out["first_cycle"] = cycles[0]
    out["kill_to_write_ms"] = summary(kills)
    out["interference"] = interference  # other test sessions holding our mounts: figures unreliable
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

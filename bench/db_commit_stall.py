"""Benchmark: the worst commit latency of a transactional load during a snapshot job (root only).

For each engine (MariaDB, PostgreSQL with its WAL on a second file system), a server on loop mounts made
here runs the bank load (3 connections, every commit acknowledged and timed); then, interleaved, N times
each: no job (the same length of time, as the baseline), a freeze-only job (no workload.conf) and a job
with the database branch. Per job: the worst latency of any commit in flight during the job, the frozen
window and, with the database branch, how long the quiesce and the lock took. Prints JSON.
Target (issue 13): the database branch adds at most 100 ms to the worst commit stall of a freeze-only job.

usage: python bench/db_commit_stall.py [--reps N] [--engines mariadb,postgres]
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

from harness import databases
from harness.azurite import Azurite
from harness.certs import TenantCert, make_tls
from harness.dbjobs import DbVm, Loops
from harness.dbload import Load, worst_latency
from harness.handler import build_zip


def make_server(engine, loops):
    if engine == "mariadb":
        fs = loops.make("my-data")
        server = databases.MariaDb(os.path.join(fs.mountpoint, "data"), os.path.join(loops.base, "my-run"))
        server.filesystems = [fs]
        workload = {
            "workload_name": "mariadb",
            "linux_user": "nobody",
            "credString": '-u backup "-p%s" -S %s' % (databases.MY_BACKUP_PASSWORD, server.socket),
        }
    else:
        data, wal = loops.make("pg-data"), loops.make("pg-wal")
        server = databases.Postgres(
            os.path.join(data.mountpoint, "cluster"),
            os.path.join(wal.mountpoint, "pg_wal"),
            os.path.join(loops.base, "pg-run"),
        )
        server.filesystems = [data, wal]
        workload = {
            "workload_name": "postgres",
            "linux_user": "postgres",
            "credString": "-h %s -U postgres password=%s" % (server.rundir, databases.PG_PASSWORD),
        }
    server.install().start().create_bank()
    return server, workload


def run_engine(engine, reps, work, azurite, tenant, zip_path, tls):
    loops = Loops()
    server = None
    try:
        server, workload = make_server(engine, loops)
        mounts = [fs.mountpoint for fs in server.filesystems]
        load = Load(server, os.path.join(work, engine + "-load.json"))
        jobs = []
        try:
            time.sleep(1.0)
            for rep in range(reps):
                for mode in ("freeze", "db", "none"):
                    vm = DbVm(
                        os.path.join(work, "%s-%s-%d" % (engine, mode, rep)), azurite, tenant, zip_path, tls, mounts
                    )
                    if mode == "db":
                        vm.write_workload(**workload)
                    if mode == "none":
                        start = time.monotonic()
                        time.sleep(jobs[-1]["end"] - jobs[-1]["start"])  # as long as the last job
                        jobs.append({"mode": mode, "start": start, "end": time.monotonic()})
                        continue
                    backup = vm.backup(hold_s=0)
                    if backup.status["code"] != (0 if mode == "db" else 1):
                        raise SystemExit("%s job failed: %s" % (mode, backup.message))
                    tel = backup.telemetry()
                    jobs.append(
                        {
                            "mode": mode,
                            "start": backup.started,
                            "end": backup.ended,
                            "frozenWindowMs": float(tel["frozenWindowMs"]),
                            "dbQuiesceMs": float(tel.get("dbQuiesceMs", 0)),
                            "dbHeldMs": float(tel.get("dbHeldMs", 0)),
                            "message": backup.message,
                        }
                    )
                    time.sleep(0.5)
        finally:
            result = load.stop()
        if result["errors"]:
            raise SystemExit("load errors: %s" % result["errors"])
    finally:
        if server is not None:
            server.stop()
        loops.close()
    for job in jobs:
        job["worstCommitMs"] = round(worst_latency(result, job["start"], job["end"]), 1)
    out = {"engine": engine, "commits": len(result["acks"]), "jobs": jobs, "median": {}}
    for mode in ("none", "freeze", "db"):
        rows = [j for j in jobs if j["mode"] == mode]
        out["median"][mode] = {
            k: round(statistics.median(r[k] for r in rows), 1)
            for k in ("worstCommitMs", "frozenWindowMs", "dbQuiesceMs", "dbHeldMs")
            if k in rows[0]
        }
    added = out["median"]["db"]["worstCommitMs"] - out["median"]["freeze"]["worstCommitMs"]
    out["db_adds_to_worst_commit_ms"] = round(added, 1)
    out["target_met"] = added <= 100.0
    for job in jobs:
        job.pop("start"), job.pop("end")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--engines", default="mariadb,postgres")
    args = ap.parse_args(argv)
    reason = databases.skip_reason()
    if reason:
        print(json.dumps({"benchmark": "db_commit_stall", "skipped": reason}))
        return
    work = tempfile.mkdtemp(prefix="bench-db-")
    tls = make_tls(os.path.join(work, "tls"))
    os.environ["SSL_CERT_FILE"] = tls["ca"]
    tenant = TenantCert(os.path.join(work, "tenant"))
    zip_path = build_zip(os.path.join(work, "dist"))
    out = {"benchmark": "db_commit_stall", "unit": "ms", "reps": args.reps, "results": []}
    try:
        with Azurite(work, tls=tls, in_memory=True) as azurite:
            for engine in args.engines.split(","):
                row = run_engine(engine, args.reps, work, azurite, tenant, zip_path, tls)
                out["results"].append(row)
                print("# %s" % json.dumps(row["median"]), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["target_met"] = all(r["target_met"] for r in out["results"])
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

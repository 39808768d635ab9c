"""A writer workload for freeze tests: one thread per mount writes 4 KiB and fsyncs, forever.

The file wraps around at WRAP_BYTES, so a long run never fills the small loop file systems that several
tests of a module share.

Run as a separate process (a writer blocks uninterruptibly on a frozen file system, and the thaw must
never depend on it). On SIGTERM it writes a JSON summary: per mount, the number of writes, the
longest gap between two completed writes (wall-clock start and end), and every gap over 10 ms.

usage: python -m harness.writer SUMMARY.json MOUNT [MOUNT...]
"""

import json
import os
import signal
import sys
import threading
import time

_stop = threading.Event()
WRAP_BYTES = 4 * 1024 * 1024


def _write_loop(mount, record):
    path = os.path.join(mount, "writer.dat")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    block = b"w" * 4096
    offset = 0
    last = time.time()
    while not _stop.is_set():
        os.pwrite(fd, block, offset)
        os.fsync(fd)
        offset = (offset + len(block)) % WRAP_BYTES
        now = time.time()
        record["writes"] += 1
        if now - last > 0.010 and len(record["gaps"]) < 10000:
            record["gaps"].append((last, now))
        if now - last > record["max_gap"]:
            record["max_gap"], record["gap_start"], record["gap_end"] = now - last, last, now
        last = now
        time.sleep(0.002)
    os.close(fd)


def main(argv):
    out, mounts = argv[0], argv[1:]
    records = {m: {"writes": 0, "max_gap": 0.0, "gap_start": None, "gap_end": None, "gaps": []} for m in mounts}
    threads = [threading.Thread(target=_write_loop, args=(m, records[m]), daemon=True) for m in mounts]
    signal.signal(signal.SIGTERM, lambda *a: _stop.set())
    for t in threads:
        t.start()
    print("ready", flush=True)
    while not _stop.wait(0.05):
        pass
    for t in threads:
        t.join(10)
    with open(out, "w") as f:
        json.dump({m: dict(r, max_gap_ms=r["max_gap"] * 1000) for m, r in records.items()}, f)


if __name__ == "__main__":
    main(sys.argv[1:])

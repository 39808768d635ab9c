"""A writer workload for freeze tests: `python -m harness.fswriter FILE SECONDS [fsync|buffered]`.

Runs as its own process (a writer blocked on a frozen filesystem must never be the process that
thaws). Writes 4 KiB blocks to FILE for SECONDS, with fsync after each write by default, and prints
one JSON line on stdout: the time.monotonic() stamp of every completed write (the clock is system-wide,
so stamps compare with the freeze guardian's), the count and the longest gap between completions.
"""

import json
import os
import sys
import time


def run(path, seconds, mode="fsync"):
    block = b"w" * 4096
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    stamps = []
    start = time.monotonic()
    end = start + seconds
    offset = 0
    try:
        while time.monotonic() < end:
            os.pwrite(fd, block, offset)
            if mode == "fsync":
                os.fsync(fd)
            offset = (offset + 4096) % (4 * 1024 * 1024)
            stamps.append(time.monotonic())
    finally:
        os.close(fd)
    gaps = [b - a for a, b in zip([start] + stamps, stamps)]
    longest = max(gaps) if gaps else 0.0
    at = gaps.index(longest) if gaps else 0
    return {
        "writes": len(stamps),
        "start": start,
        "stamps": stamps,
        "max_gap_ms": longest * 1000.0,
        "max_gap_from": ([start] + stamps)[at] if gaps else start,
        "max_gap_to": stamps[at] if stamps else start,
    }


def main(argv):
    result = run(argv[0], float(argv[1]), argv[2] if len(argv) > 2 else "fsync")
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

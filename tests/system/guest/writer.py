"""Guest workload: append-and-fsync one checksummed, timestamped record at a time to a file on `/`.

Stands for an application that must not lose writes. It measures its own stalls (the longest gap
between two completed writes) and can be quiesced by the sample hook: SIGUSR1 asks it to finish the
write in flight and park (it then creates the `quiesced` marker on tmpfs), SIGUSR2 resumes it. SIGTERM
ends it; it then prints one JSON summary line on stdout.

Record format: "<seq> <monotonic completion of the previous write> <crc32 of the first two fields>\n".

usage: python3 -B writer.py DATA_FILE CONTROL_DIR
"""

import json
import os
import signal
import sys
import time
import zlib

STALL_REPORT_MS = 20.0
MAX_STALLS_REPORTED = 2000  # every one of them in a test run: the kill check looks for the one it caused


class Writer(object):
    def __init__(self, path, control_dir):
        self.path = path
        self.marker = os.path.join(control_dir, "writer.quiesced")
        self.pause_requested = False
        self.stop = False
        self.count = 0
        self.last = None
        self.max_gap = (0.0, None, None)
        self.stalls = []  # [start, end] of every gap above STALL_REPORT_MS (monotonic seconds)
        self.quiesced = []  # [start, end] of every hook-requested pause

    def _record(self, now):
        if self.last is not None:
            gap = now - self.last
            if gap > self.max_gap[0]:
                self.max_gap = (gap, self.last, now)
            if gap * 1000 > STALL_REPORT_MS:
                self.stalls.append([round(self.last, 4), round(now, 4)])
        self.last = now

    def _park(self):
        start = time.monotonic()
        with open(self.marker, "w") as f:
            f.write("%d\n" % os.getpid())
        while self.pause_requested and not self.stop:
            time.sleep(0.002)
        self.quiesced.append([round(start, 4), round(time.monotonic(), 4)])

    def run(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        prev = time.monotonic()
        while not self.stop:
            if self.pause_requested:
                self._park()
                continue
            head = "%d %.6f" % (self.count, prev)
            os.write(fd, ("%s %08x\n" % (head, zlib.crc32(head.encode()) & 0xFFFFFFFF)).encode())
            os.fsync(fd)
            prev = time.monotonic()
            self.count += 1
            self._record(prev)
            time.sleep(0.002)
        os.close(fd)

    def summary(self):
        gap, start, end = self.max_gap
        return {
            "records": self.count,
            "maxStallMs": round(gap * 1000, 1),
            "maxStallStart": start,
            "maxStallEnd": end,
            "stalls": self.stalls[-MAX_STALLS_REPORTED:],
            "quiesced": self.quiesced,
            "pid": os.getpid(),
        }


def verify(path, expected_records):
    """Re-read the data file: every record whole, checksums right, sequence numbers contiguous."""
    bad, seqs = [], []
    with open(path, "rb") as f:
        for n, raw in enumerate(f):
            try:
                seq, stamp, crc = raw.decode("ascii").rstrip("\n").split(" ")
                head = "%s %s" % (seq, stamp)
                if int(crc, 16) != zlib.crc32(head.encode()) & 0xFFFFFFFF or not raw.endswith(b"\n"):
                    raise ValueError("checksum")
                seqs.append(int(seq))
            except (ValueError, UnicodeDecodeError):
                bad.append(n)
    contiguous = seqs == list(range(len(seqs)))
    return {
        "records": len(seqs),
        "badRecords": len(bad),
        "contiguous": contiguous,
        "expected": expected_records,
        "intact": not bad and contiguous and len(seqs) == expected_records,
    }


def main(argv):
    writer = Writer(argv[1], argv[2])

    def on_signal(signum, frame):
        if signum == signal.SIGUSR1:
            writer.pause_requested = True
        elif signum == signal.SIGUSR2:
            writer.pause_requested = False
        else:
            writer.stop = True

    for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM):
        signal.signal(s, on_signal)
    with open(os.path.join(argv[2], "writer.pid"), "w") as f:
        f.write("%d\n" % os.getpid())
    writer.run()
    sys.stdout.write(json.dumps(writer.summary()) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""A transactional load on the bank schema that records every acknowledged commit.

Run as `python -m harness.dbload ENGINE OUT.json CONNECTIONS -- CLIENT ARGV...` (the client is the server's
own `mariadb` or `psql`, driven over pipes: no driver to install). Each connection loops over transfers:
two balance updates and a ledger row with a unique sequence number in one transaction, then a marker
SELECT; a commit counts as acknowledged when the marker comes back. Prints "ready" once every connection
committed once; on SIGTERM writes OUT.json: every acknowledgement as [seq, monotonic time of the ack],
and every commit latency as [monotonic send time, latency in ms].
"""

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

PREFIX = {"mariadb": "bank.", "postgres": ""}


class Connection(threading.Thread):
    def __init__(self, engine, argv, seqs, stop, out):
        threading.Thread.__init__(self, daemon=True)
        self.engine, self.seqs, self.stop, self.out = engine, seqs, stop, out
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        self.first = threading.Event()
        self.error = None

    def run(self):
        p = PREFIX[self.engine]
        rnd = random.Random(os.getpid() ^ id(self))
        try:
            while not self.stop.is_set():
                seq = next(self.seqs)
                src, dst = rnd.sample(range(20), 2)
                amount = rnd.randint(1, 50)
                marker = "ack %d" % seq
                # Rows are locked in id order, so concurrent transfers never deadlock.
                first, second = (("-", src), ("+", dst)) if src < dst else (("+", dst), ("-", src))
                sql = (
                    "BEGIN; UPDATE {p}accounts SET bal = bal {o1} {a} WHERE id = {i1}; UPDATE {p}accounts SET "
                    "bal = bal {o2} {a} WHERE id = {i2}; INSERT INTO {p}ledger VALUES ({n}, {s}, {d}, {a}); "
                    "COMMIT; SELECT '{m}';\n"
                ).format(
                    p=p, a=amount, o1=first[0], i1=first[1], o2=second[0], i2=second[1], s=src, d=dst, n=seq, m=marker
                )
                sent = time.monotonic()
                self.proc.stdin.write(sql.encode())
                self.proc.stdin.flush()
                while True:
                    line = self.proc.stdout.readline()
                    if not line:
                        raise RuntimeError(self.proc.stderr.read().decode("utf-8", "replace")[-500:])
                    if line.strip() == marker.encode():
                        break
                acked = time.monotonic()
                self.out["acks"].append([seq, acked])
                self.out["latencies"].append([sent, (acked - sent) * 1000])
                self.first.set()
        except (OSError, RuntimeError) as e:
            self.error = str(e)
            self.first.set()

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main(argv):
    engine, out_path, n = argv[0], argv[1], int(argv[2])
    client = argv[argv.index("--") + 1 :]
    out = {"acks": [], "latencies": [], "errors": []}
    stop = threading.Event()
    seqs = itertools.count(1)
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    conns = [Connection(engine, client, seqs, stop, out) for _ in range(n)]
    for c in conns:
        c.start()
    for c in conns:
        c.first.wait(60)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while not stop.is_set():
        stop.wait(0.2)
    for c in conns:
        c.join(30)
        c.close()
        if c.error:
            out["errors"].append(c.error)
    with open(out_path + ".tmp", "w") as f:
        json.dump(out, f)
    os.rename(out_path + ".tmp", out_path)
    return 0


class Load(object):
    """The load as a separate process (it may block on a frozen file system; the test never does)."""

    def __init__(self, server, out_path, connections=3):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.out_path = out_path
        self.proc = subprocess.Popen(
            [sys.executable, "-B", "-m", "harness.dbload", server.engine, out_path, str(connections), "--"]
            + server.client_argv(),
            cwd=root,
            env=server.client_env(),
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the load did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        with open(self.out_path) as f:
            return json.load(f)


def acked_before(result, t):
    return [seq for seq, at in result["acks"] if at < t]


def worst_latency(result, start, end):
    """The worst commit latency (ms) of transactions that were in flight at some point in [start, end]."""
    lat = [ms for sent, ms in result["latencies"] if sent <= end and sent + ms / 1000.0 >= start]
    return max(lat) if lat else 0.0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Stand-in for the enable worker in kill tests: drives a GuardianClient and gets SIGKILLed.

usage: freeze_driver.py MODE DEADLINE_S MOUNTPOINT...

MODE
  started   start the guardian, report, wait to be killed
  frozen    start, freeze, report, wait to be killed
  freezing  start, report, send the freeze request and SIGKILL itself at once (dies mid-FIFREEZE)
  thawing   start, freeze, report, send the thaw request and SIGKILL itself at once (dies mid-thaw)

Reports are JSON lines on stdout: {"step": ..., "guardian_pid": ..., ...}; "started" always comes first.
"""

import json
import os
import signal
import sys
import time

from vmsnapshot.guardian_client import GuardianClient


def report(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def main():
    mode, deadline, mounts = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    g = GuardianClient(mounts, hard_deadline_s=deadline, lock_path=None)
    g.start()
    report(step="started", guardian_pid=g.pid)
    if mode == "freezing":
        g._send({"op": "freeze"})
        os.kill(os.getpid(), signal.SIGKILL)
    elif mode in ("frozen", "thawing"):
        r = g.freeze()
        report(step="frozen", guardian_pid=g.pid, outcome=r.to_dict())
        if mode == "thawing":
            g._send({"op": "thaw"})
            os.kill(os.getpid(), signal.SIGKILL)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()

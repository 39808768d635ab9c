"""Run the emulator as a process: `python -m harness.armemu --port 18443 --vms 200 --latency-ms 20`.

Prints one JSON line when it is serving ({"url", "ca_file", "pid", "subscriptions", ...}) and writes the
same JSON to --ready-file if given; stops cleanly on SIGTERM or SIGINT. Knobs can be changed later with
POST /__knobs; the request log is at GET /__log.
"""

import argparse
import json
import os
import signal
import sys
import threading

from .fleet import generate_fleet
from .server import ArmEmulator


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m harness.armemu", description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: a free one)")
    ap.add_argument("--vms", type=int, default=50)
    ap.add_argument("--subscriptions", type=int, default=2)
    ap.add_argument("--resource-groups", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--unprotected", type=int, default=None, help="unprotected VMs (default: 10%%)")
    ap.add_argument("--undiscovered", type=int, default=0, help="unprotected VMs visible only after a refresh")
    ap.add_argument("--fail-enable", type=int, default=0, help="unprotected VMs whose enable fails")
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--throttle-every", type=int, default=0)
    ap.add_argument("--lro-polls", type=int, default=0)
    ap.add_argument("--page-size", type=int, default=1000)
    ap.add_argument("--cert-dir", help="where to write ca.pem/server.pem/server.key (default: a temp dir)")
    ap.add_argument("--ready-file", help="write the start-up JSON here too")
    args = ap.parse_args(argv)

    try:
        estate = generate_fleet(
            args.vms,
            args.subscriptions,
            args.resource_groups,
            seed=args.seed,
            unprotected=args.unprotected,
            undiscovered=args.undiscovered,
            fail_enable=args.fail_enable,
        )
    except ValueError as exc:
        ap.error(str(exc))
    emu = ArmEmulator(
        estate,
        port=args.port,
        cert_dir=args.cert_dir,
        latency_ms=args.latency_ms,
        throttle_every=args.throttle_every,
        lro_polls=args.lro_polls,
        page_size=args.page_size,
    )
    try:
        emu.start()
    except OSError as exc:
        print(f"armemu: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    info = {
        "url": emu.url,
        "port": emu.port,
        "ca_file": emu.ca_file,
        "pid": os.getpid(),
        "metadata": f"{emu.url}/metadata/endpoints",
        "identity_endpoint": f"{emu.url}/msi/token",
        "subscriptions": sorted(estate.subscriptions),
        "vms": len(estate.vms),
    }
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(info, f)
        os.replace(tmp, args.ready_file)
    print(json.dumps(info), flush=True)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

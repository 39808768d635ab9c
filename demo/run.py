"""`make run`: the whole story on this machine, no Azure account needed.

1. builds the extension zip, 2. starts Azurite (HTTPS, loopback) as the VM's storage, 3. creates a local
"VM": page blobs for its disks and, as root, loop-mounted ext4 and xfs file systems with a writer and a
sample pre/post hook that quiesces it, 4. installs the extension the way the guest agent does and runs a
snapshot job through its manifest commands with settings encrypted as Azure delivers them, 5. prints the
result and the status blob as Azure Backup reads it, 6. runs the fleet report against the loopback ARM
emulator when the fleet tool is installed. Cleans up on exit and on Ctrl-C.

Safety: the job may freeze only the demo's own loop mounts (MountsToInclude), the plan is checked with
`diagnose` before anything runs, an independent watchdog thaws them, and a guard thread thaws the
machine's own file systems should anything ever freeze them.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from harness import loopfs
from harness.azurite import Azurite
from harness.certs import TenantCert, make_tls
from harness.freezeguard import MachineThawGuard
from harness.handler import build_zip
from harness.hostservice import HostService
from harness.jobs import SnapshotVM, b64json, freeze_plan, planned_mounts, safe_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEMO_DIR = os.path.join(os.environ.get("KIT_CACHE", os.path.expanduser("~/.cache/vmsnapshot-kit")), "demo")
HOOK = """#!/bin/sh
# Sample quiesce hook (qemu-guest-agent style): pause the demo writer around the freeze.
pid=$(cat %(pidfile)s 2>/dev/null) || exit 0
case "$1" in
  freeze) kill -STOP "$pid" ;;
  thaw)   kill -CONT "$pid" ;;
esac
exit 0
"""


def say_path(tel):
    """Which path took the snapshots, and why."""
    say("method: %s (%s)" % (tel.get("snapshotMethod"), tel.get("snapshotMethodReason")))
    say(
        "path taken: %s; host presnapshot code %s%s"
        % (
            {"backupHostService": "host (backup host service)", "guestExtension": "guest (SAS snapshots)"}.get(
                tel.get("snapshotCreator"), tel.get("snapshotCreator")
            ),
            tel.get("hostStatusCodePreSnapshot", "-"),
            ", dosnapshot code %s" % tel["hostStatusCodeDoSnapshot"]
            if "hostStatusCodeDoSnapshot" in tel
            else " (555: no WireServer on this machine, so the guest snapshots)"
            if tel.get("hostStatusCodePreSnapshot") == "555"
            else "",
        )
    )


def step(text):
    print("\n\033[1m==> %s\033[0m" % text, flush=True)


def say(text):
    print("    " + text, flush=True)


class Demo(object):
    def __init__(self):
        self.stack = []  # cleanup callbacks, run in reverse

    def cleanup(self):
        while self.stack:
            fn = self.stack.pop()
            try:
                fn()
            except Exception as e:  # cleanup must go on
                say("cleanup: %s" % e)

    def run(self):
        guard = MachineThawGuard()
        guard.start()
        self.stack.append(guard.stop)
        if os.path.isdir(DEMO_DIR):
            shutil.rmtree(DEMO_DIR, ignore_errors=True)
        os.makedirs(DEMO_DIR)
        work = tempfile.mkdtemp(prefix="run-", dir=DEMO_DIR)

        step("Packages in dist/ (make dist): the extension zip the agent installs, DEB, RPM, SHA256SUMS")
        zip_path = build_zip(os.path.join(ROOT, "dist"))  # the same bytes make dist wrote (reproducible)
        for name in sorted(os.listdir(os.path.join(ROOT, "dist"))):
            say("dist/%s" % name)

        step("Starting Azurite (HTTPS on 127.0.0.1) as the VM's storage")
        tls = make_tls(os.path.join(work, "tls"))
        os.environ["SSL_CERT_FILE"] = tls["ca"]
        azurite = Azurite(work, tls=tls, in_memory=True).start()
        self.stack.append(azurite.stop)
        say(azurite.endpoint)

        root_reason = loopfs.skip_reason(("ext4", "xfs"))
        mounts = []
        if root_reason is None:
            step("Creating the VM's file systems: loop-mounted ext4 and xfs, with a writer")
            loops = loopfs.LoopFilesystems(os.path.join(work, "fs"), ("ext4", "xfs")).__enter__()
            self.stack.append(lambda: loops.__exit__(None, None, None))
            mounts = loops.mountpoints
            for m in mounts:
                say(m)
        else:
            step("Freezing disabled: %s" % root_reason)
            say("the job will take crash-consistent snapshots; run as root to see real freezes")

        tenant = TenantCert(os.path.join(work, "tenant"))
        vm = SnapshotVM(os.path.join(work, "vm"), azurite, tenant, zip_path, disks=4, container="demo-vm")
        say("disks: %s" % ", ".join("%s (1 GiB page blob)" % d for d in vm.disk_names))
        writer = None
        if mounts:
            safe_config(vm.config, vm.work, fsfreeze=True, include=mounts)
            pidfile = os.path.join(work, "writer.pid")
            hooks = os.path.join(vm.work, "etc-azure", "hooks.d")
            os.makedirs(hooks, mode=0o700, exist_ok=True)
            with open(os.path.join(hooks, "10-quiesce-writer"), "w") as f:
                f.write(HOOK % {"pidfile": pidfile})
            os.chmod(os.path.join(hooks, "10-quiesce-writer"), 0o700)
            writer = subprocess.Popen(
                [sys.executable, "-B", "-m", "harness.writer", os.path.join(work, "writer.json")] + mounts,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            writer.stdout.readline()
            with open(pidfile, "w") as f:
                f.write(str(writer.pid))
            self.stack.append(
                lambda: writer.poll() is None and (writer.send_signal(signal.SIGCONT), writer.terminate())
            )

        step("Installing the extension as the guest agent does (unzip, HandlerEnvironment, install)")
        proc = vm.agent.run("install")
        say(proc.stdout.strip() or proc.stderr.strip())
        say("handler directory: %s" % vm.agent.base)

        step("Checking the freeze plan with `diagnose` before anything can freeze")
        plan = freeze_plan(vm)
        if sorted(plan["would_freeze"]) != sorted(mounts):
            raise SystemExit(
                "refusing to run: the freeze plan %s is not exactly the demo's mounts %s"
                % (plan["would_freeze"], mounts)
            )
        say("would freeze: %s" % (", ".join(plan["would_freeze"]) or "nothing"))
        say("skipping %d other mounts (pseudo, tmpfs, not in MountsToInclude, ...)" % len(plan["skipped"]))

        step("Running a snapshot job: settings encrypted to the tenant certificate, enable, worker")
        vm.write(0)
        watchdog = loopfs.ThawWatchdog(mounts, seconds=60).arm() if mounts else None
        if watchdog:
            self.stack.append(watchdog.disarm)
        started = time.monotonic()
        vm.agent.run("enable")
        say("enable returned in %.0f ms; status: transitioning" % ((time.monotonic() - started) * 1000))
        doc = vm.agent.wait_terminal(0, timeout=120)
        say("terminal status after %.0f ms" % ((time.monotonic() - started) * 1000))
        stalls = {}
        if writer is not None:
            writer.send_signal(signal.SIGCONT)
            writer.terminate()
            writer.wait(20)
            with open(os.path.join(work, "writer.json")) as f:
                stalls = json.load(f)

        status = doc[0]["status"]
        report = json.loads(status["substatus"][0]["name"])[0]["status"]
        tel = dict((t["Key"], t["Value"]) for t in report["telemetryData"])
        consistency = json.loads(report["formattedMessage"]["message"])["snapshotConsistency"]
        step("Result")
        say("status: %s, code %s" % (status["status"], status["code"]))
        say("message: %s" % status["formattedMessage"]["message"])
        say(
            "consistency: %s"
            % {0: "none", 1: "file-system consistent", 2: "application consistent", 3: "crash consistent"}[consistency]
        )
        if "frozenWindowMs" in tel:
            say(
                "frozen window: %s ms (freeze %s ms, snapshots %s ms, thaw %s ms)"
                % (tel["frozenWindowMs"], tel.get("freezeMs"), tel.get("snapshotMs"), tel.get("thawMs"))
            )
        for mount, rec in stalls.items():
            say("writer on %s: %d writes, longest stall %.1f ms" % (mount, rec["writes"], rec["max_gap_ms"]))
        say_path(tel)
        for info in report["snapshotInfo"] or []:
            say("snapshot: %s" % info["snapshotUri"])
        step("The status blob, as Azure Backup reads it (signatures never appear)")
        print(json.dumps(vm.final_status_blob(), indent=2)[:4000])
        self.trusted_launch_vm(work, azurite, tenant, zip_path, mounts)
        self.fleet_report(work)

    def trusted_launch_vm(self, work, azurite, tenant, zip_path, mounts):
        """A Trusted Launch VM: its guest-state blob can only be snapshotted by the host, so the job has no
        SAS URIs and goes to the host backup service (here the loopback one, taking real Azurite snapshots)."""
        step("A Trusted Launch VM (guest-state blob included): only the host can snapshot it")
        vm = SnapshotVM(os.path.join(work, "tl-vm"), azurite, tenant, zip_path, disks=2, container="demo-tl-vm")
        host = HostService(azurite, vm.container, {-1: "disk0.vhd", 0: "disk1.vhd"}).__enter__()
        self.stack.append(lambda: host.__exit__(None, None, None))
        safe_config(vm.config, vm.work, fsfreeze=bool(mounts), include=mounts or None, host_endpoint=host.endpoint)
        say("host backup service (loopback WireServer stand-in): %s" % host.endpoint)
        vm.agent.run("install")
        if planned_mounts(vm) != sorted(mounts):
            raise SystemExit("refusing to run: the Trusted Launch VM's freeze plan is not the demo's mounts")
        obj = {
            "backupMetadata": [{"Key": "BackupTaskId", "Value": "demo-tl"}],
            "includedDisks": {"dataDiskLunList": [0], "isOSDiskIncluded": True, "isVmgsBlobIncluded": True},
            "snapshotTaskToken": vm.task_token,
        }
        vm.write(
            0, public=vm.public(0, objectStr=b64json(obj)), private=vm.private(objectStr=b64json({"blobSASUri": []}))
        )
        say("settings: includedDisks.isVmgsBlobIncluded = true, blobSASUri = [] (as Azure Backup sends them)")
        watchdog = loopfs.ThawWatchdog(mounts, seconds=60).arm() if mounts else None
        try:
            vm.agent.run("enable")
            doc = vm.agent.wait_terminal(0, timeout=120)
        finally:
            if watchdog:
                watchdog.disarm()
        status = doc[0]["status"]
        report = json.loads(status["substatus"][0]["name"])[0]["status"]
        tel = dict((t["Key"], t["Value"]) for t in report["telemetryData"])
        say("status: %s, code %s" % (status["status"], status["code"]))
        say_path(tel)
        if "frozenWindowMs" in tel:
            say(
                "frozen window: %s ms (the dosnapshot request went out the moment everything was frozen)"
                % tel["frozenWindowMs"]
            )
        for info in report["snapshotInfo"] or []:
            say("host snapshot: %s" % info["snapshotUri"])

    def fleet_report(self, work):
        try:
            from harness.demo_fleet import run_fleet_report
        except ImportError:
            step("Fleet report: the fleet tool is not part of this build yet")
            return
        step("Fleet report against the loopback ARM emulator (simulated fleet)")
        run_fleet_report(work, say)


def main():
    demo = Demo()

    def interrupted(signum, frame):
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, interrupted)
    try:
        demo.run()
        step("Done. Everything is cleaned up; run `make run` again at will.")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up (thaw, unmount, stop services)")
        return 130
    finally:
        demo.cleanup()


if __name__ == "__main__":
    sys.exit(main())

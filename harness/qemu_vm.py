"""Boot the cached Debian guest (harness/guest_image.py) under qemu with software emulation (TCG).

Each boot gets its own qcow2 overlay on the read-only base image, so guest writes (and freezes of the
guest's own root) never touch the cache. Test material reaches the guest as a seed: a tar archive built
here from a staging directory (owner root, modes kept) and attached as the second virtio disk; the
image's boot shim unpacks it over `/` and runs `/vmsnap-test/init`.

Networking is qemu's user-mode stack with `restrict=on`: the guest reaches nothing but the forwarded
ports, each connection to `10.0.2.100:<guest port>` relayed by a `socat` that qemu starts for it to
`127.0.0.1:<host port>` on this machine.
Machine-readable results come back on the serial console as `VMSNAP_<KIND> <json>` lines.
"""

import json
import os
import selectors
import shutil
import subprocess
import tarfile
import time

from harness.guest_image import GuestImage

HOST_ALIAS = "10.0.2.100"  # the guest's name for the host (guestfwd address)
GUEST_ADDRESS = "10.0.2.15/24"
MARKER = "VMSNAP_"


def _root_owned(info):
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def build_seed(staging_dir, seed_path):
    """A tar of `staging_dir` whose paths are relative to the guest's `/`, every entry owned by root."""
    with tarfile.open(seed_path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(os.listdir(staging_dir)):
            tar.add(os.path.join(staging_dir, name), arcname=name, filter=_root_owned)
    return seed_path


class BootResult(object):
    def __init__(self, lines, seconds, returncode, timed_out):
        self.lines = lines
        self.seconds = seconds
        self.returncode = returncode
        self.timed_out = timed_out

    def records(self, kind):
        """Every `VMSNAP_<kind> <json>` line, decoded."""
        prefix = "%s%s " % (MARKER, kind)
        out = []
        for line in self.lines:
            at = line.find(prefix)
            if at >= 0:
                try:
                    out.append(json.loads(line[at + len(prefix) :]))
                except ValueError:
                    out.append({"undecodable": line[at : at + 200]})
        return out

    def result(self, name):
        for doc in self.records("RESULT"):
            if doc.get("name") == name:
                return doc
        return None

    def console(self, last=80):
        return "\n".join(self.lines[-last:])


class GuestVM(object):
    def __init__(self, workdir, image=None, memory_mb=1024, cpus=2):
        self.workdir = workdir
        self.image = image or GuestImage()
        self.memory_mb = memory_mb
        self.cpus = cpus  # two vCPUs: multi-threaded TCG runs the guest's processes on both host cores
        self.overlay = os.path.join(workdir, "root.qcow2")
        self.seed = os.path.join(workdir, "seed.tar")
        self.console_log = os.path.join(workdir, "console.log")

    def make_overlay(self):
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", self.image.base, self.overlay], check=True
        )

    def command(self, forwards):
        # cmd: spawns one relay per guest connection; a `tcp:` chardev would carry a single connection
        # for the whole boot (and needs the port open before qemu starts).
        relay = shutil.which("socat")
        fwd = ",".join("guestfwd=tcp:%s:%d-cmd:%s - TCP:127.0.0.1:%d" % (HOST_ALIAS, g, relay, h) for g, h in forwards)
        return [
            shutil.which("qemu-system-x86_64"),
            "-machine",
            "q35,accel=tcg",
            "-m",
            str(self.memory_mb),
            "-smp",
            str(self.cpus),
            "-nographic",
            "-no-reboot",
            "-nodefaults",
            "-serial",
            "stdio",
            "-kernel",
            self.image.kernel,
            "-initrd",
            self.image.initrd,
            "-append",
            "console=ttyS0 quiet root=/dev/vda rootfstype=ext4 rw init=/sbin/vmsnap-init panic=-1",
            "-drive",
            "file=%s,format=qcow2,if=virtio" % self.overlay,
            "-drive",
            "file=%s,format=raw,if=virtio,readonly=on" % self.seed,
            "-netdev",
            "user,id=n0,restrict=on,%s" % fwd,
            "-device",
            "virtio-net-pci,netdev=n0,romfile=",
        ]

    def boot(self, staging_dir, forwards, timeout=180):
        """Boot with the seed built from `staging_dir`; returns when the guest powers off or times out."""
        self.make_overlay()
        build_seed(staging_dir, self.seed)
        t = time.monotonic()
        lines, timed_out, partial = [], False, b""
        with open(self.console_log, "wb") as log:
            proc = subprocess.Popen(
                self.command(forwards),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            sel = selectors.DefaultSelector()
            sel.register(proc.stdout, selectors.EVENT_READ)
            try:
                while True:
                    left = timeout - (time.monotonic() - t)
                    if left <= 0:
                        timed_out = True
                        break
                    if not sel.select(min(left, 1.0)):
                        continue
                    chunk = os.read(proc.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    log.write(chunk)
                    partial += chunk
                    *done, partial = partial.split(b"\n")
                    lines.extend(x.decode("utf-8", "replace").rstrip("\r") for x in done)
            finally:
                sel.close()
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                proc.stdout.close()
        if partial:
            lines.append(partial.decode("utf-8", "replace"))
        return BootResult(lines, time.monotonic() - t, proc.returncode, timed_out)

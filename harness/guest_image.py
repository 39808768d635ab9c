"""Build, once, the Debian bookworm guest that the qemu system test boots (issue 8, "System test").

The guest is a `debootstrap --variant=minbase` tree from the machine's configured apt mirror plus
linux-image-amd64, python3, openssl and iproute2 (installed in a chroot inside a private mount
namespace, so its /proc, /sys and /dev mounts vanish with it). Out of it come three cached files under
`<cache>/`: the kernel, its initrd, and `base.img` (a raw ext4 image of the tree). Tests never write
to them: each boot gets a qcow2 overlay.

The only thing baked into the image besides Debian is the boot shim `/sbin/vmsnap-init` (PID 1): it
mounts the pseudo file systems, unpacks the per-test seed (a tar archive attached as the second disk)
over `/`, runs the seed's `/vmsnap-test/init` and powers off. Everything test-specific lives in the
seed, so changing a test never rebuilds the image.

The build is keyed on a stamp: the hash of this recipe (this file) and the Debian suite. A changed
recipe rebuilds; an unchanged one is a no-op. Root only (debootstrap and chroot need it).

usage: python -m harness.guest_image [--cache DIR] [--force]
"""

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

from harness.debian_root import DebianRootError, apt_mirror

SUITE = "bookworm"
GUEST_PACKAGES = ("linux-image-amd64", "python3", "openssl", "iproute2", "kmod")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
INITRD_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "ext4")
IMAGE_HEADROOM_MB = 512
TOOLS = ("debootstrap", "qemu-system-x86_64", "qemu-img", "mkfs.ext4", "unshare", "chroot")

BOOT_SHIM = r"""#!/bin/sh
# vmsnap-init: PID 1 of the qemu system-test guest (no systemd). Unpacks the seed disk and runs it.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sys /sys 2>/dev/null
mount -t devtmpfs dev /dev 2>/dev/null
# noatime: reads of the runtime's state files must never queue an atime update on a frozen root.
mount -o remount,rw,noatime /
mount -t tmpfs -o mode=755 run /run
mount -t tmpfs -o mode=1777 tmp /tmp
echo "VMSNAP_BOOT uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r)"
if [ -b /dev/vdb ] && tar -xpf /dev/vdb -C /; then
    if [ -x /vmsnap-test/init ]; then
        /vmsnap-test/init
    else
        echo "VMSNAP_ERROR the seed has no /vmsnap-test/init"
    fi
else
    echo "VMSNAP_ERROR no seed disk (/dev/vdb)"
fi
sync
mount -o remount,ro / 2>/dev/null
echo "VMSNAP_POWEROFF uptime=$(cut -d' ' -f1 /proc/uptime)"
echo o > /proc/sysrq-trigger
sleep 60
"""


class Skip(Exception):
    """The image cannot be built on this machine; the message says why."""


def default_cache():
    return os.path.join(os.environ.get("KIT_CACHE") or os.path.expanduser("~/.cache/vmsnapshot-kit"), "vm")


def recipe_hash():
    """What the stamp is keyed on: this file's text (recipe, boot shim, packages) and the suite."""
    with open(os.path.abspath(__file__), "rb") as f:
        return hashlib.sha256(f.read() + SUITE.encode()).hexdigest()[:16]


class GuestImage(object):
    """The cached artefacts; `ready()` says whether they match the current recipe."""

    def __init__(self, cache=None):
        self.cache = cache or default_cache()
        self.kernel = os.path.join(self.cache, "vmlinuz")
        self.initrd = os.path.join(self.cache, "initrd.img")
        self.base = os.path.join(self.cache, "base.img")
        self.stamp = os.path.join(self.cache, "stamp.json")

    def stamp_info(self):
        try:
            with open(self.stamp) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def ready(self):
        info = self.stamp_info()
        return bool(
            info
            and info.get("recipe") == recipe_hash()
            and all(os.path.exists(p) for p in (self.kernel, self.initrd, self.base))
        )

    def why_not_ready(self):
        info = self.stamp_info()
        if info is None:
            return "no guest image in %s (build it as root: make vm-image)" % self.cache
        if info.get("recipe") != recipe_hash():
            return "the guest image in %s was built from another recipe (rebuild: make vm-image)" % self.cache
        return "guest image files missing in %s (rebuild: make vm-image)" % self.cache


def check_prerequisites():
    if os.geteuid() != 0:
        raise Skip("not root: debootstrap and chroot need root")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise Skip("missing tools: %s (make apt-deps installs them as root)" % ", ".join(missing))


def _run(cmd, log, **kw):
    t = time.monotonic()
    log.write("$ %s\n" % " ".join(cmd))
    log.flush()
    subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, **kw)
    return time.monotonic() - t


def _chroot_script(packages):
    """Runs inside `unshare -m`: the mounts below die with the namespace, whatever happens.

    --force-confold keeps the initramfs settings written before the kernel's install (see
    write_initramfs_config)."""
    return (
        "set -e\n"
        "mount -t proc proc rootfs/proc\n"
        "mount -t sysfs sys rootfs/sys\n"
        "mount --bind /dev rootfs/dev\n"
        "export DEBIAN_FRONTEND=noninteractive LC_ALL=C\n"
        "chroot rootfs apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold "
        "-o Dpkg::Options::=--force-confdef %s\n"
        "chroot rootfs apt-get clean\n" % " ".join(packages)
    )


def write_initramfs_config(rootfs):
    """A small initrd with only the drivers this VM has: under TCG, unpacking Debian's default 35 MB
    initrd and letting udev load every module it holds costs most of the boot."""
    conf = os.path.join(rootfs, "etc", "initramfs-tools")
    os.makedirs(os.path.join(conf, "conf.d"), exist_ok=True)
    with open(os.path.join(conf, "conf.d", "vmsnap-test"), "w") as f:
        f.write("MODULES=list\n")
    with open(os.path.join(conf, "modules"), "w") as f:
        f.write("\n".join(INITRD_MODULES) + "\n")


def build(image, log):
    """Build into a scratch directory next to the cache, then move the three files in place."""
    work = os.path.join(image.cache, "build")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    rootfs = os.path.join(work, "rootfs")
    timings = {}
    try:
        mirror = apt_mirror()
    except DebianRootError:
        mirror = DEFAULT_MIRROR
    timings["debootstrap"] = _run(["debootstrap", "--variant=minbase", SUITE, rootfs, mirror], log)
    write_initramfs_config(rootfs)
    timings["packages"] = _run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", _chroot_script(GUEST_PACKAGES)], log, cwd=work
    )
    for sub in ("var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"):
        shutil.rmtree(os.path.join(rootfs, sub), ignore_errors=True)
    os.makedirs(os.path.join(rootfs, "var/lib/apt/lists/partial"), exist_ok=True)
    shim = os.path.join(rootfs, "sbin", "vmsnap-init")
    with open(shim, "w") as f:
        f.write(BOOT_SHIM)
    os.chmod(shim, 0o755)
    with open(os.path.join(rootfs, "etc", "hostname"), "w") as f:
        f.write("vmsnap-guest\n")

    boot = os.path.join(rootfs, "boot")
    kernels = sorted(n for n in os.listdir(boot) if n.startswith("vmlinuz-"))
    initrds = sorted(n for n in os.listdir(boot) if n.startswith("initrd.img-"))
    if not kernels or not initrds:
        raise RuntimeError("no kernel or initrd in %s after installing linux-image-amd64" % boot)
    kernel_version = kernels[-1][len("vmlinuz-") :]
    shutil.copyfile(os.path.join(boot, kernels[-1]), os.path.join(work, "vmlinuz"))
    shutil.copyfile(os.path.join(boot, initrds[-1]), os.path.join(work, "initrd.img"))

    used = int(subprocess.run(["du", "-sm", rootfs], check=True, capture_output=True, text=True).stdout.split()[0])
    size_mb = used + IMAGE_HEADROOM_MB
    img = os.path.join(work, "base.img")
    with open(img, "wb") as f:
        f.truncate(size_mb << 20)
    timings["mkfs"] = _run(["mkfs.ext4", "-q", "-F", "-L", "vmsnaproot", "-d", rootfs, img], log)
    for name in ("vmlinuz", "initrd.img", "base.img"):
        os.replace(os.path.join(work, name), os.path.join(image.cache, name))
    shutil.rmtree(work, ignore_errors=True)
    return {
        "recipe": recipe_hash(),
        "suite": SUITE,
        "mirror": mirror,
        "kernel": kernel_version,
        "imageMB": size_mb,
        "treeMB": used,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }


def ensure(cache=None, force=False, out=sys.stdout):
    """Build the image unless an up-to-date one exists. Returns the GuestImage; raises Skip."""
    image = GuestImage(cache)
    if image.ready() and not force:
        out.write("vm-image: up to date in %s (recipe %s)\n" % (image.cache, recipe_hash()))
        return image
    check_prerequisites()
    os.makedirs(image.cache, exist_ok=True)
    with open(os.path.join(image.cache, "build.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second make waits for the first build, then finds it done
        if image.ready() and not force:
            return image
        if os.path.exists(image.stamp):
            os.remove(image.stamp)  # the stamp goes last: a half-built image is never "ready"
        log_path = os.path.join(image.cache, "build.log")
        out.write("vm-image: building the Debian %s guest in %s (log: %s)\n" % (SUITE, image.cache, log_path))
        out.flush()
        t = time.monotonic()
        with open(log_path, "w") as log:
            try:
                info = build(image, log)
            except subprocess.CalledProcessError as e:
                raise RuntimeError(
                    "vm-image: `%s` failed with exit code %d; see %s" % (" ".join(e.cmd[:3]), e.returncode, log_path)
                ) from None
        info["seconds"]["total"] = round(time.monotonic() - t, 1)
        tmp = image.stamp + ".tmp"
        with open(tmp, "w") as f:
            json.dump(info, f, indent=2)
        os.replace(tmp, image.stamp)
        out.write(
            "vm-image: built in %.0f s: kernel %s, %d MB image\n"
            % (info["seconds"]["total"], info["kernel"], info["imageMB"])
        )
    return image


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", default=default_cache(), help="where the image lives (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="rebuild even when the stamp matches")
    args = p.parse_args(argv)
    try:
        ensure(args.cache, args.force)
    except Skip as e:
        print("vm-image: skipped: %s; the qemu system test will skip too" % e)
    except RuntimeError as e:
        print(str(e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

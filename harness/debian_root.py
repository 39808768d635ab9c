"""A disposable Debian root to install the kit's DEB into, and a way to run commands inside it.

The root is made once with `debootstrap --variant=minbase` from the machine's configured apt source and
cached as a tar file in $KIT_CACHE, so later runs only unpack it (a few seconds). Commands run through
`unshare -m` in a private mount namespace: the /proc and /dev mounts the chroot needs vanish with the
process, so nothing leaks onto the host and deleting the tree afterwards is safe. Root only.
"""

import os
import re
import shutil
import subprocess
import tempfile

DEFAULT_CACHE = os.path.expanduser("~/.cache/vmsnapshot-kit")
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class DebianRootError(Exception):
    """The root could not be made or used; the message says why."""


def apt_mirror(sources_dir="/etc/apt"):
    """The machine's configured Debian mirror (deb822 sources first, then sources.list)."""
    deb822 = os.path.join(sources_dir, "sources.list.d", "debian.sources")
    if os.path.exists(deb822):
        with open(deb822) as f:
            for stanza in f.read().split("\n\n"):
                uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
                if uris and suites and not any(s.endswith("-security") for s in suites.group(1).split()):
                    return uris.group(1)
    legacy = os.path.join(sources_dir, "sources.list")
    if os.path.exists(legacy):
        with open(legacy) as f:
            for line in f:
                m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", line)
                if m and "security" not in m.group(1):
                    return m.group(1)
    raise DebianRootError("no Debian mirror found in %s" % sources_dir)


# Not needed to install packages with dpkg or run programs, and nearly half the tree: dropping them halves
# the time every test spends unpacking and deleting its root. (No apt inside: no network in tests.)
TRIMMED = ("var/cache/apt", "var/lib/apt/lists", "usr/share/locale", "usr/share/doc", "usr/share/info")


def cached_root(suite="bookworm", include=("python3", "openssl"), cache=None):
    """Path of a tar of a minbase root with `include` installed; made by debootstrap on first use."""
    cache = os.path.join(cache or os.environ.get("KIT_CACHE") or DEFAULT_CACHE, "debian-roots")
    tarball = os.path.join(cache, "%s-minbase-%s-slim.tar" % (suite, "-".join(include)))
    if os.path.exists(tarball):
        return tarball
    if shutil.which("debootstrap") is None:
        raise DebianRootError("debootstrap is not installed (apt-get install debootstrap)")
    os.makedirs(cache, exist_ok=True)
    work = tempfile.mkdtemp(prefix="debootstrap-", dir=cache)
    try:
        proc = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=" + ",".join(include),
                suite,
                os.path.join(work, "root"),
                apt_mirror(),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=900,
        )
        if proc.returncode != 0:
            raise DebianRootError("debootstrap failed:\n" + proc.stdout[-3000:])
        for path in TRIMMED:
            target = os.path.join(work, "root", path)
            shutil.rmtree(target, ignore_errors=True)
            os.makedirs(target, exist_ok=True)
        subprocess.run(
            ["tar", "--numeric-owner", "-C", os.path.join(work, "root"), "-cf", tarball + ".tmp", "."], check=True
        )
        os.replace(tarball + ".tmp", tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


def unpack(tarball, dest):
    os.makedirs(dest, exist_ok=True)
    subprocess.run(["tar", "--numeric-owner", "-C", dest, "-xf", tarball], check=True)
    return dest


def chroot_argv(root, argv, env=None):
    """The command running argv as root inside `root` (chroot), with proc and dev mounted privately.

    `unshare -m` gives the command its own mount namespace, so the mounts vanish with it (also when it is
    killed) and never reach the host. The environment inside is clean (PATH, HOME, LC_ALL) plus `env`.
    The command execs all the way down: its PID is argv's, so killing it (or its group) stops argv.
    """
    inner = ["/usr/bin/env", "-i", "PATH=" + CHROOT_PATH, "HOME=/root", "LC_ALL=C.UTF-8"]
    inner += ["%s=%s" % kv for kv in sorted((env or {}).items())]
    inner += list(argv)
    setup = (
        'mount -t proc proc "$1/proc" && mount --bind /dev "$1/dev" && root="$1" && shift && exec chroot "$root" "$@"'
    )
    return ["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", setup, "sh", root] + inner


def run_in_root(root, script, env=None, timeout=300, stdin=subprocess.DEVNULL):
    """Run a sh script as root inside `root` (see chroot_argv). Returns CompletedProcess (text)."""
    return subprocess.run(
        chroot_argv(root, ["/bin/sh", "-c", script], env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
        stdin=stdin,
    )

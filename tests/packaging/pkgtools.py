"""Helpers of the packaging tests: real builds with the real packager (nfpm), real dpkg/rpm tools.

Builds run as subprocesses of packaging/make_dist.py, exactly what `make dist` runs, into temporary
directories; the repository's own dist/ is never touched. SOURCE_DATE_EPOCH is pinned to the
repository's value so copies of the tree (which have no git history) build the same bytes.
"""

import os
import shutil
import subprocess
import sys

import buildinfo
import package_description
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

EPOCH = buildinfo.source_date_epoch()


def have(tool):
    return shutil.which(tool) is not None


def require_tools(*tools):
    missing = [t for t in tools if not have(t)]
    if missing:
        pytest.skip("needs %s (Debian packages; `make apt-deps` as root installs them)" % ", ".join(missing))


FPM_VERSION = "1.17.0"
FPM_RUBY_PACKAGES = "ruby ruby-clamp ruby-cabin ruby-stud ruby-backports ruby-dotenv ruby-insist ruby-mustache"


def vendored_fpm():
    """Path of the fpm `make fpm` unpacked ($FPM, else $KIT_CACHE/fpm-<version>/bin/fpm), once it runs;
    skips, saying what is missing, otherwise (no tarball, or no Ruby: Ruby is installed as root only)."""
    cache = os.environ.get("KIT_CACHE") or os.path.expanduser("~/.cache/vmsnapshot-kit")
    fpm = os.environ.get("FPM") or os.path.join(cache, "fpm-" + FPM_VERSION, "bin", "fpm")
    if not os.access(fpm, os.X_OK):
        pytest.skip("fpm not unpacked at %s (`make fpm` unpacks the vendored fpm-%s-src.tar.gz)" % (fpm, FPM_VERSION))
    try:
        proc = subprocess.run(
            [fpm, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60
        )
    except OSError as exc:
        pytest.skip("fpm does not start: %s" % exc)
    if proc.returncode != 0 or FPM_VERSION not in proc.stdout:
        last = (proc.stdout.strip().splitlines() or ["no output"])[-1]
        pytest.skip(
            "fpm does not run (%s): it needs %s, rpm and binutils (`make fpm` as root installs them)"
            % (last, FPM_RUBY_PACKAGES)
        )
    return fpm


def build(out, tree=ROOT, version=None, packager="nfpm", extra_env=None, work=None):
    """Run <tree>/packaging/make_dist.py into out; returns {kind: path} for zip, deb, rpm, sums."""
    cmd = [
        sys.executable,
        os.path.join(tree, "packaging", "make_dist.py"),
        "--out",
        str(out),
        "--packager",
        packager,
        "--work",
        str(work or os.path.join(str(out) + ".work")),
    ]
    if version:
        cmd += ["--version", version]
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(EPOCH))
    env.update(extra_env or {})
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout
    found = {}
    for name in os.listdir(str(out)):
        kind = "sums" if name == "SHA256SUMS" else name.rsplit(".", 1)[-1]
        assert kind not in found, "two %s files in %s" % (kind, out)
        found[kind] = os.path.join(str(out), name)
    return found


def copy_tree(dest):
    """A copy of what a build reads (VERSION, packaging/, extension/), for builds that change it."""
    os.makedirs(dest, exist_ok=True)
    shutil.copy2(os.path.join(ROOT, "VERSION"), dest)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for top in ("packaging", "extension"):
        shutil.copytree(os.path.join(ROOT, top), os.path.join(dest, top), ignore=ignore)
    return dest


SAMPLE_CONFFILE = "vmbackup.conf"


def ensure_conffile(tree):
    """Make sure the tree ships at least one /etc/azure configuration file; returns its name.

    The runtime's own defaults (extension/etc/) are the lead's; until they land, the copy gets a sample
    one so the conffile behaviour (kept across upgrades, removed on purge) is still tested for real.
    """
    etc = os.path.join(tree, "extension", "etc")
    names = sorted(n for n in os.listdir(etc)) if os.path.isdir(etc) else []
    if names:
        return names[0]
    os.makedirs(etc, exist_ok=True)
    with open(os.path.join(etc, SAMPLE_CONFFILE), "w") as f:
        f.write("# sample added by tests/packaging (extension/etc/ was empty)\n[SnapshotThread]\nfsfreeze = false\n")
    print("note: extension/etc/ is empty; the test tree ships a sample %s" % SAMPLE_CONFFILE)
    return SAMPLE_CONFFILE


def bump(version):
    """The next patch version: what an upgrade test installs over `version`."""
    parts = version.split(".")
    parts[-1] = str(int(parts[-1]) + 1)
    return ".".join(parts)


def runtime_has_main(tree=ROOT):
    return os.path.exists(os.path.join(tree, "extension", "vmsnapshot", "__main__.py"))


def describe():
    return package_description.describe(buildinfo.identity(), EPOCH)

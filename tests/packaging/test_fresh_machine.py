"""A fresh Debian 12 machine: the kit's own Azurite install step brings Node.js and npm, and Azurite runs.

The machine is the debootstrapped bookworm root of the packaging tests (minbase + python3 + openssl: no
node, no npm). In it, as a user would on a fresh VM, mk/azurite.sh (what `make azurite` runs):
- not root: stops with one line saying what to install;
- as root: installs Debian's nodejs and npm from the Debian archive, then npm-installs azurite 3.35.0;
then Azurite runs inside the root (chroot, private /proc and /dev mounts that vanish with it) on a loopback
port, and the test talks to it from the host with an authenticated request. Root and network (Debian
archive, npm registry) needed: 1-4 minutes.
"""

import os
import shutil

import pytest
from pkgtools import ROOT, require_tools

from harness import debian_root
from harness.azurite import Azurite

pytestmark = [pytest.mark.root, pytest.mark.slow]

AZURITE_VERSION = "3.35.0"
KIT = "/opt/vmsnapshot-kit"
AZURITE_DIR = "/opt/azurite"
MAIN = AZURITE_DIR + "/node_modules/azurite/dist/src/blob/main.js"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root (chroot, mount namespaces, apt-get inside a Debian root)")
    require_tools("debootstrap", "unshare", "chroot")
    try:
        tarball = debian_root.cached_root()
    except debian_root.DebianRootError as exc:
        pytest.skip("no Debian root: %s" % exc)
    root = debian_root.unpack(tarball, str(tmp_path_factory.mktemp("fresh") / "root"))
    # What a VM on this network has and the cached root does not: name resolution for apt and npm, and the
    # machine's locally added CAs (a TLS-inspecting egress proxy re-signs registry.npmjs.org here), which
    # the ca-certificates package npm pulls in adds to the root's bundle, as it does on the host.
    shutil.copy("/etc/resolv.conf", os.path.join(root, "etc/resolv.conf"))
    local_cas = "/usr/local/share/ca-certificates"
    if os.path.isdir(local_cas):
        shutil.copytree(local_cas, os.path.join(root, local_cas.lstrip("/")), dirs_exist_ok=True)
    os.makedirs(os.path.join(root, KIT.lstrip("/"), "mk"))
    shutil.copy(os.path.join(ROOT, "mk", "azurite.sh"), os.path.join(root, KIT.lstrip("/"), "mk"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


# Node reads only its own CA list unless told otherwise; on this machine it is told by NODE_EXTRA_CA_CERTS.
NODE_ENV = {k: os.environ[k] for k in ("NODE_EXTRA_CA_CERTS",) if os.environ.get(k)}


def inside(root, script, timeout=120):
    return debian_root.run_in_root(root, script, env=NODE_ENV, timeout=timeout)


def test_fresh_debian_12_gets_node_from_the_kit_and_runs_azurite(fresh, tmp_path):
    root = fresh
    assert inside(root, "command -v node || command -v npm").returncode != 0, "the fresh root has node"
    assert "12." in open(os.path.join(root, "etc/debian_version")).read()

    # Not root: one line saying what to install, nothing installed.
    user = inside(
        root,
        "cd /tmp && setpriv --reuid=65534 --regid=65534 --clear-groups "
        "sh %s/mk/azurite.sh /tmp/azurite %s" % (KIT, AZURITE_VERSION),
    )
    assert user.returncode == 1, user.stdout + user.stderr
    assert len(user.stderr.strip().splitlines()) == 1 and "apt-get install nodejs npm" in user.stderr, user.stderr

    # Root: the kit's step installs Debian's nodejs and npm, then Azurite from the npm registry.
    proc = inside(root, "sh %s/mk/azurite.sh %s %s" % (KIT, AZURITE_DIR, AZURITE_VERSION), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "installing the distribution's nodejs and npm" in proc.stdout
    versions = inside(root, "node --version && dpkg-query -W -f='${Version}\\n' nodejs npm").stdout.split()
    print("fresh Debian 12: node %s, nodejs package %s, npm package %s" % tuple(versions[:3]))
    assert versions[0].startswith("v18."), versions  # Debian 12's Node.js, not 20
    assert os.path.isfile(os.path.join(root, MAIN.lstrip("/")))

    # Azurite runs there (loopback, in-memory) and answers an authenticated request from the host.
    launcher = lambda argv: debian_root.chroot_argv(root, argv)  # noqa: E731
    azurite = Azurite(str(tmp_path), in_memory=True, main=MAIN, launcher=launcher)
    azurite.start(timeout=90)
    try:
        assert os.readlink("/proc/%d/root" % azurite.proc.pid) == root, "Azurite must run inside the root"
        azurite.create_container("fresh-machine")
        status, _, body = azurite._request("GET", "fresh-machine", "restype=container&comp=list")
        assert status == 200 and b"<EnumerationResults" in body, (status, body[:300])
    finally:
        azurite.stop()
    with open("/proc/self/mounts") as f:
        assert root not in f.read(), "a mount of the chroot reached the host"

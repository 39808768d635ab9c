"""`make dist PACKAGER=fpm` with the real fpm 1.17.0 (vendored source, Debian's Ruby): lint, reproducibility,
and the same packages as nfpm's.

The fpm is the one `make fpm` unpacked into the download cache; Ruby is installed as root only, so without it
these tests skip and say what to install. The nfpm build of the same commit (conftest `dist`) is the
reference: both packagers render one description, so the packages must agree on files, contents, modes,
owners, conffiles, maintainer scripts and dependencies. The differences fpm 1.17 cannot avoid are asserted
exactly (and documented in docs/packaging.md), so a new one fails.
"""

import gzip
import hashlib
import io
import os
import re
import subprocess
import tarfile
import time

import fpm_deb_fixup
import pytest
import test_packaging_fpm
from pkgtools import EPOCH, ROOT, build, require_tools, vendored_fpm

pytestmark = pytest.mark.slow

CHANGELOG = "usr/share/doc/vmsnapshot-linux/changelog.Debian.gz"


@pytest.fixture(scope="module")
def fpm():
    return vendored_fpm()


@pytest.fixture(scope="module")
def fpm_dist(fpm, tmp_path_factory):
    require_tools("dpkg-deb", "rpm")
    return build(tmp_path_factory.mktemp("fpm-dist") / "out", packager="fpm", extra_env={"FPM": fpm})


def sh(*cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=True).stdout


def deb_tree(path):
    """{path: (kind, mode, owner, content digest)} of a DEB's data; gzip files compared uncompressed (the
    two packagers compress the changelog at different levels)."""
    raw = subprocess.run(["dpkg-deb", "--fsys-tarfile", path], stdout=subprocess.PIPE, check=True).stdout
    tree = {}
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        for m in tf.getmembers():
            name = m.name[2:] if m.name.startswith("./") else m.name
            if name in ("", "."):
                continue
            owner = "%s:%s" % (m.uname or m.uid, m.gname or m.gid)
            data = tf.extractfile(m).read() if m.isfile() else b""
            if name.endswith(".gz"):
                data = gzip.decompress(data)
            tree[name] = (
                "dir" if m.isdir() else "file",
                oct(m.mode),
                owner.replace("0:0", "root:root"),
                hashlib.sha256(data).hexdigest(),
            )
    return tree


def deb_control(path, tmp):
    dest = os.path.join(tmp, os.path.basename(path) + ".control")
    subprocess.run(["dpkg-deb", "-e", path, dest], check=True)
    return {name: open(os.path.join(dest, name), "rb").read() for name in sorted(os.listdir(dest))}


RPM_FILES = "[%{FILENAMES}|%{FILEMODES:octal}|%{FILEUSERNAME}:%{FILEGROUPNAME}|%{FILEFLAGS:fflags}|%{FILEDIGESTS}\n]"


def rpm_files(path):
    return {row.split("|")[0]: row.split("|")[1:] for row in sh("rpm", "-qp", "--qf", RPM_FILES, path).splitlines()}


def rpm_requires(path):
    rows = sh("rpm", "-qp", "--qf", "[%{REQUIRENAME}|%{REQUIREFLAGS:deptype}|%{REQUIREVERSION}\n]", path)
    return sorted(tuple(r.split("|")) for r in rows.splitlines() if not r.startswith("rpmlib("))


# ---------------------------------------------------------------------------------------------- lint


def lintian_tags(deb):
    proc = subprocess.run(
        ["lintian", "--tag-display-limit", "0", deb], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return proc, sorted(set(re.findall(r"^[EWIXP]: \S+: (\S+)", proc.stdout, re.M)))


def test_fpm_deb_is_lintian_clean(fpm_dist, dist):
    """No error, and nothing nfpm's DEB does not also get (that is: initial-upload-closes-no-bugs)."""
    require_tools("lintian")
    proc, tags = lintian_tags(fpm_dist["deb"])
    assert "debian-changelog-file-missing-or-wrong-name" not in tags, proc.stdout
    assert not re.search(r"^E:", proc.stdout, re.M), proc.stdout
    assert tags == lintian_tags(dist["deb"])[1], proc.stdout
    assert tags == ["initial-upload-closes-no-bugs"], proc.stdout


def test_fpm_rpm_is_rpmlint_clean(fpm_dist, dist):
    require_tools("rpmlint")
    out = {}
    for name, paths in (("fpm", fpm_dist), ("nfpm", dist)):
        proc = subprocess.run(
            ["rpmlint", "-r", os.path.join(ROOT, "packaging", "rpmlintrc"), paths["rpm"]],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.returncode == 0 and " 0 errors" in proc.stdout, proc.stdout
        out[name] = sorted(set(re.findall(r": [EW]: (\S+)", proc.stdout)))
    assert out["fpm"] == out["nfpm"], out


# ---------------------------------------------------------------------------------- reproducibility


def test_fpm_rebuild_is_byte_identical(fpm, fpm_dist, tmp_path):
    """Another build, later (other wall clock, other fpm temp dirs, other staging dir) gives the same bytes."""
    time.sleep(1.1)
    again = build(tmp_path / "again", packager="fpm", extra_env={"FPM": fpm}, work=tmp_path / "elsewhere")
    for kind in ("zip", "deb", "rpm", "sums"):
        with open(fpm_dist[kind], "rb") as a, open(again[kind], "rb") as b:
            assert a.read() == b.read(), kind
    header = sh("rpm", "-qp", "--qf", "%{BUILDTIME} %{BUILDHOST}", fpm_dist["rpm"])
    assert header == "%d reproducible" % EPOCH
    mtimes = sh("rpm", "-qp", "--qf", "[%{FILEMTIMES}\n]", fpm_dist["rpm"]).split()
    assert set(mtimes) == {str(EPOCH)}, "rpmbuild must clamp the staged files' times"
    raw = subprocess.run(["dpkg-deb", "--fsys-tarfile", fpm_dist["deb"]], stdout=subprocess.PIPE, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        assert {m.mtime for m in tf.getmembers()} == {EPOCH}
        changelog = tf.extractfile("./" + CHANGELOG).read()
    assert changelog[4:8] == b"\0\0\0\0", "changelog.Debian.gz must carry no timestamp"


# ------------------------------------------------------------------------------------ same as nfpm


def test_fpm_and_nfpm_debs_agree(fpm_dist, dist, tmp_path):
    """Same files with the same contents, modes and owners; same conffiles, maintainer scripts, Depends."""
    fpm_tree, nfpm_tree = deb_tree(fpm_dist["deb"]), deb_tree(dist["deb"])
    assert sorted(fpm_tree) == sorted(nfpm_tree)
    for name in nfpm_tree:
        assert fpm_tree[name] == nfpm_tree[name], name
    assert CHANGELOG in fpm_tree and "usr/share/doc/vmsnapshot-linux/changelog.gz" not in fpm_tree
    fpm_ctl, nfpm_ctl = deb_control(fpm_dist["deb"], str(tmp_path)), deb_control(dist["deb"], str(tmp_path))
    assert sorted(fpm_ctl) == sorted(nfpm_ctl) == ["conffiles", "control", "md5sums", "prerm"]
    assert fpm_ctl["conffiles"] == nfpm_ctl["conffiles"]
    assert fpm_ctl["prerm"] == nfpm_ctl["prerm"]
    for field in (
        "Package",
        "Version",
        "Architecture",
        "Maintainer",
        "Depends",
        "Section",
        "Priority",
        "Homepage",
        "Description",
    ):
        assert sh("dpkg-deb", "-f", fpm_dist["deb"], field) == sh("dpkg-deb", "-f", dist["deb"], field), field
    fields = {line.split(":")[0] for line in fpm_ctl["control"].decode().splitlines() if not line.startswith(" ")}
    assert not fields & {"License", "Vendor"}, "fields dpkg does not know"


def test_fpm_deb_md5sums_match_its_files(fpm_dist, tmp_path):
    """The fix-up renamed the changelog in data.tar and md5sums together (dpkg --verify relies on it)."""
    sums = {}
    for line in deb_control(fpm_dist["deb"], str(tmp_path))["md5sums"].decode().splitlines():
        digest, path = line.split("  ", 1)
        sums[path] = digest
    raw = subprocess.run(["dpkg-deb", "--fsys-tarfile", fpm_dist["deb"]], stdout=subprocess.PIPE, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        files = {m.name[2:]: hashlib.md5(tf.extractfile(m).read()).hexdigest() for m in tf.getmembers() if m.isfile()}
    assert files == sums


def test_fpm_and_nfpm_rpms_agree(fpm_dist, dist):
    """Same files, modes, owners, digests, %config(noreplace), scriptlets and requirements; the two
    differences fpm 1.17 cannot avoid are pinned: no %license flag (fpm has no way to set it) and the
    /bin/sh requirement rpmbuild adds for the %preun scriptlet (nfpm does not declare it)."""
    fpm_files, nfpm_files = rpm_files(fpm_dist["rpm"]), rpm_files(dist["rpm"])
    assert sorted(fpm_files) == sorted(nfpm_files)
    license_file = "/usr/share/licenses/vmsnapshot-linux/LICENSE"
    for name, (mode, owner, flags, digest) in nfpm_files.items():
        if name == license_file:
            assert flags == "l" and fpm_files[name][2] == ""
            flags = ""
        assert fpm_files[name] == [mode, owner, flags, digest], name
    # the same %preun body (nfpm appends one blank line)
    assert (
        sh("rpm", "-qp", "--scripts", fpm_dist["rpm"]).rstrip() == sh("rpm", "-qp", "--scripts", dist["rpm"]).rstrip()
    )
    fpm_req, nfpm_req = rpm_requires(fpm_dist["rpm"]), rpm_requires(dist["rpm"])
    assert [r for r in fpm_req if r != ("/bin/sh", "preun,interp", "")] == nfpm_req
    assert ("python(abi)", "manual", "3.6") in fpm_req
    for tag in (
        "NAME",
        "VERSION",
        "RELEASE",
        "ARCH",
        "SUMMARY",
        "GROUP",
        "LICENSE",
        "URL",
        "VENDOR",
        "PACKAGER",
        "DESCRIPTION",
    ):
        query = "%{" + tag + "}"
        ours, nfpms = (sh("rpm", "-qp", "--qf", query, p["rpm"]).rstrip("\n") for p in (fpm_dist, dist))
        assert ours == nfpms, tag
    strip = lambda text: [line for line in text.splitlines() if line.strip()]  # noqa: E731
    assert strip(sh("rpm", "-qp", "--changelog", fpm_dist["rpm"])) == strip(
        sh("rpm", "-qp", "--changelog", dist["rpm"])
    )


def test_command_line_options_exist_in_the_real_fpm(fpm):
    """The option table the unit tests parse with is fpm 1.17's own."""
    helptext = sh(fpm, "--help")
    known = {o.replace("[no-]", "") for o in re.findall(r"(--(?:\[no-\])?[a-z0-9-]+|-[a-zA-Z])\b", helptext)}
    missing = (test_packaging_fpm.VALUE_OPTIONS | test_packaging_fpm.FLAGS) - known
    assert not missing, missing


def test_fixup_refuses_what_is_not_fpms_deb(tmp_path):
    bogus = tmp_path / "x.deb"
    bogus.write_bytes(b"not an archive")
    with pytest.raises(fpm_deb_fixup.DebFixupError):
        fpm_deb_fixup.fix(str(bogus), "vmsnapshot-linux")

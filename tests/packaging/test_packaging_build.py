"""Build, then inspect: the zip, the DEB and the RPM that `make dist` writes, and their reproducibility."""

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import zipfile

import buildinfo
import package_description as pd
import package_files
import pytest
from pkgtools import EPOCH, ROOT, build, copy_tree, describe, require_tools, runtime_has_main

VERSION = buildinfo.read_version()
IDENT = buildinfo.identity()


def sh(*cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 0, "%s: %s" % (cmd, proc.stderr)
    return proc.stdout


def expected_runtime_names():
    """What the zip holds: manifest, build stamp, every file under extension/{bin,vmsnapshot,etc}."""
    names = {"HandlerManifest.json", "vmsnapshot/_build.py"}
    for top in ("bin", "vmsnapshot", "etc"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, "extension", top)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            names.update(
                os.path.relpath(os.path.join(dirpath, n), os.path.join(ROOT, "extension"))
                for n in filenames
                if not n.endswith(".pyc") and n != "_build.py"
            )
    return names


def zip_time(epoch):
    """A zip entry's date_time for epoch: the format keeps even seconds only."""
    t = time.gmtime(epoch)
    return tuple(t[:5]) + (t[5] - t[5] % 2,)


# ------------------------------------------------------------------------------------------------ the zip


def test_zip_name_and_entries_are_the_runtime_only(dist):
    assert os.path.basename(dist["zip"]) == "%s.%s__%s.zip" % IDENT
    with zipfile.ZipFile(dist["zip"]) as zf:
        names = zf.namelist()
        assert names == sorted(names), "entries must be sorted"
        assert set(names) == expected_runtime_names()
        for info in zf.infolist():
            assert info.date_time == zip_time(max(EPOCH, buildinfo.ZIP_EPOCH))
            mode = info.external_attr >> 16
            assert mode in (0o100644, 0o100755), (info.filename, oct(mode))
        stamp = zf.read("vmsnapshot/_build.py").decode()
    assert "VERSION = %r" % VERSION in stamp and "PUBLISHER = %r" % IDENT.publisher in stamp


def test_zip_manifest_is_what_the_agent_reads(dist):
    with zipfile.ZipFile(dist["zip"]) as zf:
        manifest = json.loads(zf.read("HandlerManifest.json"))
        names = set(zf.namelist())
    assert isinstance(manifest, list) and manifest[0]["version"] == VERSION
    hm = manifest[0]["handlerManifest"]
    for key in ("install", "uninstall", "update", "enable", "disable"):
        script, arg = hm[key + "Command"].split()
        assert script in names and arg == key
    for key in ("rebootAfterInstall", "reportHeartbeat", "continueOnUpdateFailure", "supportsMultipleExtensions"):
        assert hm[key] is False


def test_zip_leaves_out_caches_and_leftovers(tmp_path):
    """Junk in a working tree (byte-code, editor files, a stale build stamp) never reaches the zip."""
    tree = copy_tree(str(tmp_path / "tree"))
    pkg = os.path.join(tree, "extension", "vmsnapshot")
    os.makedirs(os.path.join(pkg, "__pycache__"))
    for junk in ("__pycache__/identity.cpython-311.pyc", "identity.py~", ".identity.py.swp", "x.pyc", "_build.py"):
        with open(os.path.join(pkg, junk), "w") as f:
            f.write("PUBLISHER = 'stale'\n")
    out = build(tmp_path / "out", tree=tree)
    with zipfile.ZipFile(out["zip"]) as zf:
        names = zf.namelist()
        assert "stale" not in zf.read("vmsnapshot/_build.py").decode()
    assert not [n for n in names if "__pycache__" in n or n.endswith(("~", ".pyc", ".swp"))], names


# ------------------------------------------------------------------------------------------------ the DEB


def deb_members(path):
    """{name: TarInfo} of the DEB's data archive, read with dpkg-deb itself."""
    raw = subprocess.run(["dpkg-deb", "--fsys-tarfile", path], stdout=subprocess.PIPE, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        return {m.name[2:].rstrip("/"): m for m in tf.getmembers() if m.name not in ("./", ".")}


def deb_file(path, name):
    raw = subprocess.run(["dpkg-deb", "--fsys-tarfile", path], stdout=subprocess.PIPE, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        return tf.extractfile("./" + name).read()


def test_deb_control_fields(dist):
    require_tools("dpkg-deb")
    assert os.path.basename(dist["deb"]) == "vmsnapshot-linux_%s-1_all.deb" % VERSION
    field = lambda name: sh("dpkg-deb", "-f", dist["deb"], name).strip()  # noqa: E731
    assert field("Package") == "vmsnapshot-linux"
    assert field("Version") == VERSION + "-1"
    assert field("Architecture") == "all"
    assert field("Depends") == "python3 (>= 3.6), openssl"
    assert field("Section") == "admin"
    info = sh("dpkg-deb", "-I", dist["deb"])
    assert "prerm" in info and "postinst" not in info and "preinst" not in info


def test_deb_contents_layout_modes_and_times(dist):
    require_tools("dpkg-deb")
    members = deb_members(dist["deb"])
    lib = "usr/lib/vmsnapshot-linux/%s/" % VERSION
    shipped = {n[len(lib) :] for n, m in members.items() if n.startswith(lib) and m.isfile()}
    assert shipped == expected_runtime_names(), "the library directory is the zip's tree"
    bin_ = members["usr/bin/vmsnapshot"]
    assert bin_.mode == 0o755 and bin_.uid == 0 and bin_.gid == 0
    assert members["etc/azure/vmsnapshot/hooks.d"].isdir()
    for needed in (
        "usr/share/doc/vmsnapshot-linux/copyright",
        "usr/share/man/man8/vmsnapshot.8.gz",
        "usr/share/doc/vmsnapshot-linux/changelog.Debian.gz",
    ):
        assert needed in members, needed
    for name, m in members.items():
        assert m.mtime == EPOCH, (name, m.mtime)
        assert m.uid == 0 and m.gid == 0, name
        assert not (m.mode & 0o022), (name, oct(m.mode))  # nothing group/world writable


def test_deb_conffiles_are_the_default_configuration(dist, tmp_path):
    require_tools("dpkg-deb")
    subprocess.run(["dpkg-deb", "-e", dist["deb"], str(tmp_path / "control")], check=True)
    conffiles_path = tmp_path / "control" / "conffiles"
    conffiles = conffiles_path.read_text().split() if conffiles_path.exists() else []
    etc = os.path.join(ROOT, "extension", "etc")
    expected = []
    for dirpath, _, filenames in os.walk(etc):
        expected += ["/etc/azure/" + os.path.relpath(os.path.join(dirpath, n), etc) for n in filenames]
    default = package_files.runtime_default_config(os.path.join(ROOT, "extension"))
    if default and default[0] not in expected:  # what the runtime's install writes, shipped as is
        expected.append(default[0])
        shipped = subprocess.run(["dpkg-deb", "--fsys-tarfile", dist["deb"]], stdout=subprocess.PIPE).stdout
        with tarfile.open(fileobj=io.BytesIO(shipped)) as tf:
            assert tf.extractfile("." + default[0]).read().decode() == default[1]
    assert sorted(conffiles) == sorted(expected)
    prerm = (tmp_path / "control" / "prerm").read_text()
    assert "__pycache__" in prerm and "systemctl" not in prerm and "service " not in prerm


def test_deb_changelog_starts_with_this_version(dist):
    require_tools("dpkg-deb")
    data = deb_file(dist["deb"], "usr/share/doc/vmsnapshot-linux/changelog.Debian.gz")
    assert data[4:8] == b"\0\0\0\0", "gzip header mtime must be 0"
    first = gzip.decompress(data).decode().splitlines()[0]
    assert first == "vmsnapshot-linux (%s-1) unstable; urgency=medium" % VERSION


# ------------------------------------------------------------------------------------------------ the RPM


def rpm_query(path, fmt):
    return sh("rpm", "-qp", "--qf", fmt, path)


def test_rpm_header(dist):
    require_tools("rpm")
    assert os.path.basename(dist["rpm"]) == "vmsnapshot-linux-%s-1.noarch.rpm" % VERSION
    head = rpm_query(dist["rpm"], "%{NAME}|%{VERSION}|%{RELEASE}|%{ARCH}|%{BUILDTIME}|%{BUILDHOST}|%{LICENSE}")
    assert head == "vmsnapshot-linux|%s|1|noarch|%d|reproducible|MIT" % (VERSION, EPOCH)
    requires = sh("rpm", "-qp", "--requires", dist["rpm"]).splitlines()
    assert "python(abi) >= 3.6" in requires and "openssl" in requires
    info = sh("rpm", "-qpi", dist["rpm"])
    assert "Summary     : Azure VM snapshot" in info


def test_rpm_files_flags_and_scripts(dist):
    require_tools("rpm")
    rows = rpm_query(
        dist["rpm"],
        "[%{FILENAMES}|%{FILEMODES:perms}|%{FILEUSERNAME}|%{FILEGROUPNAME}|%{FILEFLAGS:fflags}|%{FILEMTIMES}\n]",
    ).splitlines()
    files = {}
    for row in rows:
        name, perms, user, group, flags, mtime = row.split("|")
        files[name] = (perms, flags)
        assert (user, group) == ("root", "root") and int(mtime) == EPOCH, row
    lib = "/usr/lib/vmsnapshot-linux/%s/" % VERSION
    shipped = {n[len(lib) :] for n, (perms, _) in files.items() if n.startswith(lib) and perms.startswith("-")}
    assert shipped == expected_runtime_names()
    assert files["/usr/bin/vmsnapshot"][0] == "-rwxr-xr-x"
    assert files["/etc/azure/vmsnapshot/hooks.d"][0].startswith("d")
    assert files["/usr/share/licenses/vmsnapshot-linux/LICENSE"][1] == "l"
    assert files["/usr/share/man/man8/vmsnapshot.8.gz"][1] == "d"
    # The package owns its directories, so `rpm -e` removes them.
    for owned in ("/usr/lib/vmsnapshot-linux", lib.rstrip("/"), "/etc/azure/vmsnapshot"):
        assert owned in files, owned
    for name, (_, flags) in files.items():
        if name.startswith("/etc/azure/") and not files[name][0].startswith("d"):
            assert flags == "cn", "%s must be %%config(noreplace), has %r" % (name, flags)
    scripts = sh("rpm", "-qp", "--scripts", dist["rpm"])
    assert scripts.startswith("preuninstall scriptlet") and "__pycache__" in scripts
    assert "postinstall" not in scripts and "systemctl" not in scripts
    changelog = sh("rpm", "-qp", "--changelog", dist["rpm"]).splitlines()
    assert changelog[0].endswith("- %s-1" % VERSION)


def test_deb_and_rpm_ship_the_same_files(dist):
    """Both families install the same files; only the license/changelog documents differ by convention."""
    require_tools("rpm", "dpkg-deb")
    deb = {"/" + n for n, m in deb_members(dist["deb"]).items() if m.isfile()}
    rows = rpm_query(dist["rpm"], "[%{FILENAMES} %{FILEMODES:perms}\n]").splitlines()
    rpm = {row.split()[0] for row in rows if row.split()[1].startswith("-")}
    doc = "/usr/share/doc/vmsnapshot-linux/"
    assert deb - rpm == {doc + "copyright", doc + "changelog.Debian.gz", pd.LINTIAN_OVERRIDES}
    assert rpm - deb == {"/usr/share/licenses/vmsnapshot-linux/LICENSE"}


# ------------------------------------------------------------------------------------ reproducibility


def test_two_builds_are_byte_identical(dist, tmp_path):
    """A second build (fresh staging tree, different file times) gives the same bytes and SHA256SUMS."""
    again = build(tmp_path / "again")
    for kind in ("zip", "deb", "rpm", "sums"):
        with open(dist[kind], "rb") as a, open(again[kind], "rb") as b:
            assert hashlib.sha256(a.read()).digest() == hashlib.sha256(b.read()).digest(), kind
    sums = open(dist["sums"]).read().splitlines()
    names = sorted(os.path.basename(dist[k]) for k in ("zip", "deb", "rpm"))
    assert [line.split("  ")[1] for line in sums] == names
    check = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=os.path.dirname(dist["sums"]), stdout=subprocess.PIPE, text=True
    )
    assert check.returncode == 0, check.stdout


def test_compressed_members_carry_no_build_time(dist):
    """gzip headers hold mtime 0 and ar headers the epoch, so builds in different seconds agree."""
    require_tools("ar")
    for member in ("control.tar.gz", "data.tar.gz"):
        raw = subprocess.run(["ar", "p", dist["deb"], member], stdout=subprocess.PIPE, check=True).stdout
        head = raw[:10]
        assert head[:3] == b"\x1f\x8b\x08" and head[4:8] == b"\0\0\0\0", (member, head)
    listing = subprocess.run(
        ["ar", "tv", dist["deb"]], stdout=subprocess.PIPE, text=True, check=True, env=dict(os.environ, TZ="UTC")
    ).stdout  # ar prints local time
    stamp = time.strftime("%b %e %H:%M %Y", time.gmtime(EPOCH))
    assert all(" ".join(stamp.split()) in " ".join(line.split()) for line in listing.splitlines()), listing
    with open(dist["rpm"], "rb") as f:
        data = f.read()
    payload = data.find(b"\x1f\x8b\x08")
    assert payload > 0 and data[payload + 4 : payload + 8] == b"\0\0\0\0"


def test_source_date_epoch_sets_every_timestamp(tmp_path):
    require_tools("rpm", "dpkg-deb")
    epoch = 1700000000
    out = build(tmp_path / "out", extra_env={"SOURCE_DATE_EPOCH": str(epoch)})
    assert rpm_query(out["rpm"], "%{BUILDTIME}") == str(epoch)
    assert {m.mtime for m in deb_members(out["deb"]).values()} == {epoch}
    with zipfile.ZipFile(out["zip"]) as zf:
        assert {i.date_time for i in zf.infolist()} == {zip_time(epoch)}


def test_bad_source_date_epoch_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "packaging", "make_dist.py"), "--out", str(tmp_path / "o")],
        env=dict(os.environ, SOURCE_DATE_EPOCH="yesterday"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "SOURCE_DATE_EPOCH='yesterday'" in proc.stderr


def test_one_version_source():
    """The zip, manifest, packages and the templates' typeHandlerVersion all derive from VERSION."""
    desc = describe()
    assert desc["version"] == VERSION
    assert buildinfo.type_handler_version() == ".".join(VERSION.split(".")[:2])
    assert desc["changelog"][0]["version"] == VERSION
    with open(os.path.join(ROOT, "packaging", "changelog.json")) as f:
        top = json.load(f)[0]["version"]
    assert top == VERSION, "VERSION changed: add its entry to packaging/changelog.json"
    with pytest.raises(ValueError, match="digits and dots"):
        buildinfo.identity("1.9.0-rc1")


# ------------------------------------------------------------------------------------------------ lint


def test_lintian_reports_no_errors(dist):
    require_tools("lintian")
    proc = subprocess.run(
        ["lintian", "--fail-on", "error", "--tag-display-limit", "0", dist["deb"]],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout
    assert not [line for line in proc.stdout.splitlines() if line.startswith("E:")], proc.stdout


def test_rpmlint_reports_no_errors(dist):
    require_tools("rpmlint")
    proc = subprocess.run(
        ["rpmlint", "-r", os.path.join(ROOT, "packaging", "rpmlintrc"), dist["rpm"]],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and " 0 errors" in proc.stdout, proc.stdout


@pytest.mark.parametrize("name", ["rpmlintrc", "lintian-overrides"])
def test_every_lint_filter_says_why(name):
    with open(os.path.join(ROOT, "packaging", name)) as f:
        lines = f.read().splitlines()
    rules = [i for i, line in enumerate(lines) if line.strip() and not line.startswith("#")]
    assert rules
    for i in rules:
        assert i > 0 and lines[i - 1].startswith("#"), "%s: rule without a comment: %s" % (name, lines[i])


def test_description_paths(dist):
    desc = describe()
    assert pd.lib_dir(VERSION) == "/usr/lib/vmsnapshot-linux/" + VERSION
    assert {e["dst"] for e in desc["contents"]} >= {pd.ENTRY_POINT, pd.HOOKS_DIR, pd.MAN_PAGE}


def test_man_page_renders_cleanly_and_carries_the_runtime_help(dist):
    require_tools("dpkg-deb", "groff")
    page = gzip.decompress(deb_file(dist["deb"], "usr/share/man/man8/vmsnapshot.8.gz")).decode()
    assert "@" not in page.replace("vmsnapshot-kit@", "")
    proc = subprocess.run(
        ["groff", "-man", "-ww", "-z"], input=page, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    if not runtime_has_main():
        assert "printed no command summary" in page
        return
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "extension"))
    help_ = subprocess.run(
        [sys.executable, "-B", "-m", "vmsnapshot", "--help"], env=env, stdout=subprocess.PIPE, text=True, check=True
    ).stdout
    for line in help_.splitlines():
        if line.strip():
            assert line.replace("\\", "\\e") in page, line

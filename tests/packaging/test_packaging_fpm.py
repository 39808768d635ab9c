"""`make dist PACKAGER=fpm`, unit level: the fpm command lines generated from the one package description.

These need no fpm: they check the argument lists against the description and the changelogs against what
nfpm built, and make_dist.py's one-line errors. The packages the real fpm builds from these command lines
are checked in test_packaging_fpm_build.py (lintian, rpmlint, reproducibility, same content as nfpm's).
"""

import gzip
import io
import os
import shlex
import subprocess
import sys
import tarfile

import buildinfo
import fpm_command
import make_dist
import package_description as pd
import pytest
from pkgtools import EPOCH, ROOT, build, require_tools

VERSION = buildinfo.read_version()

# Options of fpm 1.17 that take a value (lib/fpm/command.rb and lib/fpm/package/{deb,rpm}.rb); flags
# take none. Anything else in a generated command line is a mistake (test_packaging_fpm_build.py checks
# this table against the real `fpm --help`).
VALUE_OPTIONS = {
    "-s",
    "-t",
    "-C",
    "-p",
    "-n",
    "-v",
    "--iteration",
    "-a",
    "--license",
    "--vendor",
    "--maintainer",
    "--url",
    "--category",
    "--description",
    "--depends",
    "--config-files",
    "--directories",
    "--before-remove",
    "--source-date-epoch-default",
    "--deb-priority",
    "--deb-user",
    "--deb-group",
    "--deb-changelog",
    "--deb-compression",
    "--rpm-os",
    "--rpm-summary",
    "--rpm-user",
    "--rpm-group",
    "--rpm-changelog",
    "--rpm-compression",
    "--rpm-attr",
    "--rpm-digest",
    "--rpm-rpmbuild-define",
}
FLAGS = {"-f", "--deb-no-default-config-files"}


def parse(argv):
    """fpm argv -> ({option: [values]}, [inputs]); fails on an unknown option."""
    opts, inputs, i = {}, [], 1
    while i < len(argv):
        arg = argv[i]
        if arg in VALUE_OPTIONS:
            opts.setdefault(arg, []).append(argv[i + 1])
            i += 2
        elif arg in FLAGS:
            opts.setdefault(arg, []).append(True)
            i += 1
        else:
            assert not arg.startswith("-"), "unknown fpm option %r" % arg
            inputs.append(arg)
            i += 1
    return opts, inputs


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    desc = pd.describe(buildinfo.identity(), EPOCH)
    work = str(tmp_path_factory.mktemp("fpm-stage"))
    root, _, meta = make_dist.stage(desc, work)
    return desc, root, meta


@pytest.mark.parametrize("family", ["deb", "rpm"])
def test_command_line_carries_the_description(staged, family):
    desc, root, meta = staged
    argv = fpm_command.argv(desc, family, root, meta, "/out/pkg")
    opts, inputs = parse(argv)
    one = lambda name: opts[name][-1]  # noqa: E731
    assert (one("-s"), one("-t"), one("-C"), one("-p")) == ("dir", family, root, "/out/pkg")
    assert (one("-n"), one("-v"), one("--iteration"), one("-a")) == ("vmsnapshot-linux", VERSION, "1", "all")
    assert one("--source-date-epoch-default") == str(EPOCH)
    # DEB: fpm's neutral "name op version", which fpm writes back as "python3 (>= 3.6)"; RPM: verbatim,
    # so the capability keeps its parentheses: "python(abi) >= 3.6", never "pythonabi".
    expected = {"deb": ["python3 >= 3.6", "openssl"], "rpm": ["python(abi) >= 3.6", "openssl"]}[family]
    assert opts["--depends"] == expected
    assert one("--category") == desc["section" if family == "deb" else "rpm_group"]
    # dpkg knows no Vendor field (lintian unknown-field), so the DEB gets an empty one, which fpm leaves out
    assert one("--vendor") == ("" if family == "deb" else desc["vendor"])
    configs = sorted(e["dst"] for e in desc["contents"] if e["kind"] == "config")
    assert sorted(opts.get("--config-files", [])) == configs
    assert open(one("--before-remove"), "rb").read() == desc["scripts"]["preremove"]
    # Every input exists in the staged root, and together they bring every file of this family.
    for path in inputs:
        assert os.path.lexists(os.path.join(root, path)), path
    wanted = {e["dst"].lstrip("/") for e in desc["contents"] if e["packager"] in (None, family) and e["kind"] != "dir"}
    covered = set()
    for path in inputs:
        full = os.path.join(root, path)
        if os.path.isdir(full):
            covered |= {os.path.relpath(os.path.join(d, n), root) for d, _, ns in os.walk(full) for n in ns}
        else:
            covered.add(path)
    assert covered == wanted
    assert pd.HOOKS_DIR.lstrip("/") in inputs, "the empty hook directory must be an input of its own"
    other = {"deb": "/usr/share/licenses/", "rpm": "/usr/share/doc/vmsnapshot-linux/copyright"}[family]
    assert not [p for p in inputs if ("/" + p).startswith(other)]


def test_staged_modes_match_the_description(staged):
    desc, root, _ = staged
    for e in desc["contents"]:
        st = os.stat(os.path.join(root, e["dst"].lstrip("/")))
        assert st.st_mode & 0o7777 == e["mode"], e["dst"]


def test_rpm_command_owns_directories_and_sets_special_modes(staged):
    desc, root, meta = staged
    opts, _ = parse(fpm_command.argv(desc, "rpm", root, meta, "/out/pkg"))
    dirs = sorted(e["dst"] for e in desc["contents"] if e["kind"] == "dir" and e["packager"] in (None, "rpm"))
    assert sorted(opts["--directories"]) == dirs
    special = sorted(
        "%o,root,root:%s" % (e["mode"], e["dst"])
        for e in desc["contents"]
        if e["packager"] in (None, "rpm") and e["mode"] not in (0o644, 0o755)
    )
    assert sorted(opts.get("--rpm-attr", [])) == special
    assert opts["--rpm-changelog"] and opts["--rpm-summary"] == [desc["summary"]]
    # reproducible: build time and file times from SOURCE_DATE_EPOCH, a fixed build host; sha256 digests
    assert sorted(opts["--rpm-rpmbuild-define"]) == sorted(fpm_command.RPMBUILD_DEFINES)
    assert "_buildhost reproducible" in opts["--rpm-rpmbuild-define"]
    assert opts["--rpm-digest"] == ["sha256"]


def test_fpm_changelogs_say_what_nfpm_wrote(staged, tmp_path):
    """The changelog fpm would ship is the one nfpm shipped, entry for entry."""
    require_tools("dpkg-deb", "rpm")
    desc, root, meta = staged
    out = build(tmp_path / "out")
    raw = subprocess.run(["dpkg-deb", "--fsys-tarfile", out["deb"]], stdout=subprocess.PIPE, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        member = tf.extractfile("./usr/share/doc/vmsnapshot-linux/changelog.Debian.gz")
        nfpm_deb = gzip.decompress(member.read())
    ours_deb = open(meta["debian_changelog"]).read()
    strip = lambda text: [line.strip() for line in text.splitlines() if line.strip()]  # noqa: E731
    assert strip(nfpm_deb.decode()) == strip(ours_deb)
    nfpm_rpm = subprocess.run(
        ["rpm", "-qp", "--changelog", out["rpm"]], stdout=subprocess.PIPE, text=True, check=True
    ).stdout
    assert strip(nfpm_rpm) == strip(open(meta["rpm_changelog"]).read())


def test_missing_packager_is_a_clear_error(tmp_path):
    env = dict(os.environ, PATH="/usr/bin:/bin", SOURCE_DATE_EPOCH=str(EPOCH))
    env.pop("FPM", None)  # `make test` exports the vendored fpm's path
    python = "/usr/bin/python3"  # an interpreter with no fpm beside it
    proc = subprocess.run(
        [python, os.path.join(ROOT, "packaging", "make_dist.py"), "--out", str(tmp_path / "o"), "--packager", "fpm"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "fpm not found" in proc.stderr


def test_fpm_without_ruby_is_a_one_line_error(tmp_path):
    """An fpm that cannot load its Ruby libraries (a non-root machine without them) stops the build
    before anything is staged, with one line naming the packages, never a Ruby backtrace."""
    broken = tmp_path / "fpm"
    broken.write_text(
        '#!/bin/sh\necho "<internal:kernel_require>: cannot load such file -- clamp (LoadError)" >&2\nexit 1\n'
    )
    broken.chmod(0o755)
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(EPOCH), FPM=str(broken))
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "packaging", "make_dist.py"),
            "--out",
            str(tmp_path / "o"),
            "--work",
            str(tmp_path / "w"),
            "--packager",
            "fpm",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "cannot load such file -- clamp" in proc.stderr and "ruby-clamp" in proc.stderr
    assert not os.path.exists(str(tmp_path / "w")) and not os.path.exists(str(tmp_path / "o"))


def test_dry_run_prints_the_fpm_commands(tmp_path):
    """--dry-run is how a machine without fpm shows what PACKAGER=fpm would run."""
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(EPOCH))
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "packaging", "make_dist.py"),
            "--out",
            str(tmp_path / "o"),
            "--work",
            str(tmp_path / "w"),
            "--packager",
            "fpm",
            "--dry-run",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    commands = [shlex.split(c) for c in proc.stdout.split("\nfpm ")]
    commands = [c if c[0] == "fpm" else ["fpm"] + c for c in commands if c]
    families = [c[c.index("-t") + 1] for c in commands if "-t" in c]
    assert families == ["deb", "rpm"]
    assert not [n for n in os.listdir(str(tmp_path / "o")) if n.endswith((".deb", ".rpm"))]

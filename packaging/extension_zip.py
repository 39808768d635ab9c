"""Build the extension zip the guest agent downloads: HandlerManifest.json at the root, runtime files only.

Reproducible: entries sorted, every timestamp from SOURCE_DATE_EPOCH (default: the last commit's time),
fixed modes. Identity (publisher, type, version) comes from the repository's VERSION file, with the
build-time overrides VMSNAPSHOT_PUBLISHER and VMSNAPSHOT_TYPE; it is stamped into vmsnapshot/_build.py.

usage: python packaging/extension_zip.py [--out DIR] [--version V]
"""

import argparse
import json
import os
import subprocess
import sys
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXTENSION = os.path.join(ROOT, "extension")
RUNTIME_DIRS = ("bin", "vmsnapshot", "etc")
DEFAULT_PUBLISHER = "Microsoft.RecoveryServices"
DEFAULT_TYPE = "VMSnapshotLinux"


def identity(version=None):
    """(publisher, type, version) for this build."""
    if version is None:
        with open(os.path.join(ROOT, "VERSION")) as f:
            version = f.read().strip()
    return (os.environ.get("VMSNAPSHOT_PUBLISHER") or DEFAULT_PUBLISHER,
            os.environ.get("VMSNAPSHOT_TYPE") or DEFAULT_TYPE, version)


def source_date_epoch():
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        return int(env)
    try:
        out = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%ct"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        return int(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return 315532800  # 1980-01-01, the zip format's epoch


def handler_manifest(publisher, ext_type, version):
    """The manifest as the agent reads it: a JSON array, real booleans, all five commands."""
    cmd = "bin/handle.sh "
    return [{
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
    }]


def build_stamp(publisher, ext_type, version):
    return ('"""Stamped by packaging/extension_zip.py; do not edit."""\n'
            "PUBLISHER = %r\nTYPE = %r\nVERSION = %r\n" % (publisher, ext_type, version))


def runtime_files():
    """(archive name, absolute path) of every shipped runtime file, sorted."""
    out = []
    for top in RUNTIME_DIRS:
        base = os.path.join(EXTENSION, top)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in filenames:
                if name.endswith((".pyc", ".pyo", ".swp", "~")) or name == "_build.py":
                    continue
                path = os.path.join(dirpath, name)
                out.append((os.path.relpath(path, EXTENSION), path))
    return sorted(out)


def zip_name(publisher, ext_type, version):
    return "%s.%s__%s.zip" % (publisher, ext_type, version)


def build_zip(out_dir, version=None):
    publisher, ext_type, version = identity(version)
    os.makedirs(out_dir, exist_ok=True)
    stamp = time.gmtime(max(source_date_epoch(), 315532800))[:6]
    entries = [("HandlerManifest.json",
                (json.dumps(handler_manifest(publisher, ext_type, version), indent=2) + "\n").encode(), 0o644),
               ("vmsnapshot/_build.py", build_stamp(publisher, ext_type, version).encode(), 0o644)]
    for arcname, path in runtime_files():
        with open(path, "rb") as f:
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            entries.append((arcname, f.read(), mode))
    entries.sort(key=lambda e: e[0])
    target = os.path.join(out_dir, zip_name(publisher, ext_type, version))
    tmp = target + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data, mode in entries:
            info = zipfile.ZipInfo(arcname, date_time=stamp)
            info.external_attr = (0o100000 | mode) << 16
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    os.replace(tmp, target)
    return target


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "dist"))
    ap.add_argument("--version", default=None, help="override VERSION (tests build upgrade zips)")
    args = ap.parse_args(argv)
    print(build_zip(args.out, args.version))


if __name__ == "__main__":
    sys.exit(main())

"""One source for what every artefact is: identity, version and timestamp of a build.

The extension zip, the DEB, the RPM and their descriptions all read these functions, so the version in a
zip name, a manifest, a package and a changelog can never disagree.

- Version: the repository's top-level ``VERSION`` file (a test may pass another one to build an upgrade).
- Publisher and type: the runtime's defaults (``extension/vmsnapshot/identity.py``), overridable at build
  time with ``VMSNAPSHOT_PUBLISHER`` / ``VMSNAPSHOT_TYPE`` for an organisation that publishes its own build.
- Timestamp: ``SOURCE_DATE_EPOCH`` (reproducible-builds.org), defaulting to the last commit's time, so two
  builds of one commit are byte-identical.
"""

import ast
import os
import re
import subprocess
from collections import namedtuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXTENSION = os.path.join(ROOT, "extension")
VERSION_FILE = os.path.join(ROOT, "VERSION")
ZIP_EPOCH = 315532800  # 1980-01-01: the earliest time a zip entry can carry

Identity = namedtuple("Identity", "publisher type version")

_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(\.\d+)?$")


def runtime_defaults():
    """(publisher, type) as the runtime defines them (DEFAULT_PUBLISHER, DEFAULT_TYPE in
    extension/vmsnapshot/identity.py), read from its syntax tree: the runtime is neither imported nor run."""
    path = os.path.join(EXTENSION, "vmsnapshot", "identity.py")
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    found = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value, ast.Constant)
    }
    return found["DEFAULT_PUBLISHER"], found["DEFAULT_TYPE"]


def read_version():
    with open(VERSION_FILE) as f:
        return f.read().strip()


def check_version(version):
    """A version every format accepts: digits and dots only (no '-', which RPM forbids)."""
    if not _VERSION_RE.match(version):
        raise ValueError("version %r is not N.N.N or N.N.N.N (digits and dots only)" % version)
    return version


def identity(version=None):
    """Identity(publisher, type, version) for this build."""
    default_publisher, default_type = runtime_defaults()
    return Identity(
        os.environ.get("VMSNAPSHOT_PUBLISHER") or default_publisher,
        os.environ.get("VMSNAPSHOT_TYPE") or default_type,
        check_version(version or read_version()),
    )


def type_handler_version(version=None):
    """major.minor, what ARM templates put in typeHandlerVersion."""
    return ".".join(check_version(version or read_version()).split(".")[:2])


def source_date_epoch():
    """SOURCE_DATE_EPOCH if set, else the last commit's time, else the zip epoch (no git, e.g. a tarball)."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        try:
            return int(env)
        except ValueError:
            raise ValueError("SOURCE_DATE_EPOCH=%r is not an integer number of seconds" % env) from None
    try:
        out = subprocess.run(
            ["git", "-C", ROOT, "log", "-1", "--format=%ct"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        return int(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return ZIP_EPOCH


def build_stamp(ident):
    """vmsnapshot/_build.py: the identity frozen into every built copy of the runtime."""
    return '"""Stamped by packaging/buildinfo.py; do not edit."""\nPUBLISHER = %r\nTYPE = %r\nVERSION = %r\n' % (
        ident.publisher,
        ident.type,
        ident.version,
    )

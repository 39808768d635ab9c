"""Who this extension is: publisher, type and version, from one source.

A build stamps `_build.py` next to this file (see packaging/extension_zip.py) from the repository's
VERSION file and the optional build-time overrides VMSNAPSHOT_PUBLISHER / VMSNAPSHOT_TYPE, so an
organisation can publish under its own publisher. A source checkout reads VERSION directly.
"""

import os

DEFAULT_PUBLISHER = "Microsoft.RecoveryServices"
DEFAULT_TYPE = "VMSnapshotLinux"

try:  # pragma: no cover - present only in built artefacts
    from ._build import PUBLISHER, TYPE, VERSION  # type: ignore
except ImportError:
    PUBLISHER, TYPE = DEFAULT_PUBLISHER, DEFAULT_TYPE
    _version_file = os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "VERSION"
    )
    try:
        with open(_version_file) as _f:
            VERSION = _f.read().strip()
    except (IOError, OSError):
        VERSION = "0.0.0"

HANDLER_NAME = "%s.%s" % (PUBLISHER, TYPE)

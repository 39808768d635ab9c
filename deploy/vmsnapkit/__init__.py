"""vmsnapkit: enable Azure VM backup and verify VMSnapshotLinux extension and backup state across fleets."""

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("vmsnapshot-kit")
except PackageNotFoundError:  # running from a source tree without installation
    import os as _os

    _here = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "..", "..", "VERSION")
    try:
        with open(_here) as _f:
            __version__ = _f.read().strip()
    except OSError:
        __version__ = "0.0.0"

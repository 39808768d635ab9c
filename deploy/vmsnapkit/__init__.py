"""vmsnapkit: enable Azure VM backup and verify VMSnapshotLinux extension and backup state across fleets."""

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("vmsnapshot-kit")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

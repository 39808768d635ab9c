"""Atomic file writes with explicit modes, so the agent never reads a half-written status."""

import errno
import os


def atomic_write(path, data, mode=0o600):
    """Write `data` (bytes or str) to `path` via a temp file in the same directory, fsync, rename."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = os.path.dirname(path) or "."
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.rename(tmp, path)
    except OSError:
        _unlink_quietly(tmp)
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def ensure_dir(path, mode=0o700):
    try:
        os.makedirs(path, mode)
    except OSError as e:
        if e.errno != errno.EEXIST or not os.path.isdir(path):
            raise
    return path


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def remove(path):
    _unlink_quietly(path)

"""File writes that cannot be redirected: atomic, explicit modes, never through a symlink.

Every file the runtime writes is opened with O_NOFOLLOW (temp files also with O_EXCL), so a symlink
planted in a writable directory cannot make root write somewhere else. `unsafe_directory()` is the
ownership rule for directories root writes in.
"""

import errno
import os
import stat

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _temp_name(path):
    return "%s.tmp.%d.%s" % (path, os.getpid(), os.urandom(4).hex())


def atomic_write(path, data, mode=0o600):
    """Write `data` (bytes or str) to `path` via a fresh temp file in the same directory, fsync, rename."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = os.path.dirname(path) or "."
    tmp = _temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | CLOEXEC, mode)
    try:
        _write_all(fd, data)
        os.fchmod(fd, mode)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(tmp)
        raise
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


def rewrite_in_place(path, data):
    """Overwrite an existing regular file's bytes without allocating a new file (a full file system):
    the blocks it already holds are reused; the file is cut to the new length."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | NOFOLLOW | CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        _write_all(fd, data)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    finally:
        os.close(fd)


def open_append(path, mode=0o600):
    """A file opened for appending, never through a symlink, created with `mode` and kept at it."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | NOFOLLOW | CLOEXEC, mode)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def ensure_dir(path, mode=0o700):
    try:
        os.makedirs(path, mode)
    except OSError as e:
        if e.errno != errno.EEXIST or not os.path.isdir(path):
            raise
    return path


def unsafe_directory(path):
    """Why root must not write in `path`, or None: `path` (or its nearest existing ancestor) and every
    directory above it up to / must be owned by root and not writable by group or others (a sticky
    /tmp is not enough: another user can plant files there)."""
    current = os.path.abspath(path)
    while not os.path.lexists(current) and current != "/":
        current = os.path.dirname(current)
    while True:
        try:
            st = os.lstat(current)
        except OSError as e:
            return "%s cannot be checked: %s" % (current, e.strerror or e)
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(current)
            reason = unsafe_directory(real)
            if reason:
                return reason
        elif not stat.S_ISDIR(st.st_mode):
            return "%s is not a directory" % current
        elif st.st_uid != 0:
            return "%s is owned by uid %d, not root" % (current, st.st_uid)
        elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return "%s is writable by group or others (mode %o)" % (current, stat.S_IMODE(st.st_mode))
        if current == "/":
            return None
        current = os.path.dirname(current)


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def remove(path):
    _unlink_quietly(path)

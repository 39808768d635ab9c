"""Flushing file systems before a freeze, so the flush happens outside the frozen window."""

import ctypes
import logging
import os
import threading

log = logging.getLogger(__name__)


def _load_syncfs():
    # CDLL(None): the symbols already loaded into this process, libc among them. Not
    # ctypes.util.find_library, which runs ldconfig/gcc subprocesses.
    fn = None
    for name in (None, "libc.so.6"):
        try:
            fn = ctypes.CDLL(name, use_errno=True).syncfs
            break
        except (OSError, AttributeError):
            continue
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_syncfs = _load_syncfs()


def syncfs_all(mountpoints, timeout_s=None):
    """Flush dirty data of each filesystem before freezing, so the flush happens outside the window.

    Uses syncfs(2) per filesystem; falls back to one global sync() where syncfs is unavailable.
    With timeout_s, waits at most that long (the flush continues in the background) and returns False
    if it did not finish. Returns True when every flush completed.
    """

    def run():
        if _syncfs is None:
            os.sync()
            return
        for mp in mountpoints:
            try:
                fd = os.open(mp, os.O_RDONLY)
            except OSError as e:
                log.warning("syncfs: cannot open %s: %s", mp, e)
                continue
            try:
                if _syncfs(fd) != 0:
                    log.warning("syncfs(%s) failed: %s", mp, os.strerror(ctypes.get_errno()))
            finally:
                os.close(fd)

    if timeout_s is None:
        run()
        return True
    t = threading.Thread(target=run, name="syncfs", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        log.warning("syncfs of %d filesystems still running after %.1f s", len(mountpoints), timeout_s)
        return False
    return True

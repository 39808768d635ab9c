"""A scratch directory whose whole chain up to `/` the script runner trusts.

The runtime refuses a script, hook directory or script config unless every directory from it up to `/`
is owned by root (or the test's owner_uid) and not writable by group or others; a sticky /tmp is not
enough. Tests that run scripts therefore put them here instead of under pytest's tmp_path.
"""

import atexit
import hashlib
import os
import shutil
import stat
import tempfile


def _chain_trusted(path, uid):
    path = os.path.abspath(path)
    while True:
        st = os.stat(path)
        if st.st_uid not in (0, uid) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return False
        if path == "/":
            return True
        path = os.path.dirname(path)


def base_candidates():
    uid = os.geteuid()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for base in ("/run", os.path.expanduser("~"), here):
        if os.path.isdir(base) and os.access(base, os.W_OK) and _chain_trusted(base, uid):
            yield base


class TrustedDir(object):
    """`with TrustedDir() as path:` a fresh 0755 directory in a trusted chain, removed afterwards."""

    def __init__(self, prefix="vmsnapshot-test-"):
        self.prefix = prefix
        self.path = None

    def __enter__(self):
        base = next(base_candidates(), None)
        if base is None:
            raise RuntimeError(
                "no writable directory whose chain up to / is trusted (root-owned, not group/world-writable)"
            )
        self.path = tempfile.mkdtemp(prefix=self.prefix, dir=base)
        os.chmod(self.path, 0o755)
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)
        return False


_TWINS = []


def _remove_twins():
    for path in _TWINS:
        shutil.rmtree(path, ignore_errors=True)


def trusted_twin(work):
    """A directory for `work`'s scripts that the runtime (owner root) trusts: `work` itself when its
    chain is root-owned and not group/world-writable, else a directory named after it under /run, removed
    at exit. Without root there is none: `work` is returned and the runtime refuses scripts there."""
    work = os.path.abspath(work)
    if _chain_trusted(work, 0) or os.geteuid() != 0 or not _chain_trusted("/run", 0):
        return work
    twin = os.path.join("/run", "vmsnapshot-kit-tests", hashlib.sha1(work.encode()).hexdigest()[:16])
    if not os.path.isdir(twin):
        os.makedirs(twin, 0o755, exist_ok=True)
        os.chmod(os.path.dirname(twin), 0o755)
        if not _TWINS:
            atexit.register(_remove_twins)
        _TWINS.append(twin)
    return twin

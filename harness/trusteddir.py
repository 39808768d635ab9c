"""A scratch directory whose whole chain up to `/` the script runner trusts.

The runtime refuses a script, hook directory or script config unless every directory from it up to `/`
is owned by root (or the test's owner_uid) and not writable by group or others; a sticky /tmp is not
enough. Tests that run scripts therefore put them here instead of under pytest's tmp_path.
"""

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
            raise RuntimeError("no writable directory whose chain up to / is trusted (root-owned, not "
                               "group/world-writable)")
        self.path = tempfile.mkdtemp(prefix=self.prefix, dir=base)
        os.chmod(self.path, 0o755)
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)
        return False

"""What the worker (vmsnapshot.guardian_client) and the freeze guardian (vmsnapshot.guardian) share: the
ioctl numbers, the names of the result codes and the wire format of their socketpair (newline-delimited
JSON).

Kept to a few light imports so the guardian starts fast.
"""

import errno
import json

from vmsnapshot.codes import ERROR as CODE_INCONSISTENT  # noqa: F401  (the freeze engine's names for them)
from vmsnapshot.codes import FREEZE_FAILED as CODE_FREEZE_FAILED  # noqa: F401
from vmsnapshot.codes import FREEZE_TIMEOUT as CODE_FREEZE_TIMEOUT  # noqa: F401
from vmsnapshot.codes import UNABLE_TO_OPEN_MOUNT as CODE_OPEN_FAILED  # noqa: F401

FIFREEZE = 0xC0045877
FITHAW = 0xC0045878

NOT_SUPPORTED_ERRNOS = (errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP), errno.ENOTTY)


def encode_message(obj):
    return (json.dumps(obj, sort_keys=True) + "\n").encode("utf-8")


class MessageReader(object):
    """Newline-delimited JSON messages from a stream socket (used by both ends)."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""
        self.eof = False

    def pop(self):
        """A complete buffered message, or None."""
        nl = self.buffer.find(b"\n")
        if nl < 0:
            return None
        line, self.buffer = self.buffer[:nl], self.buffer[nl + 1 :]
        try:
            return json.loads(line.decode("utf-8"))
        except ValueError:
            return {"ev": "garbled", "raw": line[:200].decode("utf-8", "replace")}

    def feed_once(self):
        """One recv(); returns False at end-of-file (or a reset connection)."""
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            return True
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

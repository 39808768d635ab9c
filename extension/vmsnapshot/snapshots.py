"""Snapshot every disk blob in parallel on pre-opened connections, and map the outcome to a code.

Threads are started and parked before the freeze; `go` releases them all at once, so the frozen window
is one round trip plus retries, whatever the number of disks. Retries stay inside the freeze budget.
"""

import threading
import time

from . import codes
from .redact import strip_query

RATE_EXCEEDED_TEXT = "The rate of snapshot blob calls is exceeded"
COUNT_EXCEEDED_TEXT = "The snapshot count against this blob has been exceeded"


class DiskResult(object):
    def __init__(self, index, uri):
        self.index = index
        self.blob_uri = strip_query(uri)
        self.ok = False
        self.snapshot_time = None
        self.status = None
        self.error_code = None
        self.message = ""
        self.attempts = 0
        self.sent_at = None      # monotonic time the first request went out

    @property
    def snapshot_uri(self):
        return "%s?snapshot=%s" % (self.blob_uri, self.snapshot_time) if self.snapshot_time else ""

    def to_info(self):
        """One snapshotInfo entry as Azure Backup reads it."""
        return {"isSuccessful": self.ok, "snapshotUri": self.snapshot_uri, "errorMessage": self.message,
                "blobUri": self.blob_uri, "directDriveSnapshotIdentifier": None}


class Preflight(object):
    def __init__(self, blob_uri):
        self.blob_uri = blob_uri
        self.ok = None
        self.message = ""


class SnapshotBatch(object):
    """Parked snapshot requests for every disk: prepare() before the freeze, fire() inside it."""

    def __init__(self, client, uris, metadata):
        self.client = client
        self.uris = list(uris)
        self.metadata = list(metadata)
        self.results = [DiskResult(i, u) for i, u in enumerate(self.uris)]
        self._go = threading.Event()
        self._deadline = None
        self._threads = []
        self.preflight = []

    def prepare(self, timeout=60.0):
        """Check every disk blob with a HEAD (which also opens and TLS-handshakes its connection), then
        park one thread per disk. Returns one Preflight per disk; nothing is frozen yet."""
        self.preflight = [Preflight(r.blob_uri) for r in self.results]
        ready = threading.Semaphore(0)
        for result, check, uri in zip(self.results, self.preflight, self.uris):
            t = threading.Thread(target=self._run, args=(result, check, uri, ready),
                                 name="snapshot-%d" % result.index)
            t.daemon = True
            t.start()
            self._threads.append(t)
        deadline = time.monotonic() + timeout
        for _ in self.preflight:
            if not ready.acquire(timeout=max(0.0, deadline - time.monotonic())):
                break
        for check in self.preflight:
            if check.ok is None:
                check.ok, check.message = False, "no answer within %.0f s" % timeout
        return self.preflight

    def _run(self, result, check, uri, ready):
        try:
            resp = self.client.head(uri)
            check.ok = resp.ok
            if not resp.ok:
                check.message = "HTTP %d %s" % (resp.status, resp.error_code or "")
        except Exception as e:
            check.ok, check.message = False, str(e)[:300]
        finally:
            ready.release()
        if not check.ok:
            return
        self._go.wait()
        if self._deadline is None:
            return  # cancelled before firing
        result.sent_at = time.monotonic()
        try:
            resp = self.client.snapshot(uri, self.metadata, deadline=self._deadline)
            result.status, result.attempts = resp.status, resp.attempts
            if resp.ok and resp.headers.get("x-ms-snapshot"):
                result.ok = True
                result.snapshot_time = resp.headers["x-ms-snapshot"]
            else:
                result.error_code = resp.error_code
                result.message = "HTTP %d %s %s" % (resp.status, resp.error_code or "", resp.text(500))
        except Exception as e:  # every failure becomes a per-disk result, never a crash
            result.message = str(e)[:500]

    def fire(self, deadline):
        """Release every parked request; return when the last answer arrived (or the deadline passed)."""
        self._deadline = deadline
        self._go.set()
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()) + 0.5)
        return self.results

    def cancel(self):
        self._deadline = None
        self._go.set()


def outcome_code(results):
    """(code, detail) for the per-disk results, compatible with Microsoft's mapping."""
    failed = [r for r in results if not r.ok]
    if not results:
        return codes.SNAPSHOT_FAILED_NO_NETWORK, "no disk blobs to snapshot"
    if not failed:
        return None, ""
    text = " ".join(r.message for r in failed) + " " + " ".join(r.error_code or "" for r in failed)
    detail = "%d of %d disk snapshots failed; first: %s" % (len(failed), len(results), failed[0].message[:300])
    if RATE_EXCEEDED_TEXT in text or "SnapshotOperationRateExceeded" in text:
        return codes.SNAPSHOT_RATE_EXCEEDED, detail
    if COUNT_EXCEEDED_TEXT in text or "SnapshotCountExceeded" in text:
        return codes.SNAPSHOT_LIMIT_REACHED, detail
    if len(failed) == len(results):
        return codes.SNAPSHOT_FAILED_NO_NETWORK, detail
    return codes.SNAPSHOT_PARTIAL_FAILURE, detail

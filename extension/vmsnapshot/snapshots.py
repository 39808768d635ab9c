"""Snapshot every disk blob at once on pre-opened connections, and map the outcome to a code.

Connections are opened and requests built before the freeze; inside it one thread writes every request
back to back and reads the answers with select, so the frozen window is one round trip (what the server
needs), whatever the number of disks. Retries stay inside the freeze budget.
"""

import threading
import time

from . import codes, rawhttp
from .redact import strip_query
from .storage import RETRYABLE_STATUS, Response, StorageError, describe_error

# The service's error codes (x-ms-error-code) that have a status code of their own.
RATE_EXCEEDED = "SnapshotOperationRateExceeded"
COUNT_EXCEEDED = "SnapshotCountExceeded"


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
        self.sent_at = None  # monotonic time the first request went out
        self.retry = False  # worth a second attempt (408/429/5xx, connection lost) within the deadline
        self.retry_after = None

    @property
    def snapshot_uri(self):
        return "%s?snapshot=%s" % (self.blob_uri, self.snapshot_time) if self.snapshot_time else ""

    def to_info(self):
        """One snapshotInfo entry as Azure Backup reads it."""
        return {
            "isSuccessful": self.ok,
            "snapshotUri": self.snapshot_uri,
            "errorMessage": self.message,
            "blobUri": self.blob_uri,
            "directDriveSnapshotIdentifier": None,
        }


class Preflight(object):
    def __init__(self, blob_uri):
        self.blob_uri = blob_uri
        self.ok = None
        self.message = ""


class SnapshotBatch(object):
    """Snapshot requests for every disk: prepare() before the freeze, fire() inside it.

    prepare() HEADs every blob in parallel (which checks the SAS) and leaves each disk with its own open,
    TLS-handshaken connection and its request already built. fire() is one thread: every request written
    back to back, every answer read with one select loop (rawhttp). Threads only come back for the rare
    retry (408/429/5xx, a reset), which goes through StorageClient's retry loop within the same deadline.
    """

    def __init__(self, client, uris, metadata):
        self.client = client
        self.uris = list(uris)
        self.metadata = list(metadata)
        self.results = [DiskResult(i, u) for i, u in enumerate(self.uris)]
        self._conns = [None] * len(self.uris)
        self._requests = [None] * len(self.uris)
        self.preflight = []

    def prepare(self, timeout=60.0):
        """Check every disk blob and open its connection; one Preflight per disk. Nothing is frozen yet."""
        self.preflight = [Preflight(r.blob_uri) for r in self.results]
        threads = [
            threading.Thread(target=self._prepare_one, args=(i,), name="disk-check-%d" % i)
            for i in range(len(self.uris))
        ]
        for t in threads:
            t.daemon = True
            t.start()
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        for check in self.preflight:
            if check.ok is None:
                check.ok, check.message = False, "no answer within %.0f s" % timeout
        return self.preflight

    def _prepare_one(self, i):
        check, uri = self.preflight[i], self.uris[i]
        try:
            self.client.head(uri)
            self._requests[i] = self.client.snapshot_request(uri, self.metadata)
            self._conns[i] = self.client.checkout(uri)
            check.ok = True
        except StorageError as e:
            check.ok = False
            check.message = (
                "HTTP %d %s" % (e.status, e.response.error_code or "") if e.response is not None else str(e)[:300]
            )
        except Exception as e:  # every failure stays a per-disk check result, never a crash
            check.ok, check.message = False, str(e)[:300]

    def fire(self, deadline):
        """Write every request, read every answer; return when the last one is in (or at `deadline`)."""
        live = [i for i, c in enumerate(self._conns) if c is not None and self.preflight[i].ok]
        socks = {}
        for i in live:
            result, sock = self.results[i], self._conns[i].sock
            result.sent_at = time.monotonic()
            try:
                sock.settimeout(max(0.01, deadline - result.sent_at))
                sock.sendall(self._requests[i])
                socks[sock] = i
            except OSError as e:
                result.message = "sending the snapshot request failed: %s" % describe_error(e)
                result.retry = True
        answers = rawhttp.read_responses(list(socks), deadline)
        started = min([self.results[i].sent_at for i in live] or [time.monotonic()])
        for sock, i in socks.items():
            self._record(self.results[i], answers[sock], started)
        self.cancel()
        again = [r for r in self.results if r.retry]
        if again and deadline - time.monotonic() > 0.05:
            self._retry(again, deadline)
        return self.results

    def _record(self, result, answer, started):
        result.attempts = 1
        if isinstance(answer, Exception):
            result.message = "snapshot request: %s" % (
                answer if isinstance(answer, rawhttp.NoAnswer) else describe_error(answer)
            )
            result.retry = not getattr(answer, "timed_out", False)
            return
        try:
            status, headers, body = rawhttp.parse(answer)
        except ValueError as e:
            result.message = "snapshot request: %s" % e
            return
        resp = Response(status, headers, body, 1, time.monotonic() - started)
        self._apply(result, resp)
        result.retry = status in RETRYABLE_STATUS
        result.retry_after = headers.get("retry-after")

    @staticmethod
    def _apply(result, resp):
        result.status = resp.status
        if resp.ok and resp.headers.get("x-ms-snapshot"):
            result.ok, result.message, result.error_code = True, "", None
            result.snapshot_time = resp.headers["x-ms-snapshot"]
        else:
            result.error_code = resp.error_code
            result.message = "HTTP %d %s %s" % (resp.status, resp.error_code or "", resp.text(500))

    def _retry(self, results, deadline):
        """The rare second chance, through the client's retry loop, one thread per disk to retry."""

        def one(result):
            delay = 0.0
            try:
                delay = float(result.retry_after or 0)
            except ValueError:
                pass
            if delay and time.monotonic() + delay >= deadline:
                return
            time.sleep(delay)
            try:
                resp = self.client.snapshot(self.uris[result.index], metadata=self.metadata, deadline=deadline)
            except StorageError as e:
                resp = e.response  # the service's answer, when it gave one, is recorded like a success
                if resp is None:
                    result.message = str(e)[:500]
                    return
            except Exception as e:  # every failure stays a per-disk result, never a crash
                result.message = str(e)[:500]
                return
            self._apply(result, resp)
            result.attempts += resp.attempts

        threads = [threading.Thread(target=one, args=(r,), name="snapshot-retry-%d" % r.index) for r in results]
        for t in threads:
            t.daemon = True
            t.start()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()) + 0.5)

    def cancel(self):
        """Close every connection still held (idempotent)."""
        for i, conn in enumerate(self._conns):
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass
                self._conns[i] = None


def outcome_code(results):
    """(code, detail) for the per-disk results, compatible with Microsoft's mapping."""
    failed = [r for r in results if not r.ok]
    if not results:
        return codes.SNAPSHOT_FAILED_NO_NETWORK, "no disk blobs to snapshot"
    if not failed:
        return None, ""
    error_codes = set(r.error_code for r in failed)
    detail = "%d of %d disk snapshots failed; first: %s" % (len(failed), len(results), failed[0].message[:300])
    if RATE_EXCEEDED in error_codes:
        return codes.SNAPSHOT_RATE_EXCEEDED, detail
    if COUNT_EXCEEDED in error_codes:
        return codes.SNAPSHOT_LIMIT_REACHED, detail
    if len(failed) == len(results):
        return codes.SNAPSHOT_FAILED_NO_NETWORK, detail
    return codes.SNAPSHOT_PARTIAL_FAILURE, detail

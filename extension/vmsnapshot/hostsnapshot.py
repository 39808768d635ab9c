"""The host path ("BHS"): ask the host's backup service, through the WireServer, to snapshot the disks.

presnapshot runs before anything is frozen (method choice, the host's clock, ADE details). dosnapshot
is split like a guest SnapshotBatch: prepare() opens the connection and builds the request bytes before
the freeze, fire() writes them the moment everything is frozen and returns as soon as the response is
complete (read with a deadline: a hung host is cut at the freeze cap), and the response is parsed only
when `results` is read, after the thaw. Plain HTTP to the configured endpoint only (the WireServer is
link-local): never through a proxy. Outcome codes of a call: the HTTP status, or 555 no answer, 556 a
500 without an error body (the service is not running), 557 an empty 2xx body, 558 anything else.
"""

import calendar
import errno
import json
import re
import select
import socket
import time

from . import rawhttp
from .redact import redact
from .snapshots import COUNT_EXCEEDED, RATE_EXCEEDED, Preflight

# Storage errors the host relays only as text in a disk's errorMessage, and the storage error code each is.
RELAYED_STORAGE_ERRORS = (
    ("The rate of snapshot blob calls is exceeded", RATE_EXCEEDED),
    ("The snapshot count against this blob has been exceeded", COUNT_EXCEEDED),
)

PRESNAPSHOT_PATH = "/metadata/recsvc/snapshot/presnapshot?api-version=2017-12-01"
DOSNAPSHOT_PATH = "/metadata/recsvc/snapshot/dosnapshot?api-version=2017-12-01"
NO_ANSWER, SERVICE_NOT_RUNNING, EMPTY_BODY, CALL_FAILED = 555, 556, 557, 558
CRP_FLAGS = (
    "isSnapshotTtlEnabled",
    "useMccfToFetchDsasForAllDisks",
    "useMccfForLad",
    "EnableVMSnapshotExtensionPolling",
)
ADE_FLAGS = ("isOsDiskADEEncrypted", "areDataDisksADEEncrypted")
_ERROR_BODY = re.compile(rb'^\s*\{\s*"error"')
_ISO = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]00:?00)?$")


HostError = rawhttp.NoAnswer  # a host call that got no usable HTTP answer


def parse_endpoint(url):
    """(host, port) of http://HOST[:PORT] (config.py validated the form)."""
    rest = url.split("://", 1)[-1].rstrip("/")
    if rest.startswith("["):
        host, _, port = rest[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = rest.partition(":")
    return host, int(port) if port else 80


def build_request(host, port, path, doc):
    """The whole request as bytes: built before the freeze, written in one call inside it."""
    body = json.dumps(doc).encode("utf-8")
    head = (
        "POST %s HTTP/1.1\r\nHost: %s%s\r\nBackup: true\r\nContent-Type: application/json\r\n"
        "UserAgent: VMSnapshot\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        % (path, host, "" if port == 80 else ":%d" % port, len(body))
    )
    return head.encode("ascii") + body


def exchange(sock, request, deadline):
    """Write `request`, read the raw response until it is complete, the peer closes, or `deadline`."""
    sock.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        sock.sendall(request)
    except socket.timeout:
        raise HostError("no answer: sending timed out", timed_out=True)
    except OSError as e:
        raise HostError("no answer: %s" % (e.strerror or e))
    got = rawhttp.read_responses([sock], deadline)[sock]
    if isinstance(got, HostError):
        raise got
    if isinstance(got, Exception):
        raise HostError("no answer: %s" % describe(got))
    return got


class HostCall(object):
    """One presnapshot or dosnapshot: its outcome code, parsed document and timings."""

    def __init__(self, name):
        self.name = name
        self.code = None  # HTTP status or 555-558
        self.status = None  # HTTP status, when there was one
        self.doc = None  # parsed JSON object of a 2xx answer
        self.message = ""
        self.sent_at = None
        self.answered_at = None

    @property
    def ok(self):
        return self.status in (200, 201) and isinstance(self.doc, dict)

    def settle(self, raw=None, error=None):
        """Turn a raw answer (or the error that replaced it) into code, doc and message."""
        if error is not None:
            self.code = NO_ANSWER if isinstance(error, (HostError, OSError)) else CALL_FAILED
            self.message = redact("%s: %s" % (self.name, error))[:500]
            return self
        try:
            self.status, _, body = rawhttp.parse(raw)
        except ValueError as e:
            self.code, self.message = CALL_FAILED, "%s: %s" % (self.name, e)
            return self
        self.code = self.status
        text = redact(body[:300].decode("utf-8", "replace"))
        if self.status == 500 and not _ERROR_BODY.match(body):
            self.code = SERVICE_NOT_RUNNING
            self.message = "%s: HTTP 500 without an error body (the host backup service is not running)" % self.name
        elif 200 <= self.status < 300 and not body.strip():
            self.code, self.message = EMPTY_BODY, "%s: HTTP %d with an empty body" % (self.name, self.status)
        elif 200 <= self.status < 300:
            try:
                self.doc = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                self.doc = None
            if not isinstance(self.doc, dict):
                self.doc = None
                self.code, self.message = (
                    CALL_FAILED,
                    "%s: HTTP %d with a body that is not a JSON object" % (self.name, self.status),
                )
        else:
            self.message = "%s: HTTP %d %s" % (self.name, self.status, text)
        return self


def connect(endpoint, timeout):
    host, port = parse_endpoint(endpoint)
    sock = socket.create_connection((host, port), timeout=timeout)  # never a proxy: link-local WireServer
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def post(endpoint, path, doc, timeout, name):
    """One whole host call (connect, send, read, parse) within `timeout` seconds: a HostCall."""
    call = HostCall(name)
    deadline = time.monotonic() + timeout
    sock = None
    try:
        sock = connect(endpoint, timeout)
        host, port = parse_endpoint(endpoint)
        call.sent_at = time.monotonic()
        raw = exchange(sock, build_request(host, port, path, doc), deadline)
        call.answered_at = time.monotonic()
        return call.settle(raw)
    except (HostError, OSError) as e:
        if isinstance(e, OSError) and not isinstance(e, HostError):
            e = HostError("no answer: %s" % (describe(e)))
        return call.settle(error=e)
    except Exception as e:  # anything else is 558, never a crash
        return call.settle(error=ValueError("%s: %s" % (type(e).__name__, e)))
    finally:
        if sock is not None:
            sock.close()


def describe(e):
    if isinstance(e, socket.timeout):
        return "timed out"
    if getattr(e, "errno", None) in (errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "%s (is HostEndpoint the WireServer?)" % e.strerror
    return str(e)[:200]


class PreSnapshot(object):
    """The presnapshot answer: whether the host path is available, the host's clock, the ADE details."""

    def __init__(self, call):
        self.call = call
        doc = call.doc if call.ok else {}
        self.host_time = host_clock(doc.get("responseTime"))
        self.bhs_version = doc.get("bhsVersion")
        self.ade_flags = dict((k, doc.get(k) is True or str(doc.get(k)).lower() == "true") for k in ADE_FLAGS)
        des = doc.get("DiskEncryptionSettings")
        self.disk_encryption_settings = des if isinstance(des, str) and des else None

    @property
    def ok(self):
        return self.call.ok


def host_clock(value):
    """Unix seconds from presnapshot's responseTime {year, month, day, hour, minute, second} (UTC)."""
    if not isinstance(value, dict):
        return None
    try:
        parts = [int(value[k]) for k in ("year", "month", "day", "hour", "minute", "second")]
        return float(calendar.timegm(tuple(parts) + (0, 0, 0)))
    except (KeyError, TypeError, ValueError, OverflowError):
        return None


def presnapshot(endpoint, task_id, token, ade, timeout):
    doc = {"taskId": task_id, "snapshotTaskToken": token}
    if ade:
        doc["preSnapshotSettings"] = [{"Key": "isVMADEEnabled", "Value": True}]
    return PreSnapshot(post(endpoint, PRESNAPSHOT_PATH, doc, timeout, "presnapshot"))


def _flag_value(value):
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def dosnapshot_request(task_id, token, disk_ids, backup_metadata, included_disks, dynamic_configs, pre=None):
    """The dosnapshot body: five well-known flags, metadata in order, ADE."""
    disks = included_disks or {}
    given = {}
    for entry in dynamic_configs or []:
        if isinstance(entry, dict) and isinstance(entry.get("Key"), str):
            given[entry["Key"].lower()] = _flag_value(entry.get("Value"))
    settings = [{"Key": k, "Value": given.get(k.lower(), False)} for k in CRP_FLAGS]
    settings.append({"Key": "isVmmdBlobIncluded", "Value": disks.get("isVmmdBlobIncluded") is True})
    metadata = [{"Key": k, "Value": v} for k, v in backup_metadata]
    if disks.get("isVMADEEnabled") is True and pre is not None:
        settings += [{"Key": k, "Value": pre.ade_flags[k]} for k in ADE_FLAGS]
        if pre.disk_encryption_settings:
            metadata.append({"Key": "DiskEncryptionSettings", "Value": pre.disk_encryption_settings})
    doc = {
        "taskId": task_id,
        "diskIds": list(disk_ids),
        "snapshotTaskToken": token,
        "settings": settings,
        "snapshotMetadata": metadata,
    }
    if disks.get("instantAccessDurationMinutes") is not None:
        doc["instantAccessDurationMinutes"] = disks["instantAccessDurationMinutes"]
    return doc


def dotnet_date(iso):
    """{"DateTime": "/Date(ms)/", "OffsetMinutes": 0} from an ISO-8601 UTC time (fraction optional)."""
    m = _ISO.match((iso or "").strip()) if isinstance(iso, str) else None
    if not m:
        return None
    seconds = calendar.timegm(tuple(int(x) for x in m.groups()[:6]) + (0, 0, 0))
    ms = int(round(seconds * 1000 + float(m.group(7) or 0) * 1000))
    return {"DateTime": "/Date(%d)/" % ms, "OffsetMinutes": 0}


class HostDiskResult(object):
    """One snapshotInfo entry of a dosnapshot answer, shaped for the status."""

    def __init__(self, index, disk_id):
        self.index = index
        self.disk_id = disk_id
        self.ok = False
        self.snapshot_uri = None
        self.message = ""
        self.error_code = None
        self.dd = None
        self.sent_at = None

    @classmethod
    def from_entry(cls, index, disk_id, entry):
        r = cls(index, disk_id)
        if not isinstance(entry, dict):
            r.message = "the host's answer for disk %s is not an object" % disk_id
            return r
        ok = entry.get("isSuccessful")
        r.ok = ok is True or (isinstance(ok, str) and ok.strip().lower() == "true")
        uri = entry.get("snapshotUri")
        r.snapshot_uri = uri if isinstance(uri, str) else None
        r.message = redact(str(entry.get("errorMessage") or ""))[:500]
        if entry.get("statusCode") not in (None, 0, "0"):
            r.error_code = str(entry.get("statusCode"))[:40]
        for text, code in RELAYED_STORAGE_ERRORS:
            if text in r.message or code in r.message:
                r.error_code = code
                break
        dd = entry.get("ddSnapshotIdentifier")
        if isinstance(dd, dict):
            r.dd = {
                "creationTime": dotnet_date(dd.get("creationTime")),
                "id": dd.get("id"),
                "token": dd.get("token"),
                "instantAccessDurationMinutes": dd.get("instantAccessDurationMinutes"),
            }
        if not r.ok and not r.message:
            r.message = "the host reported a failed snapshot for disk %s" % disk_id
        return r

    @property
    def blob_uri(self):
        uri = self.snapshot_uri or ""
        if self.dd is not None:
            return uri.split("/snapshots", 1)[0]
        return uri.split("?", 1)[0]

    def to_info(self):
        return {
            "isSuccessful": self.ok,
            "snapshotUri": None if self.dd is not None else self.snapshot_uri,
            "errorMessage": self.message,
            "blobUri": self.blob_uri,
            "directDriveSnapshotIdentifier": self.dd,
        }


class HostSnapshotBatch(object):
    """The dosnapshot request as a batch: prepare() before the freeze, fire() inside it, parse after."""

    def __init__(self, endpoint, request_doc, disk_ids, connect_timeout=10.0):
        self.endpoint = endpoint
        self.disk_ids = list(disk_ids)
        self.connect_timeout = connect_timeout
        host, port = parse_endpoint(endpoint)
        self._request = build_request(host, port, DOSNAPSHOT_PATH, request_doc)
        self._sock = None
        self._raw = None
        self._error = None
        self._results = None
        self.call = HostCall("dosnapshot")
        self.preflight = []

    def prepare(self, timeout=None):
        """Open the connection now (nothing is frozen yet); one Preflight for the host endpoint."""
        check = Preflight("host backup service at %s" % self.endpoint)
        try:
            self._sock = connect(self.endpoint, timeout or self.connect_timeout)
            check.ok = True
        except OSError as e:
            check.ok, check.message = False, "no answer (555): %s" % describe(e)
            self.call.code, self.call.message = NO_ANSWER, check.message
        self.preflight = [check]
        return self.preflight

    def fire(self, deadline):
        """Write the request, return once the whole answer is in (or at `deadline`). No parsing here."""
        self.call.sent_at = time.monotonic()
        try:
            if self._sock is None:
                raise HostError("no connection")
            if select.select([self._sock], [], [], 0)[0]:
                # Readable while idle: the host closed it (long pre-scripts). A link-local connect is cheap.
                self._close()
                self._sock = connect(self.endpoint, max(0.01, min(self.connect_timeout, deadline - time.monotonic())))
            self._raw = exchange(self._sock, self._request, deadline)
            self.call.answered_at = time.monotonic()
        except (HostError, OSError) as e:  # anything else (a cancel) unwinds through the worker's thaw
            self._error = e
        finally:
            self._close()
        return self

    def cancel(self):
        self._close()

    def _close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    @property
    def results(self):
        """Per-disk results, parsed on first use (after the thaw)."""
        if self._results is None:
            self._results = self._parse()
        return self._results

    def _parse(self):
        if self._raw is None and self._error is None:
            return [self._failed(i, d, "the dosnapshot request was never sent") for i, d in enumerate(self.disk_ids)]
        self.call.settle(self._raw, self._error)
        if not self.call.ok:
            return [
                self._failed(i, d, "%s (code %s)" % (self.call.message, self.call.code))
                for i, d in enumerate(self.disk_ids)
            ]
        entries = self.call.doc.get("snapshotInfo")
        if not isinstance(entries, list) or not entries:
            self.call.code = CALL_FAILED
            self.call.message = "dosnapshot: the answer has no snapshotInfo list"
            return [self._failed(i, d, self.call.message) for i, d in enumerate(self.disk_ids)]
        ids = self.disk_ids + [None] * max(0, len(entries) - len(self.disk_ids))
        out = [HostDiskResult.from_entry(i, ids[i], e) for i, e in enumerate(entries)]
        out += [
            self._failed(i, d, "the host's answer has no entry for disk %s" % d)
            for i, d in enumerate(self.disk_ids)
            if i >= len(entries)
        ]
        for r in out:
            r.sent_at = self.call.sent_at
        return out

    @staticmethod
    def _failed(index, disk_id, message):
        r = HostDiskResult(index, disk_id)
        r.message = message
        return r

"""A loopback host backup service ("BHS" behind the WireServer) for tests, benchmarks and `make run`.

Serves POST presnapshot and dosnapshot on 127.0.0.1 (plain HTTP, a free port) the way the host does
(host-path-and-workloads §3). dosnapshot takes REAL snapshots in Azurite of the page blobs its LUN map
names (with the request's snapshotMetadata as x-ms-meta-*), so a host snapshot is as real as a guest
one; DirectDrive LUNs get a ddSnapshotIdentifier instead. Every request is recorded with the
time.monotonic() (system-wide) it arrived and was answered, and a hook runs when a dosnapshot arrives
(a test proves there that the file systems are frozen). Fault knobs per call: see Fault.
"""

import datetime
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness.azurite import free_port

PRE = "/metadata/recsvc/snapshot/presnapshot"
DO = "/metadata/recsvc/snapshot/dosnapshot"


class Fault(object):
    """How one kind of call is answered.

    kind: ok | refuse (connection closed, no answer) | status (HTTP `status` with `body`) | error500
    (500 with a JSON error body) | plain500 (500 with a text body: "service not running") | empty (200, no
    body) | garbage (200, not JSON) | slow (`delay` s, then ok) | hang (never answers) | partial (the
    LUNs in `fail_luns` fail). bool_success: isSuccessful as a JSON bool instead of the host's string.
    """

    def __init__(self, kind="ok", status=None, body="", delay=0.0, fail_luns=(), bool_success=False):
        self.kind = kind
        self.status = status
        self.body = body
        self.delay = delay
        self.fail_luns = set(fail_luns)
        self.bool_success = bool_success


class Call(object):
    def __init__(self, name, body, arrived):
        self.name = name
        self.body = body
        self.arrived = arrived
        self.answered = None
        self.status = None
        self.hook_result = None


class HostService(object):
    """Use as a context manager; `endpoint` goes into vmbackup.conf [vmsnapshot] HostEndpoint."""

    def __init__(
        self,
        azurite,
        container,
        lun_map,
        directdrive=(),
        pre=None,
        do=None,
        on_dosnapshot=None,
        disk_encryption_settings=None,
        clock_offset_s=0.0,
        latency_s=0.0,
        serve_tasks=None,
    ):
        self.azurite = azurite
        self.container = container
        self.lun_map = dict(lun_map)  # LUN (-1 = OS disk) -> page blob name in `container`
        self.directdrive = set(directdrive)  # LUNs that are DirectDrive disks (no page blob)
        self.faults = {"presnapshot": pre or Fault(), "dosnapshot": do or Fault()}
        self.on_dosnapshot = on_dosnapshot
        self.disk_encryption_settings = disk_encryption_settings
        self.clock_offset_s = clock_offset_s
        self.latency_s = latency_s  # added before every answer (benchmarks)
        self.serve_tasks = serve_tasks  # None: every task; a set: others get a 500 ("not running")
        self.calls = []
        self.port = free_port()
        self._stop = threading.Event()
        self._server = None
        self._thread = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def calls_of(self, name):
        return [c for c in self.calls if c.name == name]

    # -- life cycle --------------------------------------------------------------------------------
    def __enter__(self):
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                service.handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="hostservice", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        return False

    # -- requests ----------------------------------------------------------------------------------
    def handle(self, req):
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""
        arrived = time.monotonic()
        path = req.path.split("?", 1)[0]
        name = {PRE: "presnapshot", DO: "dosnapshot"}.get(path)
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            body = None
        call = Call(name or path, body, arrived)
        call.headers = dict(req.headers.items())
        self.calls.append(call)
        if name is None:
            return self._send(req, call, 404, b'{"error": "no such path"}')
        if name == "dosnapshot" and self.on_dosnapshot is not None:
            call.hook_result = self.on_dosnapshot(call)
        fault = self.faults[name]
        if self.serve_tasks is not None and (body or {}).get("taskId") not in self.serve_tasks:
            fault = Fault("plain500")
        if self.latency_s:
            time.sleep(self.latency_s)
        if fault.kind == "refuse":
            req.close_connection = True
            call.answered = time.monotonic()
            return None
        if fault.kind == "hang":
            self._stop.wait(600)
            req.close_connection = True
            return None
        if fault.kind == "slow":
            time.sleep(fault.delay)
        if fault.kind == "status":
            return self._send(req, call, fault.status, fault.body.encode())
        if fault.kind == "error500":
            return self._send(req, call, 500, b'{ "error": {"code": "InternalError", "message": "try later"}}')
        if fault.kind == "plain500":
            return self._send(req, call, 500, b"Internal Server Error")
        if fault.kind == "empty":
            return self._send(req, call, 200, b"")
        if fault.kind == "garbage":
            return self._send(req, call, 200, b"<html>not json</html>")
        doc = self.presnapshot(body or {}) if name == "presnapshot" else self.dosnapshot(body or {}, fault)
        return self._send(req, call, 200, json.dumps(doc).encode())

    def _send(self, req, call, status, data):
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)
        req.wfile.flush()
        call.status = status
        call.answered = time.monotonic()

    def presnapshot(self, body):
        now = datetime.datetime.utcnow() + datetime.timedelta(seconds=self.clock_offset_s)
        doc = {
            "bhsVersion": "kit-hostservice-1",
            "nodeId": "node-0",
            "result": "success",
            "responseTime": {
                "year": now.year,
                "month": now.month,
                "day": now.day,
                "hour": now.hour,
                "minute": now.minute,
                "second": now.second,
            },
        }
        ade = any(
            isinstance(s, dict) and s.get("Key") == "isVMADEEnabled" and s.get("Value") is True
            for s in body.get("preSnapshotSettings") or []
        )
        if ade and self.disk_encryption_settings:
            doc.update(
                isOsDiskADEEncrypted=True,
                areDataDisksADEEncrypted=True,
                DiskEncryptionSettings=self.disk_encryption_settings,
            )
        return doc

    def dosnapshot(self, body, fault):
        """Snapshot every requested disk at once (one thread per disk), like the host does."""
        ids = body.get("diskIds") or []
        meta = dict(("x-ms-meta-%s" % m["Key"], str(m["Value"])) for m in body.get("snapshotMetadata") or [])
        entries = [None] * len(ids)

        def one(i, lun):
            entries[i] = self._snapshot_one(lun, meta, fault)

        threads = [threading.Thread(target=one, args=(i, lun)) for i, lun in enumerate(ids)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return {"snapshotInfo": [e or self._entry(False, "", "no result") for e in entries]}

    def _entry(self, ok, uri, error, fault=None, dd=None, status=0):
        flag = ok if fault is not None and fault.bool_success else ("true" if ok else "false")
        return {
            "isSuccessful": flag,
            "snapshotUri": uri,
            "errorMessage": error,
            "statusCode": status,
            "ddSnapshotIdentifier": dd,
        }

    def _snapshot_one(self, lun, meta, fault):
        if lun in fault.fail_luns:
            return self._entry(False, "", "snapshot of LUN %s failed: InternalError" % lun, fault, status=500)
        if lun in self.directdrive:
            ident = str(uuid.uuid4())
            created = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            uri = "%s/%s/dd-lun%s/snapshots/%s" % (self.azurite.endpoint, self.container, lun, ident)
            return self._entry(
                True,
                uri,
                "",
                fault,
                dd={
                    "creationTime": created,
                    "id": ident,
                    "token": "dd-token-%s" % ident[:8],
                    "instantAccessDurationMinutes": 300,
                },
            )
        blob = self.lun_map.get(lun)
        if blob is None:
            return self._entry(False, "", "no disk at LUN %s" % lun, fault, status=404)
        status, headers, data = self.azurite._request("PUT", "%s/%s" % (self.container, blob), "comp=snapshot", meta)
        if status != 201:
            return self._entry(
                False, "", "HTTP %d %s" % (status, data[:200].decode("utf-8", "replace")), fault, status=status
            )
        uri = "%s/%s/%s?snapshot=%s" % (self.azurite.endpoint, self.container, blob, headers["x-ms-snapshot"])
        return self._entry(True, uri, "", fault)

"""The loopback ARM emulator: a stdlib ThreadingHTTPServer over verified TLS on 127.0.0.1.

    with ArmEmulator(estate=generate_fleet(200)) as emu:
        emu.url        # https://127.0.0.1:<port>
        emu.ca_file    # trust this (connection_verify= / REQUESTS_CA_BUNDLE)
        emu.requests(method="PUT")   # the recorded request log

Knobs (attributes of `emu.knobs`, also settable at run time with POST /__knobs) simulate latency,
throttling, slow responses and paging; partial failures live on the estate (VM.fail_get, Vault.forbidden).
"""

import itertools
import json
import os
import re
import shutil
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Optional

from . import backup, compute, graph, identity, plugins
from .router import Request, Router, arm_error, json_response
from .state import Estate
from .tlscert import make_certificates


@dataclass
class Knobs:
    latency_ms: float = 0.0  # added to every ARM request
    throttle_every: int = 0  # every Nth ARM request answers 429 TooManyRequests (0 = never)
    retry_after: int = 1  # Retry-After seconds on injected 429s
    slow: Dict[str, float] = field(default_factory=dict)  # regex on "METHOD /path" -> extra seconds
    page_size: int = 1000  # nextLink page size for VM, protected item and job lists
    graph_max_top: int = 1000  # Resource Graph rows per page at most
    lro_polls: int = 0  # InProgress answers before an operation reports its final status
    lro_retry_after: int = 0  # Retry-After on LRO 202s (Azure sends 60; 0 keeps tests fast)
    refresh_polls: int = 1  # 202 answers to a container-refresh poll before the 204
    read_budget: Optional[list] = None  # [capacity, refill per second]: a real read token bucket
    write_budget: Optional[list] = None  # same for writes (PUT/POST/DELETE)
    graph_quota: Optional[int] = None  # Resource Graph queries per 5 s window; beyond -> 429
    require_auth: bool = True  # ARM routes answer 401 without a bearer token


class _Bucket:
    def __init__(self, capacity, refill):
        self.capacity, self.refill = float(capacity), float(refill)
        self.tokens, self.stamp = float(capacity), time.monotonic()

    def take(self):
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.refill)
        self.stamp = now
        if self.tokens < 1:
            return False, 0, max(1, int((1 - self.tokens) / self.refill + 0.999))
        self.tokens -= 1
        return True, int(self.tokens), 0


CONTROL_PREFIX = "/__"
UNMETERED = ("/metadata/", "/msi/")
GRAPH_PREFIX = "/providers/microsoft.resourcegraph/"


class ArmEmulator:
    def __init__(self, estate: Estate = None, *, port=0, knobs: Knobs = None, cert_dir=None, **knob_values):
        self.estate = estate or Estate()
        self.knobs = knobs or Knobs()
        self._buckets = {}
        for k, v in knob_values.items():
            self.set_knob(k, v)
        self.router = Router()
        for module in (identity, compute, backup, graph):
            module.register(self.router)
        plugins.load_all(self.router)
        self._port = port
        self._own_cert_dir = cert_dir is None
        self.cert_dir = cert_dir or tempfile.mkdtemp(prefix="armemu-tls-")
        self.certs = None
        self._server = None
        self._thread = None
        self._log = []
        self._log_lock = threading.Lock()
        self._counter = itertools.count(1)
        self._meter_lock = threading.Lock()
        self._graph_window = [0.0, 0]
        self.ops = {}  # free-form per-route scratch space for plugins (guarded by estate.lock)

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self):
        self.certs = make_certificates(self.cert_dir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.certs.cert, self.certs.key)
        self._server = _Server(("127.0.0.1", self._port), _Handler, ctx, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="armemu", daemon=True
        )
        self._thread.start()
        return self

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._own_cert_dir:
            shutil.rmtree(self.cert_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self):
        return self.certs.ca

    def client_env(self, base=None):
        """Environment for a child process (the kit, az): trust the CA and log in via managed identity."""
        env = dict(os.environ if base is None else base)
        env.update(
            {
                "REQUESTS_CA_BUNDLE": self.ca_file,
                "SSL_CERT_FILE": self.ca_file,
                "IDENTITY_ENDPOINT": f"{self.url}/msi/token",
                "IDENTITY_HEADER": "armemu-identity-header",
                "AZURE_CORE_COLLECT_TELEMETRY": "no",
            }
        )
        for k in (
            "AZURE_CLIENT_ID",
            "AZURE_CLIENT_SECRET",
            "AZURE_TENANT_ID",
            "MSI_ENDPOINT",
            "MSI_SECRET",
            "AZURE_FEDERATED_TOKEN_FILE",
            "IMDS_ENDPOINT",
        ):
            env.pop(k, None)
        return env

    # -- knobs ----------------------------------------------------------------------------------------
    def set_knob(self, name, value):
        """Set one knob; `fail_vm_get` (VM ids or names) and `forbidden_vaults` (names) mark the estate."""
        if name == "fail_vm_get":
            wanted = {str(v).lower() for v in value}
            with self.estate.lock:
                for vm in self.estate.vms.values():
                    vm.fail_get = vm.id.lower() in wanted or vm.name.lower() in wanted
            return
        if name == "forbidden_vaults":
            wanted = {str(v).lower() for v in value}
            with self.estate.lock:
                for vault in self.estate.vaults.values():
                    vault.forbidden = vault.name.lower() in wanted or vault.id.lower() in wanted
            return
        if not hasattr(self.knobs, name):
            raise KeyError(f"unknown knob {name!r}")
        setattr(self.knobs, name, value)
        if name in ("read_budget", "write_budget"):
            self._buckets.pop(name, None)

    # -- request log ----------------------------------------------------------------------------------
    def requests(self, method=None, path=None, since=0):
        """Recorded requests (dicts: seq, method, path, query, body, status, auth), oldest first.
        `path` is a regex searched case-insensitively in the decoded path."""
        rx = re.compile(path, re.IGNORECASE) if path else None
        with self._log_lock:
            entries = list(self._log)
        return [
            e
            for e in entries
            if e["seq"] > since
            and (method is None or e["method"] == method.upper())
            and (rx is None or rx.search(e["path"]))
        ]

    def clear_log(self):
        with self._log_lock:
            self._log.clear()

    # -- metering (throttling, rate-limit headers) ----------------------------------------------------
    def _meter(self, method, path):
        """Headers for this ARM request, or a 429 Response when it is throttled."""
        n = next(self._counter)
        kind = "reads" if method in ("GET", "HEAD") else "writes"
        headers = {}
        with self._meter_lock:
            budget = self.knobs.read_budget if kind == "reads" else self.knobs.write_budget
            if budget:
                bucket = self._buckets.setdefault(f"{kind[:-1]}_budget", _Bucket(*budget))
                ok, remaining, wait = bucket.take()
                if not ok:
                    return arm_error(
                        429,
                        "TooManyRequests",
                        "The request is being throttled.",
                        Retry_After=wait,
                        **{f"x-ms-ratelimit-remaining-subscription-{kind}": 0},
                    )
            else:
                remaining = (11999 if kind == "reads" else 1199) - n % 1000
            headers[f"x-ms-ratelimit-remaining-subscription-{kind}"] = str(remaining)
            if kind == "writes":  # ARM reports the read budget on every response, writes too
                reads = self._buckets.get("read_budget")
                headers["x-ms-ratelimit-remaining-subscription-reads"] = str(
                    int(reads.tokens) if reads else 11999 - n % 1000
                )
            if path.lower().startswith(GRAPH_PREFIX):
                wstart, used = self._graph_window
                now = time.monotonic()
                if now - wstart >= 5:
                    wstart, used = now, 0
                used += 1
                self._graph_window = [wstart, used]
                quota = self.knobs.graph_quota or 15
                left = max(0, quota - used)
                resets = max(0, 5 - (now - wstart))
                headers["x-ms-user-quota-remaining"] = str(left)
                headers["x-ms-user-quota-resets-after"] = time.strftime("%H:%M:%S", time.gmtime(resets + 0.999))
                if self.knobs.graph_quota and used > quota:
                    return arm_error(
                        429,
                        "RateLimiting",
                        "Please provide below info when asking for support",
                        Retry_After=int(resets + 0.999),
                        **headers,
                    )
        if self.knobs.throttle_every and n % self.knobs.throttle_every == 0:
            return arm_error(
                429,
                "TooManyRequests",
                "The request is being throttled.",
                Retry_After=self.knobs.retry_after,
                **headers,
            )
        return headers


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, addr, handler, ssl_ctx, emu):
        self.ssl_ctx, self.emu = ssl_ctx, emu
        super().__init__(addr, handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        # Handshake in the worker thread (see _Handler.setup), not in the accept loop.
        return self.ssl_ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "armemu/1.0"

    def setup(self):
        super().setup()
        self.request.settimeout(30)
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError, socket.timeout):
            self.close_connection = True
            self.rfile = self.wfile = None

    def handle(self):
        if self.rfile is None:
            return
        try:
            super().handle()
        except (ssl.SSLError, ConnectionError, socket.timeout):
            pass

    def finish(self):
        if self.rfile is None:
            return
        try:
            super().finish()
        except (ssl.SSLError, OSError):
            pass

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._dispatch()

    do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _dispatch(self):
        emu = self.server.emu
        raw_path, _, raw_query = self.path.partition("?")
        path = urllib.parse.unquote(raw_path)
        query = {k.lower(): v for k, v in urllib.parse.parse_qsl(raw_query, keep_blank_values=True)}
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        if path.startswith(CONTROL_PREFIX):
            return self._send(_control(emu, self.command, path, query, body))

        auth = headers.get("authorization", "")
        entry = {
            "seq": None,
            "t": time.time(),
            "method": self.command,
            "path": path,
            "query": query,
            "body": body,
            "auth": auth.split(" ", 1)[0] if auth else None,
            "status": None,
        }
        arm = not path.lower().startswith(UNMETERED)
        extra = {
            "x-ms-request-id": str(uuid.uuid4()),
            "x-ms-correlation-request-id": str(uuid.uuid4()),
            "x-ms-ratelimit-remaining-subscription-reads": "11999",
        }  # metered routes overwrite it
        resp = None
        if emu.knobs.latency_ms:
            time.sleep(emu.knobs.latency_ms / 1000.0)
        for rx, seconds in list(emu.knobs.slow.items()):
            if re.search(rx, f"{self.command} {path}", re.IGNORECASE):
                time.sleep(seconds)
        if arm:
            metered = emu._meter(self.command, path)
            if not isinstance(metered, dict):
                resp = metered
            else:
                extra.update(metered)
            if resp is None and emu.knobs.require_auth and not auth.lower().startswith("bearer "):
                resp = arm_error(
                    401,
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing.",
                )
        if resp is None:
            handler, params, known = emu.router.match(self.command, path)
            if handler is None:
                resp = (
                    arm_error(405, "MethodNotAllowed", f"{self.command} is not supported on {path}")
                    if known
                    else arm_error(404, "NotFound", f"armemu has no route for {self.command} {path}")
                )
            else:
                req = Request(self.command, path, query, headers, body, raw_body, params, emu)
                try:
                    resp = handler(req)
                except Exception as exc:  # a handler bug must show in the test, not hang the client
                    resp = arm_error(500, "EmulatorError", f"{type(exc).__name__}: {exc}")
        if self.command not in ("GET", "HEAD") and arm and not path.lower().startswith(GRAPH_PREFIX):
            with emu.estate.lock:
                emu.estate.generation += 1
        for k, v in extra.items():
            resp.headers.setdefault(k, v)
        entry["status"] = resp.status
        with emu._log_lock:
            entry["seq"] = len(emu._log) + 1
            emu._log.append(entry)
        self._send(resp)

    def _send(self, resp):
        payload = resp.payload()
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)


def _control(emu, method, path, query, body):
    """/__log, /__knobs, /__state, /__health: test and demo control, never logged, never throttled."""
    p = path.lower().rstrip("/")
    if p == "/__health":
        return json_response({"ok": True, "url": emu.url})
    if p == "/__log" and method == "GET":
        since = int(query.get("since", 0) or 0)
        return json_response({"value": emu.requests(query.get("method"), query.get("path"), since)})
    if p == "/__log" and method == "DELETE":
        emu.clear_log()
        return json_response({"cleared": True})
    if p == "/__knobs":
        if method == "POST":
            try:
                for k, v in (body or {}).items():
                    emu.set_knob(k, v)
            except KeyError as exc:
                return arm_error(400, "UnknownKnob", str(exc))
        return json_response(asdict(emu.knobs))
    if p == "/__state":
        return json_response(emu.estate.summary())
    return arm_error(404, "NotFound", f"no control route {path}")

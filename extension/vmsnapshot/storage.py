"""Azure Blob REST over SAS URIs with http.client: keep-alive pools, retries, proxies, verified TLS.

The contract is an SDK's: options are keyword-only, a call returns its 2xx Response or raises
StorageError, whose `status` (the HTTP status, None when no answer came) and `error_code` (the service's
x-ms-error-code, else one of the client codes below) say what failed. URIs are sasuri.SasUri: the URI's
own scheme, host and port, plain http only to loopback. Errors and logs only ever carry redacted URIs.
"""

import errno
import http.client
import os
import random
import socket
import ssl
import threading
import time

from .redact import redact, strip_query
from .sasuri import SasUri, SasUriError

API_VERSION = "2020-04-08"
USER_AGENT = "vmsnapshot-linux"
RETRYABLE_STATUS = (408, 429, 500, 502, 503, 504)
PAGE = 512
MAX_PAGE_WRITE = 4 * 1024 * 1024
MAX_APPEND_BLOCK = 4 * 1024 * 1024


# error_code of a failure the service did not answer (status None), or answered without x-ms-error-code.
INVALID_URI = "InvalidUri"  # not a URI, an unsupported scheme, plain http off loopback
CONNECTION_FAILED = "ConnectionFailed"  # refused, reset, TLS failure, no (complete) answer
UNTRUSTED_CERTIFICATE = "CertificateUntrusted"
TIMED_OUT = "Timeout"  # no answer within the timeout or the deadline
HTTP_STATUS = "HttpStatus%d"  # a non-2xx answer without x-ms-error-code


class StorageError(Exception):
    """A storage call failed. status: the HTTP status (None: no answer); error_code: always set;
    response: the last Response when the service answered."""

    def __init__(self, message, status=None, error_code=None, response=None):
        Exception.__init__(self, redact(message))
        self.status = status
        self.error_code = error_code
        self.response = response

    @classmethod
    def from_response(cls, what, uri, response):
        code = response.error_code or HTTP_STATUS % response.status
        return cls(
            "%s %s answered %d %s" % (what, strip_query(uri), response.status, code),
            status=response.status,
            error_code=code,
            response=response,
        )


class Response(object):
    def __init__(self, status, headers, body, attempts, elapsed):
        self.status = status
        self.headers = headers  # lower-cased names
        self.body = body
        self.attempts = attempts
        self.elapsed = elapsed

    @property
    def ok(self):
        return 200 <= self.status < 300

    @property
    def error_code(self):
        return self.headers.get("x-ms-error-code")

    def text(self, limit=2048):
        return redact(self.body[:limit].decode("utf-8", "replace"))


def parse_target(uri):
    """The SasUri a request may go to, or StorageError(INVALID_URI)."""
    try:
        parsed = SasUri(uri)
    except SasUriError as e:
        raise StorageError("the storage URI %s" % e, error_code=INVALID_URI)
    problem = parsed.transport_problem()
    if parsed.has_userinfo:
        problem = "carries user credentials (user:password@), which a SAS URI never does"
    if problem:
        raise StorageError("%s: %s" % (strip_query(uri), problem), error_code=INVALID_URI)
    return parsed


def read_waagent_proxy(path="/etc/waagent.conf"):
    """(host, port) from HttpProxy.Host / HttpProxy.Port in the agent's configuration, or None."""
    host = port = None
    try:
        with open(path) as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if "=" not in line:
                    continue
                key, value = [x.strip() for x in line.split("=", 1)]
                if key == "HttpProxy.Host" and value and value.lower() != "none":
                    host = value
                elif key == "HttpProxy.Port" and value.isdigit():
                    port = int(value)
    except (IOError, OSError):
        return None
    return (host, port or 3128) if host else None


def env_proxy(scheme):
    raw = os.environ.get("%s_proxy" % scheme) or os.environ.get("%s_PROXY" % scheme.upper())
    if not raw:
        return None
    raw = raw.split("://", 1)[-1].rstrip("/").rsplit("@", 1)[-1]
    host, _, port = raw.partition(":")
    return (host, int(port) if port.isdigit() else 3128) if host else None


def bypass_proxy(host):
    """no_proxy / NO_PROXY, as curl reads it. Loopback is not special: a configured proxy is used for
    every storage host, since a VM that needs one for storage has no business reaching it directly."""
    no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
    for entry in [e.strip().lower() for e in no_proxy.split(",") if e.strip()]:
        if entry == "*" or host.lower() == entry.lstrip(".") or host.lower().endswith("." + entry.lstrip(".")):
            return True
    return False


def ssl_context():
    """System CAs, or SSL_CERT_FILE / SSL_CERT_DIR when set (the default context honours both)."""
    ctx = ssl.create_default_context(
        cafile=os.environ.get("SSL_CERT_FILE") or None, capath=os.environ.get("SSL_CERT_DIR") or None
    )
    return ctx


class StorageClient(object):
    """Thread-safe pool of keep-alive connections per (scheme, host, port)."""

    def __init__(self, *, timeout=10.0, max_attempts=5, proxy=None, waagent_conf="/etc/waagent.conf", context=None):
        self.timeout = timeout
        self.max_attempts = max_attempts
        self._proxy_conf = proxy if proxy is not None else read_waagent_proxy(waagent_conf)
        self._context = context or ssl_context()
        self._idle = {}
        self._lock = threading.Lock()

    # -- connections ------------------------------------------------------------------------------
    def _proxy_for(self, target):
        if bypass_proxy(target.host):
            return None
        return self._proxy_conf or env_proxy(target.scheme)

    def _new_connection(self, target, timeout):
        proxy = self._proxy_for(target)
        if target.scheme == "https":
            if proxy:
                conn = http.client.HTTPSConnection(proxy[0], proxy[1], timeout=timeout, context=self._context)
                conn.set_tunnel(target.host, target.port)
            else:
                conn = http.client.HTTPSConnection(target.host, target.port, timeout=timeout, context=self._context)
        else:
            conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
        conn.connect()
        return conn

    def _take(self, target, timeout):
        with self._lock:
            idle = self._idle.get(target.key)
            if idle:
                conn = idle.pop()
                conn.sock.settimeout(timeout)
                return conn, True
        return self._new_connection(target, timeout), False

    def _connection_error(self, method, uri, attempts, error):
        if error is None:
            reason, code = "no time left to retry", TIMED_OUT
        else:
            reason, code = describe_error(error), error_code_of(error)
        return StorageError(
            "%s %s failed after %d attempt(s): %s" % (method, strip_query(uri), attempts, reason), error_code=code
        )

    def _give_back(self, target, conn):
        with self._lock:
            self._idle.setdefault(target.key, []).append(conn)

    def close(self):
        with self._lock:
            conns = [c for lst in self._idle.values() for c in lst]
            self._idle.clear()
        for c in conns:
            try:
                c.close()
            except Exception:
                pass

    # -- requests ---------------------------------------------------------------------------------
    def request(self, method, uri, *, query="", headers=None, body=b"", deadline=None, max_attempts=None, what=None):
        """Send with retries on 408/429/5xx and connection errors, within `deadline` (monotonic).
        Returns the 2xx Response; raises StorageError otherwise (`what` names the call in its message)."""
        dest = parse_target(uri)
        path = dest.request_path(query)
        hdrs = request_headers(headers, body)
        attempts = max_attempts or self.max_attempts
        started = time.monotonic()
        last_error = None
        for attempt in range(1, attempts + 1):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0.005:
                break
            timeout = self.timeout if remaining is None else max(0.05, min(self.timeout, remaining))
            reused, conn = False, None
            try:
                conn, reused = self._take(dest, timeout)
                conn.request(method, path, body=body or None, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()  # also for HEAD (empty): an unread response would poison the connection
                rheaders = dict((k.lower(), v) for k, v in resp.getheaders())
                if resp.will_close:
                    conn.close()
                else:
                    self._give_back(dest, conn)
            except (OSError, http.client.HTTPException, ssl.SSLError) as e:
                if conn is not None:
                    conn.close()
                last_error = e
                if error_code_of(e) == UNTRUSTED_CERTIFICATE:
                    break  # an untrusted certificate does not get better by retrying
                if reused and attempt == 1:
                    continue  # a pooled connection the server had closed: retry at once
                if not self._sleep_before_retry(attempt, None, deadline):
                    break
                continue
            response = Response(resp.status, rheaders, data, attempt, time.monotonic() - started)
            if resp.status in RETRYABLE_STATUS and attempt < attempts:
                if self._sleep_before_retry(attempt, rheaders.get("retry-after"), deadline):
                    last_error = None
                    continue
            if not response.ok:
                raise StorageError.from_response(what or method, uri, response)
            return response
        raise self._connection_error(method, uri, attempt, last_error)

    @staticmethod
    def _sleep_before_retry(attempt, retry_after, deadline):
        delay = min(8.0, 0.05 * (2 ** (attempt - 1)))
        delay = delay / 2 + random.uniform(0, delay / 2)
        if retry_after:
            try:
                delay = max(delay, float(retry_after))
            except ValueError:
                pass
        if deadline is not None and time.monotonic() + delay >= deadline:
            return False
        time.sleep(delay)
        return True

    # -- pre-opened connections for the frozen window (snapshots.py) ------------------------------
    def checkout(self, uri):
        """An open connection to `uri`'s host, owned by the caller from now on (opened now if none idle)."""
        dest = parse_target(uri)
        try:
            conn, _ = self._take(dest, self.timeout)
        except (OSError, http.client.HTTPException, ssl.SSLError) as e:
            raise self._connection_error("CONNECT", uri, 1, e)
        return conn

    @staticmethod
    def snapshot_request(uri, metadata=()):
        """The whole snapshot request as bytes, built before the freeze and written as is inside it."""
        dest = parse_target(uri)
        hdrs = request_headers(dict(("x-ms-meta-%s" % k, v) for k, v in metadata))
        lines = ["PUT %s HTTP/1.1" % dest.request_path("comp=snapshot"), "Host: %s" % dest.host_header]
        lines += ["%s: %s" % kv for kv in hdrs.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    # -- blob operations --------------------------------------------------------------------------
    def head(self, uri, *, deadline=None):
        return self.request("HEAD", uri, deadline=deadline, what="reading properties of")

    def snapshot(self, uri, *, metadata=(), deadline=None):
        headers = dict(("x-ms-meta-%s" % k, v) for k, v in metadata)
        return self.request("PUT", uri, query="comp=snapshot", headers=headers, deadline=deadline, what="snapshot of")

    def put_block_blob(self, uri, data, *, content_type="application/json"):
        return self.request(
            "PUT",
            uri,
            headers={"x-ms-blob-type": "BlockBlob", "Content-Type": content_type},
            body=data,
            what="block blob write to",
        )

    def write_page_blob(self, uri, data, *, current_length):
        """Replace an existing page blob's content: resize to the padded size, write in 4 MiB pages."""
        padded = data + b" " * ((-len(data)) % PAGE)
        if len(padded) != current_length:
            self.request(
                "PUT",
                uri,
                query="comp=properties",
                headers={"x-ms-blob-content-length": str(len(padded))},
                what="page blob resize of",
            )
        for start in range(0, len(padded), MAX_PAGE_WRITE):
            chunk = padded[start : start + MAX_PAGE_WRITE]
            self.request(
                "PUT",
                uri,
                query="comp=page",
                body=chunk,
                what="page write to",
                headers={"x-ms-page-write": "update", "x-ms-range": "bytes=%d-%d" % (start, start + len(chunk) - 1)},
            )

    def append(self, uri, data):
        for start in range(0, len(data), MAX_APPEND_BLOCK):
            self.request(
                "PUT", uri, query="comp=appendblock", body=data[start : start + MAX_APPEND_BLOCK], what="append to"
            )

    def write_blob(self, uri, data, *, content_type="application/json", append_mode=False):
        """Write a report to a blob of whatever type the service pre-created (page, append or block)."""
        try:
            props = self.head(uri)
        except StorageError as e:
            if e.status != 404:
                raise
            props = None
        blob_type = props.headers.get("x-ms-blob-type", "") if props else ""
        if blob_type == "PageBlob":
            data = data[-10 * 1024 * 1024 :]
            return self.write_page_blob(uri, data, current_length=int(props.headers.get("content-length", "0")))
        if blob_type == "AppendBlob":
            return self.append(uri, data)
        if append_mode and props is None:
            try:
                self.request("PUT", uri, headers={"x-ms-blob-type": "AppendBlob"}, what="append blob creation of")
            except StorageError as e:
                if e.status is None:
                    raise
            else:
                return self.append(uri, data)
        return self.put_block_blob(uri, data, content_type=content_type)


def request_headers(extra=None, body=b""):
    """The headers every storage request carries, plus `extra`."""
    hdrs = {
        "x-ms-version": API_VERSION,
        "User-Agent": USER_AGENT,
        "x-ms-client-request-id": "%032x" % random.getrandbits(128),
    }
    if extra:
        hdrs.update(extra)
    hdrs["Content-Length"] = str(len(body or b""))
    return hdrs


def error_code_of(e):
    """The client error_code of an exception from a connection (no HTTP answer)."""
    if isinstance(e, socket.timeout):
        return TIMED_OUT
    if isinstance(e, ssl.CertificateError) or "CERTIFICATE_VERIFY_FAILED" in str(e):
        return UNTRUSTED_CERTIFICATE
    return CONNECTION_FAILED


def describe_error(e):
    if isinstance(e, socket.timeout):
        return "timed out"
    if isinstance(e, ssl.SSLError):
        return "TLS error: %s" % (getattr(e, "reason", None) or e)
    if isinstance(e, OSError) and e.errno in (errno.ECONNREFUSED, errno.ECONNRESET, errno.EPIPE):
        return os.strerror(e.errno)
    return redact("%s: %s" % (type(e).__name__, e))[:300]

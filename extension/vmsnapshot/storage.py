"""Azure Blob REST over SAS URIs with http.client: keep-alive pools, retries, proxies, verified TLS.

Nothing assumes a storage suffix: the URI's own scheme, host and port are used, so every cloud, custom
domain and Azure Stack Hub endpoint works. Plain http is refused except to loopback. Errors and logs
only ever carry redacted URIs.
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
from .settings import is_loopback

API_VERSION = "2020-04-08"
USER_AGENT = "vmsnapshot-linux"
RETRYABLE_STATUS = (408, 429, 500, 502, 503, 504)
PAGE = 512
MAX_PAGE_WRITE = 4 * 1024 * 1024
MAX_APPEND_BLOCK = 4 * 1024 * 1024


class StorageError(Exception):
    def __init__(self, message, status=None, error_code=None, body=""):
        Exception.__init__(self, redact(message))
        self.status = status
        self.error_code = error_code
        self.body = redact(body or "")


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


class Target(object):
    """A SAS URI split into what a connection needs."""

    def __init__(self, uri):
        scheme, rest = uri.split("://", 1)
        netloc, _, path_query = rest.partition("/")
        self.scheme = scheme.lower()
        host, port = netloc, None
        if netloc.startswith("["):
            close = netloc.index("]")
            host, port = netloc[1:close], netloc[close + 2:] or None
        elif ":" in netloc:
            host, port = netloc.rsplit(":", 1)
        self.host = host
        self.port = int(port) if port else (443 if self.scheme == "https" else 80)
        self.path = "/" + path_query
        self.uri = uri
        if self.scheme not in ("http", "https"):
            raise StorageError("unsupported URI scheme %s" % self.scheme)
        if self.scheme == "http" and not is_loopback(self.host):
            raise StorageError("plain http is only allowed to loopback, not %s" % self.host)

    @property
    def key(self):
        return (self.scheme, self.host, self.port)

    def with_query(self, extra):
        sep = "&" if "?" in self.path else "?"
        return self.path + sep + extra if extra else self.path


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
    ctx = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or None,
                                     capath=os.environ.get("SSL_CERT_DIR") or None)
    return ctx


class StorageClient(object):
    """Thread-safe pool of keep-alive connections per (scheme, host, port)."""

    def __init__(self, timeout=10.0, max_attempts=5, proxy=None, waagent_conf="/etc/waagent.conf",
                 context=None):
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
                conn = http.client.HTTPSConnection(target.host, target.port, timeout=timeout,
                                                   context=self._context)
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
    def request(self, method, uri, query="", headers=None, body=b"", deadline=None, max_attempts=None):
        """Send with retries on 408/429/5xx and connection errors, within `deadline` (monotonic)."""
        target = Target(uri)
        path = target.with_query(query)
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
                conn, reused = self._take(target, timeout)
                conn.request(method, path, body=body or None, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()  # also for HEAD (empty): an unread response would poison the connection
                rheaders = dict((k.lower(), v) for k, v in resp.getheaders())
                if resp.will_close:
                    conn.close()
                else:
                    self._give_back(target, conn)
            except (OSError, http.client.HTTPException, ssl.SSLError) as e:
                if conn is not None:
                    conn.close()
                last_error = e
                if isinstance(e, ssl.CertificateError) or "CERTIFICATE_VERIFY_FAILED" in str(e):
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
            return response
        reason = describe_error(last_error) if last_error else "no time left to retry"
        raise StorageError("%s %s failed after %d attempt(s): %s"
                           % (method, strip_query(uri), attempt, reason))

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
        target = Target(uri)
        conn, _ = self._take(target, self.timeout)
        return conn

    @staticmethod
    def snapshot_request(uri, metadata=()):
        """The whole snapshot request as bytes, built before the freeze and written as is inside it."""
        target = Target(uri)
        hdrs = request_headers(dict(("x-ms-meta-%s" % k, v) for k, v in metadata))
        host = target.host if target.port in (80, 443) else "%s:%d" % (target.host, target.port)
        lines = ["PUT %s HTTP/1.1" % target.with_query("comp=snapshot"), "Host: %s" % host]
        lines += ["%s: %s" % kv for kv in hdrs.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    # -- blob operations --------------------------------------------------------------------------
    def head(self, uri, deadline=None):
        return self.request("HEAD", uri, deadline=deadline)

    def snapshot(self, uri, metadata=(), deadline=None):
        headers = dict(("x-ms-meta-%s" % k, v) for k, v in metadata)
        return self.request("PUT", uri, "comp=snapshot", headers, deadline=deadline)

    def put_block_blob(self, uri, data, content_type="application/json"):
        resp = self.request("PUT", uri, "", {"x-ms-blob-type": "BlockBlob", "Content-Type": content_type}, data)
        if not resp.ok:
            raise StorageError("block blob write to %s answered %d %s" % (strip_query(uri), resp.status,
                                                                          resp.error_code or ""), resp.status)
        return resp

    def write_page_blob(self, uri, data, current_length):
        """Replace an existing page blob's content: resize to the padded size, write in 4 MiB pages."""
        padded = data + b" " * ((-len(data)) % PAGE)
        if len(padded) != current_length:
            r = self.request("PUT", uri, "comp=properties", {"x-ms-blob-content-length": str(len(padded))})
            if not r.ok:
                raise StorageError("page blob resize of %s answered %d" % (strip_query(uri), r.status), r.status)
        for start in range(0, len(padded), MAX_PAGE_WRITE):
            chunk = padded[start:start + MAX_PAGE_WRITE]
            r = self.request("PUT", uri, "comp=page", {"x-ms-page-write": "update",
                                                      "x-ms-range": "bytes=%d-%d" % (start, start + len(chunk) - 1)},
                             chunk)
            if not r.ok:
                raise StorageError("page write to %s answered %d" % (strip_query(uri), r.status), r.status)

    def append(self, uri, data):
        for start in range(0, len(data), MAX_APPEND_BLOCK):
            r = self.request("PUT", uri, "comp=appendblock", {}, data[start:start + MAX_APPEND_BLOCK])
            if not r.ok:
                raise StorageError("append to %s answered %d" % (strip_query(uri), r.status), r.status)

    def write_blob(self, uri, data, content_type="application/json", append_mode=False):
        """Write a report to a blob of whatever type the service pre-created (page, append or block)."""
        props = self.head(uri)
        blob_type = props.headers.get("x-ms-blob-type", "") if props.ok else ""
        if props.status not in (200, 404) and not props.ok:
            raise StorageError("reading properties of %s answered %d %s"
                               % (strip_query(uri), props.status, props.error_code or ""), props.status)
        if blob_type == "PageBlob":
            data = data[-10 * 1024 * 1024:]
            return self.write_page_blob(uri, data, int(props.headers.get("content-length", "0")))
        if blob_type == "AppendBlob":
            return self.append(uri, data)
        if append_mode and props.status == 404:
            r = self.request("PUT", uri, "", {"x-ms-blob-type": "AppendBlob"})
            if r.ok:
                return self.append(uri, data)
        return self.put_block_blob(uri, data, content_type)


def request_headers(extra=None, body=b""):
    """The headers every storage request carries, plus `extra`."""
    hdrs = {"x-ms-version": API_VERSION, "User-Agent": USER_AGENT,
            "x-ms-client-request-id": "%032x" % random.getrandbits(128)}
    if extra:
        hdrs.update(extra)
    hdrs["Content-Length"] = str(len(body or b""))
    return hdrs


def describe_error(e):
    if isinstance(e, socket.timeout):
        return "timed out"
    if isinstance(e, ssl.SSLError):
        return "TLS error: %s" % (getattr(e, "reason", None) or e)
    if isinstance(e, OSError) and e.errno in (errno.ECONNREFUSED, errno.ECONNRESET, errno.EPIPE):
        return os.strerror(e.errno)
    return redact("%s: %s" % (type(e).__name__, e))[:300]


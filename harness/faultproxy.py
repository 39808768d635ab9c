"""A fault-injecting, latency-adding HTTPS proxy in front of Azurite (no netem on these machines).

It terminates TLS with the test certificate, forwards each request to Azurite, and can instead (or in
addition) answer with an error status, hang, reset the connection, drip the body slowly, or delay every
request by a fixed round-trip time. SAS signatures do not cover the host, so a SAS URI rewritten to the
proxy's port still validates.
"""

import http.client
import http.server
import socket
import socketserver
import ssl
import struct
import threading
import time


class Rule(object):
    """When a request's method+path contains `match` (a string, or a tuple of strings all present),
    apply `action` (at most `times` times; None = always).

    action: "status" (answer `status` with `body`/`headers`), "hang" (never answer), "reset" (RST the
    connection), "slow" (forward, then drip the response body at `chunk_delay` per byte chunk),
    "delay" (forward after `delay` seconds).
    """

    def __init__(self, match, action, status=500, body=b"", headers=None, times=1, delay=0.0, chunk_delay=0.2):
        self.match = match
        self.action = action
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode()
        self.headers = headers or {}
        self.times = times
        self.delay = delay
        self.chunk_delay = chunk_delay
        self.hits = 0
        self.lock = threading.Lock()

    def take(self, line):
        needles = self.match if isinstance(self.match, tuple) else (self.match,)
        if not all(n in line for n in needles):
            return False
        with self.lock:
            if self.times is not None and self.hits >= self.times:
                return False
            self.hits += 1
            return True


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FaultProxy(object):
    def __init__(self, target_port, tls, rules=(), rtt_ms=0.0, host="127.0.0.1", target_host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.tls = tls
        self.rules = list(rules)
        self.rtt = rtt_ms / 1000.0
        self.log = []  # (monotonic time, wall time, request line, action)
        self._hung = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                line = "%s %s" % (self.command, self.path)
                rule = next((r for r in proxy.rules if r.take(line)), None)
                proxy.log.append((time.monotonic(), time.time(), line, rule.action if rule else "forward"))
                if proxy.rtt:
                    time.sleep(proxy.rtt / 2)
                if rule is not None and rule.action == "status":
                    return self._answer(rule.status, rule.headers, rule.body)
                if rule is not None and rule.action == "hang":
                    proxy._hung.append(self.connection)
                    time.sleep(3600)
                    return None
                if rule is not None and rule.action == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    raise ConnectionResetError("injected reset")
                if rule is not None and rule.action == "delay":
                    time.sleep(rule.delay)
                status, headers, data = proxy._forward(self.command, self.path, self.headers, body)
                if proxy.rtt:
                    time.sleep(proxy.rtt / 2)
                if rule is not None and rule.action == "slow":
                    return self._answer(status, headers, data, chunk_delay=rule.chunk_delay)
                return self._answer(status, headers, data)

            def _answer(self, status, headers, data, chunk_delay=0.0):
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in (
                        "content-length",
                        "connection",
                        "transfer-encoding",
                        "keep-alive",
                        "server",
                        "date",
                    ):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if chunk_delay and data:
                    for i in range(0, len(data), 16):
                        self.wfile.write(data[i : i + 16])
                        self.wfile.flush()
                        time.sleep(chunk_delay)
                else:
                    self.wfile.write(data)

            do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _handle

        self.server = _Server((host, 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls["cert"], tls["key"])
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self._local = threading.local()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _forward(self, method, path, headers, body):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            ctx = ssl.create_default_context(cafile=self.tls["ca"])
            conn = self._local.conn = http.client.HTTPSConnection(
                self.target[0], self.target[1], context=ctx, timeout=30
            )
        hdrs = dict((k, v) for k, v in headers.items() if k.lower() not in ("host", "connection"))
        try:
            conn.request(method, path, body=body or None, headers=hdrs)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn.request(method, path, body=body or None, headers=hdrs)
            resp = conn.getresponse()
        data = resp.read()
        return resp.status, dict(resp.getheaders()), data

    def rewrite(self, uri):
        """The same SAS URI, pointed at this proxy."""
        scheme, rest = uri.split("://", 1)
        path = rest.split("/", 1)[1]
        return "%s://127.0.0.1:%d/%s" % (scheme, self.port, path)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        for c in self._hung:
            try:
                c.close()
            except OSError:
                pass
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

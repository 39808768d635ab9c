"""HTTP/1.1 on sockets that are already open: pre-built requests out, whole responses in, no threads.

What the frozen window needs: every request written back to back the moment the file systems are frozen,
every answer read with one select loop until it is complete or the deadline passes (a hung peer is cut
there). Works on plain and TLS sockets (data the TLS layer already decrypted is drained too).
"""

import re
import select
import ssl
import time

MAX_RESPONSE = 4 * 1024 * 1024
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)")


class NoAnswer(Exception):
    """No (complete) HTTP answer: the peer closed, reset, or the deadline passed (`timed_out`)."""

    def __init__(self, message, timed_out=False):
        Exception.__init__(self, message)
        self.timed_out = timed_out


def complete(buf):
    """Whether `buf` holds a whole HTTP response (Content-Length or chunked framing, or no body)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = buf[:end].lower()
    m = _LENGTH.search(head)
    if m:
        return len(buf) - end - 4 >= int(m.group(1))
    if b"transfer-encoding: chunked" in head:
        return buf.endswith(b"0\r\n\r\n")
    return head[9:12] in (b"204", b"304")


def parse(raw):
    """(status, headers with lower-cased names, body) of a raw response; ValueError when it is not HTTP."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    first = lines[0].split()
    if len(first) < 2 or not first[0].startswith(b"HTTP/") or not first[1].isdigit():
        raise ValueError("not an HTTP response")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2 :]
        body = out
    return int(first[1]), headers, body


def read_responses(socks, deadline):
    """Read one response from each socket. Returns {sock: raw bytes or a NoAnswer/OSError}."""
    buffers = dict((s, b"") for s in socks)
    out = {}
    for s in socks:
        s.setblocking(False)
    pending = set(socks)

    def done(s, value):
        out[s] = value
        pending.discard(s)

    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            for s in list(pending):
                done(s, NoAnswer("no answer within the time allowed", timed_out=True))
            break
        ready, _, _ = select.select(list(pending), [], [], remaining)
        for s in ready:
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        done(s, buffers[s] or NoAnswer("the connection was closed without a response"))
                        break
                    buffers[s] += chunk
                    if complete(buffers[s]) or len(buffers[s]) > MAX_RESPONSE:
                        done(s, buffers[s])
                        break
                    if not (isinstance(s, ssl.SSLSocket) and s.pending()):
                        break
            except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                done(s, e)
    return out

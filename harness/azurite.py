"""Azurite, Microsoft's storage emulator, as a real component for tests, benchmarks and the demo.

Started as `node <azurite>/dist/src/blob/main.js` on 127.0.0.1 and a free port, HTTPS with a certificate
made at test time, `--disableTelemetry --skipApiVersionCheck`, stopped by PID. Blobs are created and SAS
URIs signed with the well-known development key (stdlib HMAC, no SDK needed).
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.parse

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
SAS_VERSION = "2019-12-12"


def azurite_main():
    path = os.environ.get("AZURITE_MAIN") or os.path.expanduser(
        "~/.cache/vmsnapshot-kit/azurite-3.35.0/node_modules/azurite/dist/src/blob/main.js"
    )
    if not os.path.exists(path):
        raise RuntimeError("Azurite is not installed at %s (run `make azurite`)" % path)
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sign(string_to_sign):
    return base64.b64encode(
        hmac.new(base64.b64decode(KEY), string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    ).decode()


def _expiry(hours):
    return (datetime.datetime.utcnow() + datetime.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Azurite(object):
    """A running Azurite blob service; use as a context manager."""

    def __init__(self, workdir, tls=None, port=None, host="127.0.0.1", in_memory=False, main=None, launcher=None):
        """main: Azurite's blob main.js (default: the cached install); launcher: argv -> argv that runs
        the command elsewhere (e.g. harness.debian_root.chroot_argv inside a Debian root)."""
        self.workdir = workdir
        self.main = main
        self.launcher = launcher
        self.tls = tls  # dict(ca, cert, key) from harness.certs.make_tls, or None for plain http
        self.host = host
        self.port = port or free_port()
        self.in_memory = in_memory
        self.proc = None

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    @property
    def endpoint(self):
        return "%s://%s:%d/%s" % (self.scheme, self.host, self.port, ACCOUNT)

    def start(self, timeout=20):
        data = os.path.join(self.workdir, "azurite-data")
        os.makedirs(data, exist_ok=True)
        cmd = [
            "node",
            self.main or azurite_main(),
            "--blobHost",
            self.host,
            "--blobPort",
            str(self.port),
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--silent",
        ]
        cmd += ["--inMemoryPersistence"] if self.in_memory else ["--location", data]
        if self.tls:
            cmd += ["--cert", self.tls["cert"], "--key", self.tls["key"]]
        if self.launcher:
            cmd = self.launcher(cmd)
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=self.workdir
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("Azurite did not start on port %d" % self.port) from None
                time.sleep(0.05)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- SAS --------------------------------------------------------------------------------------
    def account_sas(self, hours=2):
        fields = {
            "sv": SAS_VERSION,
            "ss": "b",
            "srt": "sco",
            "sp": "rwdlacup",
            "se": _expiry(hours),
            "spr": "https,http",
        }
        sts = "\n".join(
            [ACCOUNT, fields["sp"], fields["ss"], fields["srt"], "", fields["se"], "", fields["spr"], fields["sv"], ""]
        )
        fields["sig"] = _sign(sts)
        return urllib.parse.urlencode(fields)

    def blob_sas_uri(self, container, blob, permissions="rcw", hours=2, start=None, expiry=None):
        """A service SAS URI for one blob, as Azure Backup hands them to the extension."""
        se = expiry or _expiry(hours)
        st = start or ""
        resource = "/blob/%s/%s/%s" % (ACCOUNT, container, blob)
        sts = "\n".join([permissions, st, se, resource, "", "", "https,http", SAS_VERSION, "b", "", "", "", "", "", ""])
        q = {"sv": SAS_VERSION, "sr": "b", "sp": permissions, "se": se, "spr": "https,http", "sig": _sign(sts)}
        if st:
            q["st"] = st
        return "%s/%s/%s?%s" % (self.endpoint, container, blob, urllib.parse.urlencode(q))

    # -- set-up requests --------------------------------------------------------------------------
    def _request(self, method, path, query="", headers=None, body=b""):
        sep = "&" if "?" in path else "?"
        url_path = "/%s/%s%s%s" % (ACCOUNT, path, sep, "&".join(x for x in (query, self.account_sas()) if x))
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.tls["ca"])
            conn = http.client.HTTPSConnection(self.host, self.port, context=ctx, timeout=30)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            hdrs = {"x-ms-version": "2020-04-08", "Content-Length": str(len(body))}
            hdrs.update(headers or {})
            conn.request(method, url_path, body=body or None, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), data
        finally:
            conn.close()

    def create_container(self, name):
        status, _, body = self._request("PUT", name, "restype=container")
        if status not in (201, 409):
            raise RuntimeError("create container %s: %d %s" % (name, status, body[:200]))

    def create_page_blob(self, container, blob, size=1 << 30):
        status, _, body = self._request(
            "PUT",
            "%s/%s" % (container, blob),
            "",
            {"x-ms-blob-type": "PageBlob", "x-ms-blob-content-length": str(size)},
        )
        if status != 201:
            raise RuntimeError("create page blob %s: %d %s" % (blob, status, body[:200]))

    def create_append_blob(self, container, blob):
        status, _, body = self._request("PUT", "%s/%s" % (container, blob), "", {"x-ms-blob-type": "AppendBlob"})
        if status != 201:
            raise RuntimeError("create append blob %s: %d %s" % (blob, status, body[:200]))

    def read_blob(self, container, blob):
        """GET a small blob's content (status and log blobs only: never a disk page blob)."""
        status, headers, body = self._request("GET", "%s/%s" % (container, blob))
        if status != 200:
            raise RuntimeError("read %s: %d" % (blob, status))
        return body

    def list_snapshots(self, container):
        """[(blob name, snapshot time, metadata dict)] of every snapshot in `container`."""
        import xml.etree.ElementTree as ET

        status, _, body = self._request("GET", container, "restype=container&comp=list&include=snapshots,metadata")
        if status != 200:
            raise RuntimeError("list %s: %d" % (container, status))
        out = []
        for b in ET.fromstring(body).iter("Blob"):
            snap = b.findtext("Snapshot")
            if snap:
                meta = {m.tag: m.text for m in (b.find("Metadata") or [])}
                out.append((b.findtext("Name"), snap, meta))
        return out

"""Plain http only to true loopback: the decision is made from the URI's text alone,
before any DNS lookup. Names that start with `127.` and odd address forms are refused even when the
resolver (here: one that sends every name to a local listener, as an attacker's DNS would) would
connect; no request ever leaves."""

import socket
import threading

import pytest
from vmsnapshot.sasuri import is_loopback
from vmsnapshot.settings import SettingsError, check_blob_uri
from vmsnapshot.storage import StorageClient, StorageError

NOT_LOOPBACK = [
    "127.attacker.example",
    "127.0.0.1.attacker.example",
    "localhost.evil",
    "0177.0.0.1",
    "0x7f.0.0.1",
    "127.1",
    "2130706433",
    "127.0.0.01",
    "[::ffff:127.0.0.1]",
    "user:pw@127.0.0.1",
]
LOOPBACK = ["127.0.0.1", "127.1.2.3", "localhost", "LocalHost", "[::1]", "::1"]


@pytest.mark.parametrize("host", NOT_LOOPBACK)
def test_not_loopback(host):
    assert not is_loopback(host)


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback(host):
    assert is_loopback(host)


class Listener(object):
    """A TCP listener on 127.0.0.1 that records every connection made to it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self.stopped = True
        self.thread.join()
        self.sock.close()


@pytest.fixture
def attacker_dns(monkeypatch):
    """Every host name resolves to a local listener, as if its owner's DNS pointed it at us."""
    listener = Listener()
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        return real("127.0.0.1", port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    yield listener
    listener.close()


@pytest.mark.parametrize("host", [h for h in NOT_LOOPBACK if "@" not in h])
def test_no_request_leaves_for_a_name_that_only_looks_like_loopback(attacker_dns, host):
    uri = "http://%s:%d/container/disk.vhd?sv=1&sig=topsecret" % (host, attacker_dns.port)
    client = StorageClient(timeout=2, max_attempts=1, waagent_conf="/nonexistent")
    with pytest.raises(StorageError) as e:
        client.head(uri)
    assert "topsecret" not in str(e.value)
    with pytest.raises(SettingsError) as s:
        check_blob_uri("statusBlobUri", uri)
    assert s.value.code == 11 and "plain http" in s.value.message
    client.close()
    assert attacker_dns.connections == 0, "a request left for %s" % host


def test_true_loopback_still_connects(attacker_dns):
    """The control: the same client does reach the listener for a literal loopback address."""
    client = StorageClient(timeout=2, max_attempts=1, waagent_conf="/nonexistent")
    with pytest.raises(StorageError):  # the listener closes without answering
        client.head("http://127.0.0.1:%d/container/disk.vhd?sig=x" % attacker_dns.port)
    client.close()
    assert attacker_dns.connections == 1

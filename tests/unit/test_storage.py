"""storage.py against Azurite over HTTPS: 2xx or StorageError with status and error_code, keyword-only
options, the write_blob types, the snapshot request built for the frozen window, and retries."""

import socket
import ssl

import pytest
from vmsnapshot import storage
from vmsnapshot.storage import StorageClient, StorageError

from harness.faultproxy import FaultProxy, Rule

CONTAINER = "unit-storage"


@pytest.fixture(scope="module")
def blobs(azurite):
    azurite.create_container(CONTAINER)
    return azurite


@pytest.fixture
def client(tls, monkeypatch):
    for name in ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    c = StorageClient(
        timeout=5.0, max_attempts=3, waagent_conf="/nonexistent", context=ssl.create_default_context(cafile=tls["ca"])
    )
    yield c
    c.close()


def test_options_are_keyword_only(tls):
    with pytest.raises(TypeError):
        StorageClient(5.0)
    c = StorageClient(timeout=1.0, waagent_conf="/nonexistent")
    with pytest.raises(TypeError):
        c.snapshot("https://127.0.0.1:1/c/b?sig=x", ())
    with pytest.raises(TypeError):
        c.request("HEAD", "https://127.0.0.1:1/c/b?sig=x", "comp=snapshot")


def test_head_and_snapshot_of_a_page_blob(blobs, client):
    blobs.create_page_blob(CONTAINER, "disk0", size=1 << 20)
    uri = blobs.blob_sas_uri(CONTAINER, "disk0")
    props = client.head(uri)
    assert props.status == 200 and props.headers["x-ms-blob-type"] == "PageBlob"
    snap = client.snapshot(uri, metadata=[("BackupTaskId", "unit")])
    assert snap.status == 201 and snap.headers["x-ms-snapshot"]
    assert ("disk0", snap.headers["x-ms-snapshot"], {"BackupTaskId": "unit"}) in blobs.list_snapshots(CONTAINER)


def test_a_missing_blob_raises_with_the_service_error_code(blobs, client):
    uri = blobs.blob_sas_uri(CONTAINER, "no-such-disk")
    for call in (client.head, client.snapshot):
        with pytest.raises(StorageError) as e:
            call(uri)
        assert (e.value.status, e.value.error_code) == (404, "BlobNotFound")
        assert e.value.response.status == 404 and "no-such-disk" in str(e.value)
        assert uri.split("sig=")[1].split("&")[0] not in str(e.value)


def test_a_bad_signature_is_403_and_never_shown(blobs, client):
    blobs.create_page_blob(CONTAINER, "disk1", size=1 << 20)
    uri = blobs.blob_sas_uri(CONTAINER, "disk1").replace("sig=", "sig=AAAA")
    with pytest.raises(StorageError) as e:
        client.head(uri)
    assert e.value.status == 403 and e.value.error_code
    assert "AAAA" not in str(e.value)


def test_no_answer_is_a_client_error_code(client):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    with pytest.raises(StorageError) as e:
        client.head("https://127.0.0.1:%d/c/b?sig=SECRET" % port)
    assert (e.value.status, e.value.error_code) == (None, storage.CONNECTION_FAILED)
    assert "SECRET" not in str(e.value) and "3 attempt(s)" in str(e.value)


def test_an_untrusted_certificate_is_not_retried(blobs, client):
    c = StorageClient(timeout=5.0, max_attempts=5, waagent_conf="/nonexistent", context=ssl.create_default_context())
    with pytest.raises(StorageError) as e:
        c.head(blobs.blob_sas_uri(CONTAINER, "disk0"))
    assert (e.value.status, e.value.error_code) == (None, storage.UNTRUSTED_CERTIFICATE)
    assert "1 attempt(s)" in str(e.value)
    c.close()


@pytest.mark.parametrize(
    "uri",
    ["not a uri", "ftp://127.0.0.1/c/b?sig=x", "http://storage.example/c/b?sig=x", "https://127.0.0.1:0/c/b?sig=x"],
)
def test_unusable_uris_never_connect(client, uri):
    with pytest.raises(StorageError) as e:
        client.head(uri)
    assert (e.value.status, e.value.error_code) == (None, storage.INVALID_URI)


def test_retries_a_throttled_snapshot_then_reports_its_code(blobs, client, tls):
    blobs.create_page_blob(CONTAINER, "disk2", size=1 << 20)
    rate = Rule(
        "comp=snapshot",
        "status",
        503,
        body="The rate of snapshot blob calls is exceeded.",
        headers={"x-ms-error-code": "SnapshotOperationRateExceeded"},
        times=2,
    )
    with FaultProxy(blobs.port, tls, [rate]) as proxy:
        uri = proxy.rewrite(blobs.blob_sas_uri(CONTAINER, "disk2"))
        assert client.snapshot(uri).attempts == 3  # two throttled answers, then the snapshot
        rate.times, rate.hits = None, 0
        with pytest.raises(StorageError) as e:
            client.snapshot(uri)
    assert (e.value.status, e.value.error_code) == (503, "SnapshotOperationRateExceeded")
    assert e.value.response.attempts == 3


def test_write_blob_into_each_type(blobs, client):
    blobs.create_page_blob(CONTAINER, "status-page", size=1024)
    client.write_blob(blobs.blob_sas_uri(CONTAINER, "status-page"), b'{"a": 1}')
    assert blobs.read_blob(CONTAINER, "status-page").rstrip(b" ") == b'{"a": 1}'
    blobs.create_append_blob(CONTAINER, "log-append")
    uri = blobs.blob_sas_uri(CONTAINER, "log-append")
    client.write_blob(uri, b"one\n", content_type="text/plain", append_mode=True)
    client.write_blob(uri, b"two\n", content_type="text/plain", append_mode=True)
    assert blobs.read_blob(CONTAINER, "log-append") == b"one\ntwo\n"
    new_log = blobs.blob_sas_uri(CONTAINER, "log-new")
    client.write_blob(new_log, b"first\n", append_mode=True)  # absent: created as an append blob
    assert client.head(new_log).headers["x-ms-blob-type"] == "AppendBlob"
    block = blobs.blob_sas_uri(CONTAINER, "status-block")
    client.write_blob(block, b"{}")
    assert blobs.read_blob(CONTAINER, "status-block") == b"{}"
    with pytest.raises(TypeError):
        client.write_blob(block, b"{}", "text/plain")


def test_a_failed_write_raises_with_status(blobs, client):
    uri = blobs.blob_sas_uri(CONTAINER, "read-only", permissions="r")
    with pytest.raises(StorageError) as e:
        client.write_blob(uri, b"{}")
    assert e.value.status == 403 and e.value.error_code


def test_the_prebuilt_snapshot_request_creates_a_snapshot(blobs, client):
    blobs.create_page_blob(CONTAINER, "disk3", size=1 << 20)
    uri = blobs.blob_sas_uri(CONTAINER, "disk3")
    raw = StorageClient.snapshot_request(uri, [("BackupTaskId", "raw")])
    assert raw.startswith(b"PUT /") and b"comp=snapshot HTTP/1.1\r\n" in raw and raw.endswith(b"\r\n\r\n")
    conn = client.checkout(uri)
    try:
        conn.sock.sendall(raw)
        answer = conn.sock.recv(65536)
    finally:
        conn.close()
    assert answer.startswith(b"HTTP/1.1 201")
    assert any(meta == {"BackupTaskId": "raw"} for name, _, meta in blobs.list_snapshots(CONTAINER) if name == "disk3")


def test_checkout_failure_is_a_storage_error(client):
    with pytest.raises(StorageError) as e:
        client.checkout("https://127.0.0.1:1/c/b?sig=x")
    assert (e.value.status, e.value.error_code) == (None, storage.CONNECTION_FAILED)


def test_a_uri_with_user_credentials_is_refused(client):
    with pytest.raises(StorageError) as e:
        client.head("https://kituser:kitpassword@127.0.0.1:1/c/b?sig=x")
    assert (e.value.status, e.value.error_code) == (None, storage.INVALID_URI)
    assert "kitpassword" not in str(e.value)

"""The host client's pieces on their own: outcome codes 555-558 from real sockets, response framing, the
.NET dates of DirectDrive identifiers, and redaction of the host path's secrets."""

import socket
import threading
import time

import pytest
from vmsnapshot import hostsnapshot as hs
from vmsnapshot import redact


def serve_once(answer, close=True):
    """A one-shot TCP server on loopback answering `answer` bytes (None: read and never answer)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def run():
        conn, _ = listener.accept()
        conn.recv(65536)
        if answer is None:
            stop.wait(30)
        else:
            conn.sendall(answer)
        if close:
            conn.close()
        listener.close()

    threading.Thread(target=run, daemon=True).start()
    return "http://127.0.0.1:%d" % listener.getsockname()[1], stop


def http(status, body, extra=""):
    return ("HTTP/1.1 %d X\r\nContent-Length: %d\r\n%s\r\n" % (status, len(body), extra)).encode() + body


CODES = [
    ("200-json", http(200, b'{"result": "ok"}'), 200, True),
    ("201-json", http(201, b'{"a": 1}'), 201, True),
    ("500-error-body", http(500, b'{ "error": {"code": "x"}}'), 500, False),
    ("500-error-body-tight", http(500, b'{"error":"x"}'), 500, False),
    ("500-text", http(500, b"Internal Server Error"), 556, False),
    ("500-empty", http(500, b""), 556, False),
    ("200-empty", http(200, b""), 557, False),
    ("200-whitespace", http(200, b"  \r\n"), 557, False),
    ("200-not-json", http(200, b"<html/>"), 558, False),
    ("200-json-list", http(200, b"[1, 2]"), 558, False),
    ("not-http", b"SSH-2.0-OpenSSH\r\n\r\n", 558, False),
    ("404", http(404, b"nope"), 404, False),
    ("closed-without-answer", b"", 555, False),
    ("chunked", b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n3\r\n 1}\r\n0\r\n\r\n', 200, True),
]


@pytest.mark.parametrize("case", CODES, ids=[c[0] for c in CODES])
def test_outcome_codes_of_a_host_call(case):
    _, answer, code, ok = case
    endpoint, _ = serve_once(answer)
    call = hs.post(endpoint, hs.PRESNAPSHOT_PATH, {"taskId": "t"}, 5.0, "presnapshot")
    assert (call.code, call.ok) == (code, ok), call.message


def test_refused_connection_is_555():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    call = hs.post("http://127.0.0.1:%d" % port, hs.PRESNAPSHOT_PATH, {}, 5.0, "presnapshot")
    assert call.code == 555 and "refused" in call.message.lower()


def test_a_host_that_never_answers_is_cut_at_the_deadline():
    endpoint, stop = serve_once(None)
    batch = hs.HostSnapshotBatch(endpoint, {"taskId": "t"}, [0, -1])
    assert batch.prepare()[0].ok
    started = time.monotonic()
    batch.fire(started + 0.5)
    took = time.monotonic() - started
    stop.set()
    assert 0.45 < took < 1.0
    assert [r.ok for r in batch.results] == [False, False] and batch.call.code == 555


def test_batch_parses_only_when_results_are_read():
    body = (
        b'{"snapshotInfo": [{"isSuccessful": "true", "snapshotUri": "https://a/c/d.vhd?snapshot=1", '
        b'"errorMessage": "", "statusCode": 0, "ddSnapshotIdentifier": null}, {"isSuccessful": false, '
        b'"snapshotUri": "", "errorMessage": "boom", "statusCode": 500}]}'
    )
    endpoint, _ = serve_once(http(200, body))
    batch = hs.HostSnapshotBatch(endpoint, {"taskId": "t"}, [0, -1])
    batch.prepare()
    batch.fire(time.monotonic() + 5)
    assert batch._results is None and batch.call.code is None  # nothing parsed inside the window
    info = [r.to_info() for r in batch.results]
    assert info[0] == {
        "isSuccessful": True,
        "snapshotUri": "https://a/c/d.vhd?snapshot=1",
        "errorMessage": "",
        "blobUri": "https://a/c/d.vhd",
        "directDriveSnapshotIdentifier": None,
    }
    assert info[1]["isSuccessful"] is False and info[1]["errorMessage"] == "boom"


@pytest.mark.parametrize(
    "iso,ms",
    [
        ("2026-01-01T00:00:00.123Z", 1767225600123),
        ("2026-01-01T00:00:00Z", 1767225600000),
        ("2026-01-01T00:00:00", 1767225600000),
        ("2026-01-01T00:00:00.1234567+00:00", 1767225600123),
    ],
)
def test_directdrive_creation_time_becomes_a_dotnet_date(iso, ms):
    assert hs.dotnet_date(iso) == {"DateTime": "/Date(%d)/" % ms, "OffsetMinutes": 0}


def test_directdrive_entry_shape():
    r = hs.HostDiskResult.from_entry(
        0,
        1,
        {
            "isSuccessful": "True",
            "snapshotUri": "https://a/c/dd/snapshots/x",
            "ddSnapshotIdentifier": {
                "creationTime": "2026-01-01T00:00:00Z",
                "id": "i",
                "token": "k",
                "instantAccessDurationMinutes": 5,
            },
        },
    )
    assert r.to_info() == {
        "isSuccessful": True,
        "snapshotUri": None,
        "errorMessage": "",
        "blobUri": "https://a/c/dd",
        "directDriveSnapshotIdentifier": {
            "creationTime": {"DateTime": "/Date(1767225600000)/", "OffsetMinutes": 0},
            "id": "i",
            "token": "k",
            "instantAccessDurationMinutes": 5,
        },
    }


def test_host_clock_from_response_time():
    assert hs.host_clock({"year": 2026, "month": 1, "day": 1, "hour": 0, "minute": 0, "second": 0}) == 1767225600.0
    assert hs.host_clock({"year": "x"}) is None and hs.host_clock(None) is None


def test_host_secrets_are_redacted_by_value_and_by_field_name():
    secret = "a-very-secret-encryption-blob-1234"
    redact.add_secret(secret)
    assert secret not in redact.redact("settings were %s" % secret)
    assert "tok-123" not in redact.redact('{"taskId": "t", "snapshotTaskToken": "tok-123"}')
    assert "enc-x" not in redact.redact("x-ms-meta-DiskEncryptionSettings: enc-x")
    assert '\\"q' not in redact.redact('{"DiskEncryptionSettings": "a\\"q"}')
    assert redact.redact('{"taskId": "t"}') == '{"taskId": "t"}'


def test_a_connection_the_host_closed_while_idle_is_replaced_before_sending():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(2)
    body = b'{"snapshotInfo": [{"isSuccessful": "true", "snapshotUri": "https://a/c/d?snapshot=1"}]}'

    def run():
        first, _ = listener.accept()
        first.close()  # an idle keep-alive timeout on the host side
        second, _ = listener.accept()
        second.recv(65536)
        second.sendall(http(200, body))
        second.close()

    threading.Thread(target=run, daemon=True).start()
    batch = hs.HostSnapshotBatch("http://127.0.0.1:%d" % listener.getsockname()[1], {"taskId": "t"}, [0])
    assert batch.prepare()[0].ok
    time.sleep(0.2)
    batch.fire(time.monotonic() + 5)
    assert batch.call.code is None and [r.ok for r in batch.results] == [True] and batch.call.code == 200
    listener.close()

"""snapshots.outcome_code: the job's code from the per-disk results, by the storage error code."""

import pytest
from vmsnapshot import codes, hostsnapshot
from vmsnapshot.snapshots import DiskResult, outcome_code


def result(i, ok, error_code=None, message=""):
    r = DiskResult(i, "https://acct.blob.core.windows.net/c/disk%d?sig=x" % i)
    r.ok, r.error_code, r.message = ok, error_code, message or ("" if ok else "HTTP 500")
    return r


@pytest.mark.parametrize(
    "results, code",
    [
        ([], codes.SNAPSHOT_FAILED_NO_NETWORK),
        ([result(0, True), result(1, True)], None),
        ([result(0, True), result(1, False, "InternalError")], codes.SNAPSHOT_PARTIAL_FAILURE),
        ([result(0, False), result(1, False, "ServerBusy")], codes.SNAPSHOT_FAILED_NO_NETWORK),
        ([result(0, True), result(1, False, "SnapshotOperationRateExceeded")], codes.SNAPSHOT_RATE_EXCEEDED),
        ([result(0, False, "SnapshotCountExceeded")], codes.SNAPSHOT_LIMIT_REACHED),
        (
            [result(0, False, "SnapshotCountExceeded"), result(1, False, "SnapshotOperationRateExceeded")],
            codes.SNAPSHOT_RATE_EXCEEDED,
        ),
        # the message alone no longer decides: a code must say it
        (
            [result(0, True), result(1, False, None, "The rate of snapshot blob calls is exceeded")],
            codes.SNAPSHOT_PARTIAL_FAILURE,
        ),
    ],
)
def test_outcome_code(results, code):
    got, detail = outcome_code(results)
    assert got == code and (code is None) == (detail == "")


@pytest.mark.parametrize(
    "message, code",
    [
        ("409: The snapshot count against this blob has been exceeded.", codes.SNAPSHOT_LIMIT_REACHED),
        ("The rate of snapshot blob calls is exceeded.", codes.SNAPSHOT_RATE_EXCEEDED),
        ("disk is busy", codes.SNAPSHOT_PARTIAL_FAILURE),
    ],
)
def test_storage_errors_the_host_relays_as_text_get_their_code(message, code):
    failed = hostsnapshot.HostDiskResult.from_entry(
        0, "d0", {"isSuccessful": False, "errorMessage": message, "statusCode": 2}
    )
    ok = hostsnapshot.HostDiskResult.from_entry(1, "d1", {"isSuccessful": True, "snapshotUri": "https://x/c/b"})
    assert outcome_code([failed, ok])[0] == code

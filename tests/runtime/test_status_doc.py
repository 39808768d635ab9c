"""The local status document stays under the agent's 128 KiB limit, losing detail in a fixed order."""

import json

from vmsnapshot import codes, status


def report_with_disks(n, error_len):
    r = status.Report(3, "en-us", "task-1")
    r.snapshot_info = [
        {
            "isSuccessful": False,
            "snapshotUri": "",
            "errorMessage": "e" * error_len,
            "blobUri": "https://acct.example/c/disk%d.vhd" % i,
            "directDriveSnapshotIdentifier": None,
        }
        for i in range(n)
    ]
    r.finish(codes.SNAPSHOT_FAILED_NO_NETWORK, "all failed")
    return r


def test_small_status_keeps_full_error_messages():
    doc = json.loads(status.local_status(report_with_disks(4, 500)))
    inner = json.loads(doc[0]["status"]["substatus"][0]["name"])[0]["status"]
    assert [len(i["errorMessage"]) for i in inner["snapshotInfo"]] == [500] * 4
    assert doc[0]["status"]["status"] == "error" and doc[0]["status"]["code"] == 76


def test_long_errors_are_cut_before_the_blob_report_is_dropped():
    text = status.local_status(report_with_disks(128, 2000))
    assert len(text) <= status.LOCAL_LIMIT
    inner = json.loads(json.loads(text)[0]["status"]["substatus"][0]["name"])[0]["status"]
    assert max(len(i["errorMessage"]) for i in inner["snapshotInfo"]) == 200


def test_status_without_room_for_the_blob_report_is_still_valid():
    r = report_with_disks(128, 2000)
    r.telemetry = {"k%d" % i: "v" * 1000 for i in range(200)}
    text = status.local_status(r)
    doc = json.loads(text)
    assert len(text) <= status.LOCAL_LIMIT and "substatus" not in doc[0]["status"]
    assert doc[0]["status"]["formattedMessage"]["lang"] == "en-US"

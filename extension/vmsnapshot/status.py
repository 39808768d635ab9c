"""The two status documents: the local status file the agent parses, and the report in the status blob.

Total builders: any code, any missing field, still yields a valid document (the old extension lost its
final status on an unknown code). The local file reports the real outcome to the
agent, and carries the blob report in substatus[0].name as the Backup service expects.

Every reported value passes through redact.clean (signatures, userinfo, control characters). The
'transitioning' write also lays down a small reserve file next to the status: on a full file system
the final write frees it and retries, then falls back to rewriting the existing status in place, so a
job's outcome is never lost to ENOSPC.
"""

import datetime
import json
import logging
import os
import platform
import sys
import time

from . import agentcontract, codes, identity
from .fileutil import atomic_write, ensure_dir, remove, rewrite_in_place
from .redact import clean

LOCAL_LIMIT = 120 * 1024  # stay under the agent's 128 KiB
# Who took the snapshots, appended to messageStr as the existing extension does.
ATTRIBUTION = ("snapshotCreator", "hostStatusCodePreSnapshot", "hostStatusCodeDoSnapshot")
RESERVE_BYTES = 2 * 128 * 1024  # room for a full-size temp file and status even on a full file system
log = logging.getLogger(__name__)


def iso_now():
    return datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")


def status_word(code, terminal=True):
    if not terminal:
        return agentcontract.STATUS_TRANSITIONING
    return agentcontract.STATUS_SUCCESS if code in codes.SUCCESS_CODES else agentcontract.STATUS_ERROR


class Report(object):
    """What a job has to say; filled in as the job goes."""

    def __init__(self, seq, locale=None, task_id=None, start_ticks=None, vm_type=None):
        self.seq = seq
        self.locale = locale
        self.task_id = task_id
        self.start_ticks = start_ticks
        self.vm_type = vm_type
        self.code = codes.TRANSITIONING
        self.terminal = False
        self.detail = ""
        self.consistency = codes.CONSISTENCY_NONE
        self.snapshot_info = None
        self.telemetry = {}
        self.machine_id = ""
        self.storage_details = None
        self.status_blob_error = False

    def finish(self, code, detail="", consistency=None):
        self.code, self.detail, self.terminal = code, detail, True
        if consistency is not None:
            self.consistency = consistency

    def message(self):
        return codes.message(self.code, clean(self.detail), self.locale)


def blob_report(report):
    """The JSON text PUT to statusBlobUri, in the existing extension's shape (without its bugs)."""
    lang, text = report.message()
    message_str = text + (" statusBlobUploadError=true," if report.status_blob_error else "")
    message_str += "".join(" %s=%s," % (k, report.telemetry[k]) for k in ATTRIBUTION if k in report.telemetry)
    run_code = codes.SNAPSHOT_FAILED_NO_NETWORK if report.code == codes.SNAPSHOT_PARTIAL_FAILURE else report.code
    telemetry = dict(report.telemetry)
    telemetry.setdefault("extensionVersion", identity.VERSION)
    telemetry.setdefault("pythonVersion", "%d.%d.%d" % sys.version_info[:3])
    telemetry.setdefault("kernelVersion", platform.release())
    telemetry.setdefault("platformArchitecture", platform.machine())
    telemetry["extErrorCode"] = codes.name_of(report.code)
    telemetry["consistencyType"] = codes.CONSISTENCY_NAMES.get(report.consistency, "none")
    doc = [
        {
            "version": "1.0",
            "timestampUTC": "/Date(%d)/" % int(time.time() * 1000),
            "status": {
                "name": identity.HANDLER_NAME,
                "operation": "Enable",
                "status": status_word(report.code, report.terminal),
                "substatus": [],
                "code": str(run_code),
                "taskId": clean(report.task_id or ""),
                "formattedMessage": {
                    "lang": lang,
                    "message": json.dumps(
                        {
                            "messageStr": message_str,
                            "snapshotConsistency": report.consistency,
                            "jobMessage": clean(report.detail)[:2000],
                            "isSizeComputationFailed": bool(report.storage_details is None),
                        }
                    ),
                },
                "storageDetails": report.storage_details
                or {
                    "partitionCount": 0,
                    "totalUsedSizeInBytes": 0,
                    "isStoragespacePresent": False,
                    "isSizeComputationFailed": True,
                },
                "commandStartTimeUTCTicks": report.start_ticks or "",
                "telemetryData": [{"Key": k, "Value": clean(str(v))} for k, v in sorted(telemetry.items())],
                "uniqueMachineId": report.machine_id or "",
                "snapshotInfo": report.snapshot_info,
                "vmHealthInfo": {"vmHealthState": codes.health_of(report.code), "vmHealthStatusCode": report.code},
            },
        }
    ]
    out = json.dumps(doc)
    # .NET JSON dates are written with escaped slashes.
    return out.replace('"/Date(', '"\\/Date(').replace(')/"', ')\\/"')


def local_status(report, operation="Enable", compact=False):
    """The status/<seq>.status document (a JSON array, lowercase status, lang always present), kept under
    the agent's 128 KiB: long per-disk error messages are cut first, then the blob report is left out."""
    lang, text = report.message()
    word = status_word(report.code, report.terminal)
    status = {
        "name": identity.TYPE,
        "operation": operation,
        "status": word,
        "code": report.code,
        "configurationAppliedTime": iso_now(),
        "formattedMessage": {"lang": lang, "message": text},
    }
    doc = [{"version": "1.0", "timestampUTC": iso_now(), "status": status}]
    for attempt in () if compact else ("full", "short errors"):
        if attempt == "short errors":
            if not report.snapshot_info:
                break
            for info in report.snapshot_info:
                info["errorMessage"] = info.get("errorMessage", "")[:200]
        status["substatus"] = [
            {
                "name": blob_report(report),
                "status": word,
                "code": report.code,
                "formattedMessage": {"lang": lang, "message": text},
            }
        ]
        out = json.dumps(doc)
        if len(out) <= LOCAL_LIMIT:
            return out
    status.pop("substatus", None)
    return json.dumps(doc)


def reserve_path(status_dir, seq):
    return "%s/%s.status.reserve" % (status_dir.rstrip("/"), seq)


def write_local(status_dir, seq, report, operation="Enable"):
    """Write status/<seq>.status. A 'transitioning' write also lays down the sequence's reserve file; a
    final write that hits a full file system frees it and retries, then rewrites the existing status
    in place. Failures are said on stderr (the agent captures it) and in the log, then raised."""
    ensure_dir(status_dir, 0o700)
    path = "%s/%s.status" % (status_dir.rstrip("/"), seq)
    reserve = reserve_path(status_dir, seq)
    text = local_status(report, operation)
    try:
        atomic_write(path, text, 0o600)
    except (IOError, OSError) as e:
        _say("cannot write %s: %s; using the reserved space" % (path, e.strerror or e))
        remove(reserve)
        if not _write_despite(path, report, operation, text):
            _say("the status %s could not be written: %s" % (path, e.strerror or e))
            raise
        return path
    if report.terminal:
        remove(reserve)
    else:
        try:
            atomic_write(reserve, b"\0" * RESERVE_BYTES, 0o600)
        except (IOError, OSError) as e:
            remove(reserve)
            _say("cannot reserve space for the final status in %s: %s" % (status_dir, e.strerror or e))
    return path


def _write_despite(path, report, operation, text):
    """Second chances for a status write that failed (ENOSPC, EDQUOT): again with the reserve freed,
    then in place over the existing file (compact when the full text would not fit its blocks)."""
    try:
        atomic_write(path, text, 0o600)
        return True
    except (IOError, OSError):
        pass
    try:
        size = os.lstat(path).st_size
        if len(text.encode("utf-8")) > size:
            text = local_status(report, operation, compact=True)
        rewrite_in_place(path, text)
        return True
    except (IOError, OSError):
        return False


def _say(message):
    """Tell the agent (stderr) and the log: a status problem must never be silent."""
    try:
        sys.stderr.write("vmsnapshot: %s\n" % clean(message))
        sys.stderr.flush()
    except (IOError, OSError, ValueError):
        pass
    log.error("%s", message)

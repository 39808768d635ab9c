"""The two status documents: the local status file the agent parses, and the report in the status blob.

Total builders: any code, any missing field, still yields a valid document (contract §7.1; the old
extension lost its final status on an unknown code). The local file reports the real outcome to the
agent, and carries the blob report in substatus[0].name as the Backup service expects.
"""

import datetime
import json
import platform
import sys
import time

from . import codes, identity
from .fileutil import atomic_write, ensure_dir
from .redact import redact

LOCAL_LIMIT = 120 * 1024  # stay under the agent's 128 KiB
# Who took the snapshots, appended to messageStr as the existing extension does (reference §6.1).
ATTRIBUTION = ("snapshotCreator", "hostStatusCodePreSnapshot", "hostStatusCodeDoSnapshot")


def iso_now():
    return datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")


def status_word(code, terminal=True):
    if not terminal:
        return "transitioning"
    return "success" if code in codes.SUCCESS_CODES else "error"


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
        return codes.message(self.code, redact(self.detail), self.locale)


def blob_report(report):
    """The JSON text PUT to statusBlobUri (shape: vmsnapshotlinux-reference §6.1, bugs fixed)."""
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
    doc = [{
        "version": "1.0",
        "timestampUTC": "/Date(%d)/" % int(time.time() * 1000),
        "status": {
            "name": identity.HANDLER_NAME,
            "operation": "Enable",
            "status": status_word(report.code, report.terminal),
            "substatus": [],
            "code": str(run_code),
            "taskId": report.task_id or "",
            "formattedMessage": {"lang": lang, "message": json.dumps({
                "messageStr": message_str, "snapshotConsistency": report.consistency,
                "jobMessage": redact(report.detail)[:2000], "isSizeComputationFailed":
                    bool(report.storage_details is None)})},
            "storageDetails": report.storage_details or {
                "partitionCount": 0, "totalUsedSizeInBytes": 0, "isStoragespacePresent": False,
                "isSizeComputationFailed": True},
            "commandStartTimeUTCTicks": report.start_ticks or "",
            "telemetryData": [{"Key": k, "Value": redact(str(v))} for k, v in sorted(telemetry.items())],
            "uniqueMachineId": report.machine_id or "",
            "snapshotInfo": report.snapshot_info,
            "vmHealthInfo": {"vmHealthState": codes.health_of(report.code), "vmHealthStatusCode": report.code},
        }}]
    out = json.dumps(doc)
    # .NET JSON dates are written with escaped slashes.
    return out.replace('"/Date(', '"\\/Date(').replace(')/"', ')\\/"')


def local_status(report, operation="Enable"):
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
    for attempt in ("full", "short errors"):
        if attempt == "short errors":
            if not report.snapshot_info:
                break
            for info in report.snapshot_info:
                info["errorMessage"] = info.get("errorMessage", "")[:200]
        status["substatus"] = [{"name": blob_report(report), "status": word, "code": report.code,
                                "formattedMessage": {"lang": lang, "message": text}}]
        out = json.dumps(doc)
        if len(out) <= LOCAL_LIMIT:
            return out
    status.pop("substatus", None)
    return json.dumps(doc)


def write_local(status_dir, seq, report, operation="Enable"):
    ensure_dir(status_dir, 0o700)
    path = "%s/%s.status" % (status_dir.rstrip("/"), seq)
    atomic_write(path, local_status(report, operation), 0o600)
    return path

"""Read, decrypt and validate the settings of one sequence number into a JobSpec.

Every malformed field ends in SettingsError(code, message): the code is Microsoft-compatible (11 bad
parameter, 16 certificate/decryption, 402 too late) and the message names the field, never its value
when the value could be secret. Decrypted values only ever live in memory.
"""

import base64
import binascii
import json
import os
import re
import time

from . import codes, protected, snapshot_method
from .sasuri import SasUri, SasUriError

MAX_SETTINGS_BYTES = 4 * 1024 * 1024
MAX_OBJECT_BYTES = 1024 * 1024
MAX_DISKS = 128
MAX_URI_LENGTH = 8192
MAX_METADATA = 64
MAX_TEXT = 1024
MAX_JSON_DEPTH = 64  # the deepest real settings document nests about 6 levels
TICKS_AT_UNIX_EPOCH = 621355968000000000
VM_TYPES = ("microsoft.compute/virtualmachines", "microsoft.classiccompute/virtualmachines")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$")
_META_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_JSON_TOKEN = re.compile(r'\\.|["\[\]{}]')


class SettingsError(Exception):
    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code
        self.message = message


def bad(field, problem):
    return SettingsError(codes.BAD_PARAMETER, "%s %s" % (field, problem))


class JobSpec(object):
    """Everything a snapshot job needs, validated. Holds SAS URIs: never log or persist it whole."""

    FIELDS = (
        "seq",
        "task_id",
        "command",
        "start_ticks",
        "vm_type",
        "locale",
        "backup_metadata",
        "included_disks",
        "custom_settings",
        "blob_uris",
        "status_blob_uri",
        "logs_blob_uri",
        "dynamic_configs",
        "method",
        "method_reason",
        "task_token",
    )

    def __init__(self, **kw):
        for name in self.FIELDS:
            setattr(self, name, kw.get(name))

    def to_wire(self):
        """For the enable → worker hand-over over a pipe (memory only)."""
        return json.dumps({name: getattr(self, name) for name in self.FIELDS})

    @classmethod
    def from_wire(cls, text):
        return cls(**json.loads(text))

    @property
    def is_snapshot(self):
        return "snapshot" in (self.command or "").lower()


def json_depth_ok(text, limit=MAX_JSON_DEPTH):
    """Whether `text` nests arrays/objects at most `limit` deep, counted without parsing (strings are
    skipped), so a hostile document never reaches the recursive parser."""
    if text.count("[") + text.count("{") <= limit:
        return True
    depth, in_string = 0, False
    for m in _JSON_TOKEN.finditer(text):  # linear: one pass, escapes consumed as pairs
        token = m.group(0)
        if token == '"':
            in_string = not in_string
        elif in_string or len(token) == 2:
            continue
        elif token in "[{":
            depth += 1
            if depth > limit:
                return False
        else:
            depth -= 1
    return True


def parse_json(field, text):
    """json.loads with a nesting limit; too deep, too big for memory or malformed is SettingsError 11."""
    if not json_depth_ok(text):
        raise bad(field, "nests deeper than %d levels" % MAX_JSON_DEPTH)
    try:
        return json.loads(text)
    except (RecursionError, MemoryError):
        raise bad(field, "is too deeply nested or too large to parse")


def check_blob_uri(field, uri, require_sig=True):
    """A blob SAS URI of any cloud, custom domain or Azure Stack Hub: https (http only to loopback)."""
    if not isinstance(uri, str) or not uri.strip():
        raise bad(field, "must be a non-empty string")
    if len(uri) > MAX_URI_LENGTH:
        raise bad(field, "is longer than %d characters" % MAX_URI_LENGTH)
    try:
        problem = SasUri(uri.strip()).blob_problem(require_sig)
    except SasUriError:
        problem = "is not an http(s) URI with a query string (a blob SAS URI)"
    if problem:
        raise bad(field, problem)
    return uri.strip()


def decode_object(field, value):
    """objectStr: base64 of JSON (whitespace and single quotes stripped first, as the service sends it)."""
    if not isinstance(value, str) or not value.strip():
        raise bad(field, "must be a non-empty base64 string")
    if len(value) > MAX_OBJECT_BYTES * 2:
        raise bad(field, "is larger than %d bytes" % MAX_OBJECT_BYTES)
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise bad(field, "is not valid base64")
    try:
        text = raw.decode("ascii").strip().strip("'")
    except UnicodeDecodeError:
        raise bad(field, "does not decode to JSON")
    try:
        doc = parse_json(field, text)
    except ValueError:
        raise bad(field, "does not decode to JSON")
    if not isinstance(doc, dict):
        raise bad(field, "must decode to a JSON object")
    return doc


def _optional_text(field, value, pattern=None):
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad(field, "must be a string")
    if len(value) > MAX_TEXT:
        raise bad(field, "is longer than %d characters" % MAX_TEXT)
    if pattern is not None and value and not pattern.match(value):
        raise bad(field, "is not well formed")
    return value


def parse_ticks(value, now=None, deadline_minutes=140.0):
    """commandStartTimeUTCTicks (.NET ticks); raises 402 when the command is older than the deadline."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise bad("commandStartTimeUTCTicks", "must be a string of digits (.NET ticks)")
    text = str(value).strip()
    if not text.isdigit() or len(text) > 19:
        raise bad("commandStartTimeUTCTicks", "must be a string of digits (.NET ticks)")
    ticks = int(text)
    start = (ticks - TICKS_AT_UNIX_EPOCH) / 1e7
    if start < 946684800:  # 2000-01-01: anything earlier is not a real command time
        raise bad("commandStartTimeUTCTicks", "is before the year 2000")
    now = time.time() if now is None else now
    late_minutes = (now - start) / 60.0
    if late_minutes > deadline_minutes:
        raise SettingsError(
            codes.COMMAND_TOO_LATE,
            "the command started %.0f minutes ago, more than the %.0f-minute limit" % (late_minutes, deadline_minutes),
        )
    return text


def _metadata(doc):
    meta = doc.get("backupMetadata")
    if not isinstance(meta, list) or not meta:
        raise bad("objectStr.backupMetadata", "must be a non-empty list of {Key, Value}")
    if len(meta) > MAX_METADATA:
        raise bad("objectStr.backupMetadata", "has more than %d entries" % MAX_METADATA)
    out = []
    for i, entry in enumerate(meta):
        where = "objectStr.backupMetadata[%d]" % i
        if not isinstance(entry, dict) or "Key" not in entry or "Value" not in entry:
            raise bad(where, "must be an object with Key and Value")
        key, value = entry["Key"], entry["Value"]
        if not isinstance(key, str) or not _META_KEY.match(key):
            raise bad(where + ".Key", "must be a C# identifier (letters, digits, underscore)")
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, (str, int, float)):
            raise bad(where + ".Value", "must be a string")
        value = str(value)
        if len(value) > 4096 or any(ord(c) < 32 or ord(c) > 126 for c in value):
            raise bad(where + ".Value", "must be printable ASCII of at most 4096 characters")
        out.append([key, value])
    return out


def _included_disks(doc):
    disks = doc.get("includedDisks")
    if disks is None:
        return {}
    if not isinstance(disks, dict):
        raise bad("objectStr.includedDisks", "must be an object")
    luns = disks.get("dataDiskLunList")
    if luns is not None and (
        not isinstance(luns, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in luns)
    ):
        raise SettingsError(
            codes.INVALID_LUN_LIST, "objectStr.includedDisks.dataDiskLunList must be a list of integers"
        )
    for flag in (
        "isOSDiskIncluded",
        "isAnyDiskExcluded",
        "isVmmdBlobIncluded",
        "isVMADEEnabled",
        "isAnyWADiskIncluded",
        "isVmgsBlobIncluded",
        "isAnyDirectDriveDiskIncluded",
    ):
        if flag in disks and disks[flag] is not None and not isinstance(disks[flag], bool):
            raise bad("objectStr.includedDisks." + flag, "must be true or false")
    minutes = disks.get("instantAccessDurationMinutes")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 0):
        raise bad("objectStr.includedDisks.instantAccessDurationMinutes", "must be a whole number of minutes")
    return disks


def _task_token(public_obj, private):
    """snapshotTaskToken for the host path: the public objectStr's, else the protected settings'."""
    token = public_obj.get("snapshotTaskToken")
    if token in (None, ""):
        token = private.get("snapshotTaskToken")
    if token in (None, ""):
        return None
    if not isinstance(token, str) or len(token) > 16 * 1024:
        raise bad("snapshotTaskToken", "must be a string of at most 16384 characters")
    return token


def _custom_settings(public, private):
    raw = public.get("customSettings", private.get("customSettings"))
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        raise bad("customSettings", "must be a JSON string")
    try:
        doc = parse_json("customSettings", raw)
    except SettingsError:
        raise
    except ValueError:
        raise bad("customSettings", "is not valid JSON")
    if not isinstance(doc, dict):
        raise bad("customSettings", "must be a JSON object")
    return doc


def read_settings_file(path):
    """The handlerSettings object of a settings file (any field in it may be null)."""
    if not os.path.exists(path):
        raise SettingsError(codes.BAD_PARAMETER, "no settings file %s" % os.path.basename(path))
    size = os.path.getsize(path)
    if size > MAX_SETTINGS_BYTES:
        raise SettingsError(codes.BAD_PARAMETER, "settings file is larger than %d bytes" % MAX_SETTINGS_BYTES)
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8-sig")
    except (IOError, OSError) as e:
        raise SettingsError(codes.BAD_PARAMETER, "settings file cannot be read: %s" % (e.strerror or e))
    except UnicodeDecodeError:
        raise SettingsError(codes.BAD_PARAMETER, "settings file is not UTF-8")
    if not text.strip():
        raise SettingsError(codes.BAD_PARAMETER, "settings file is empty (no settings were sent)")
    try:
        doc = parse_json("settings file", text)
    except SettingsError:
        raise
    except ValueError as e:
        raise SettingsError(codes.BAD_PARAMETER, "settings file is not valid JSON (%s)" % str(e)[:80])
    runtime = doc.get("runtimeSettings") if isinstance(doc, dict) else None
    if not isinstance(runtime, list) or not runtime or not isinstance(runtime[0], dict):
        raise bad("runtimeSettings", "must be a non-empty list")
    handler = runtime[0].get("handlerSettings")
    if not isinstance(handler, dict):
        raise bad("runtimeSettings[0].handlerSettings", "must be an object")
    return handler


def decrypt_protected(handler, cert_dir):
    """The protected settings as a dict ({} when none were sent)."""
    blob = handler.get("protectedSettings")
    thumb = handler.get("protectedSettingsCertThumbprint")
    if blob in (None, ""):
        return {}
    try:
        plain = protected.decrypt(blob, thumb, cert_dir)
    except protected.DecryptError as e:
        raise SettingsError(codes.CERTIFICATE_NOT_FOUND, str(e))
    return parse_protected(plain)


def parse_protected(plain):
    """The decrypted protected settings (bytes) as a dict; the message never quotes them."""
    try:
        doc = parse_json("protectedSettings", plain.decode("utf-8"))
    except SettingsError:
        raise
    except (UnicodeDecodeError, ValueError):
        raise SettingsError(codes.BAD_PARAMETER, "protectedSettings does not decrypt to JSON")
    finally:
        plain = None
    if not isinstance(doc, dict):
        raise SettingsError(codes.BAD_PARAMETER, "protectedSettings must be a JSON object")
    return doc


def validate(seq, public, private, now=None, deadline_minutes=140.0, config_method=None):
    """Build a JobSpec from the public and decrypted protected settings, or raise SettingsError.

    config_method: vmbackup.conf SnapshotMethod, which decides with the settings whether the guest must
    snapshot (then blobSASUri is required) or the host may (then it is optional)."""
    if public is None:
        public = {}
    if not isinstance(public, dict):
        raise bad("publicSettings", "must be an object")
    if not isinstance(private, dict):
        raise bad("protectedSettings", "must be an object")
    command = public.get("commandToExecute")
    if not isinstance(command, str) or not command.strip():
        raise bad("commandToExecute", "must be a non-empty string")
    lowered = command.lower()
    if "snapshot" not in lowered and "install" not in lowered:
        raise bad("commandToExecute", "must contain 'snapshot' (or 'install'); got an unknown command")
    locale = _optional_text("locale", public.get("locale"), _LOCALE)
    task_id = _optional_text("taskId", public.get("taskId"))
    task_id = task_id.strip() if task_id else task_id  # normalised once: stored and compared like this
    vm_type = _optional_text("vmType", public.get("vmType"))
    if vm_type and vm_type.lower() not in VM_TYPES:
        raise bad("vmType", "must be one of %s" % ", ".join(VM_TYPES))
    spec = JobSpec(
        seq=seq,
        command=command.strip(),
        locale=locale,
        task_id=task_id,
        vm_type=(vm_type or VM_TYPES[0]).lower(),
        backup_metadata=[],
        included_disks={},
        custom_settings={},
        blob_uris=[],
        dynamic_configs=[],
    )
    if "snapshot" not in lowered:
        return spec  # 'install': nothing else is needed
    if not task_id:
        raise bad("taskId", "must be a non-empty string")
    spec.start_ticks = parse_ticks(public.get("commandStartTimeUTCTicks"), now, deadline_minutes)
    public_obj = decode_object("objectStr", public.get("objectStr"))
    spec.backup_metadata = _metadata(public_obj)
    spec.included_disks = _included_disks(public_obj)
    dyn = public_obj.get("dynamicConfigsFromCRP") or []
    spec.dynamic_configs = dyn if isinstance(dyn, list) else []
    spec.custom_settings = _custom_settings(public, private)
    private_obj = {}
    if private.get("objectStr") not in (None, ""):
        private_obj = decode_object("protectedSettings.objectStr", private.get("objectStr"))
    uris = private_obj.get("blobSASUri")
    if uris is not None and not isinstance(uris, list):
        raise bad("protectedSettings.objectStr.blobSASUri", "must be a list of blob SAS URIs")
    uris = uris or []
    if len(uris) > MAX_DISKS:
        raise bad("protectedSettings.objectStr.blobSASUri", "lists more than %d disks" % MAX_DISKS)
    spec.blob_uris = [check_blob_uri("protectedSettings.objectStr.blobSASUri[%d]" % i, u) for i, u in enumerate(uris)]
    try:
        choice = snapshot_method.choose(
            config_method, spec.custom_settings, spec.included_disks, have_sas=bool(spec.blob_uris)
        )
    except snapshot_method.MethodError as e:
        if not private and e.code == codes.BAD_PARAMETER and "blobSASUri" in e.message:
            raise bad("protectedSettings", "is missing: it must carry objectStr with blobSASUri")
        raise SettingsError(e.code, e.message)
    spec.method, spec.method_reason = choice.method, choice.reason
    spec.task_token = _task_token(public_obj, private)
    for key, attr in (("statusBlobUri", "status_blob_uri"), ("logsBlobUri", "logs_blob_uri")):
        value = public.get(key) or private.get(key)
        if value:
            setattr(spec, attr, check_blob_uri(key, value))
    return spec

"""What may leave the process as text: SAS signatures, bearer tokens, URI userinfo and the host path's
secrets removed, control characters escaped.

A SAS URI's secret is its signature (`sig=`); we also hide other signature-bearing query keys that Azure
uses (`skoid`-style delegation keys are not secret, but `sig`, `signature`, `x-ms-signature` are).
`user:password@` in a URI is a secret too. The host path adds two secrets that are not URIs: the
snapshotTaskToken and an ADE VM's DiskEncryptionSettings. Their values are registered with `add_secret`
as soon as they are known, and any JSON or header field of those names is masked whatever its value.
Control characters (newline, CR, ESC, other C0/C1) are escaped so that a value can never forge a log
line or hide text on a terminal.
"""

import json
import re
import threading

_SIG_QUERY = re.compile(r"(?i)([?&;](?:sig|signature|x-ms-signature|st?_?sig)=)[^&\s\"'<>]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-_.~+/=]+")
_SECRET_FIELDS = re.compile(
    r'(?i)("?(?:snapshotTaskToken|DiskEncryptionSettings)"?\s*[:=]\s*)'
    r'("(?:[^"\\]|\\.)*"|[^\s,}]+)'
)
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://)[^/?#@\s\"'<>]+@")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
REDACTED = "REDACTED"
_secrets = set()
_lock = threading.Lock()


def add_secret(value):
    """Mask this exact value (and its JSON-escaped form) wherever it appears from now on."""
    if not isinstance(value, str) or len(value) < 4:
        return
    with _lock:
        _secrets.add(value)
        _secrets.add(json.dumps(value)[1:-1])


def _escape_one(match):
    c = match.group(0)
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c) or (
        "\\x%02x" % ord(c) if ord(c) < 256 else "\\u%04x" % ord(c)
    )


def redact(text):
    """Return `text` with every SAS signature, bearer token, URI userinfo and registered secret replaced by
    REDACTED."""
    if text is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _SECRET_FIELDS.sub(r'\1"' + REDACTED + '"', text)
    text = _SIG_QUERY.sub(r"\1" + REDACTED, text)
    text = _USERINFO.sub(r"\1" + REDACTED + "@", text)
    return _BEARER.sub(r"\1" + REDACTED, text)


def escape_controls(text):
    """`text` with every control character written as an escape (\\n, \\r, \\t, \\xNN)."""
    return _CONTROL.sub(_escape_one, text)


def clean(text):
    """A value made safe to log or report: redacted, then control characters escaped."""
    if text is None:
        return None
    return escape_controls(redact(text))


def strip_query(uri):
    """The blob URI without its query string: what may be shown as a blob's identity."""
    return uri.split("?", 1)[0] if uri else uri

"""Secret redaction: every secret is removed before text reaches a log, a status, an event or an error.

A SAS URI's secret is its signature (`sig=`); we also hide other signature-bearing query keys that Azure
uses (`skoid`-style delegation keys are not secret, but `sig`, `signature`, `x-ms-signature` are).
The host path adds two secrets that are not URIs: the snapshotTaskToken and an ADE VM's
DiskEncryptionSettings. Their values are registered with `add_secret` as soon as they are known, and
any JSON or header field of those names is masked whatever its value.
"""

import re
import threading

_SIG_QUERY = re.compile(r"(?i)([?&;](?:sig|signature|x-ms-signature|st?_?sig)=)[^&\s\"'<>]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-_.~+/=]+")
_SECRET_FIELDS = re.compile(r'(?i)("?(?:snapshotTaskToken|DiskEncryptionSettings)"?\s*[:=]\s*)'
                            r'("(?:[^"\\]|\\.)*"|[^\s,}]+)')
REDACTED = "REDACTED"
_secrets = set()
_lock = threading.Lock()


def add_secret(value):
    """Mask this exact value (and its JSON-escaped form) wherever it appears from now on."""
    if not isinstance(value, str) or len(value) < 4:
        return
    import json

    with _lock:
        _secrets.add(value)
        _secrets.add(json.dumps(value)[1:-1])


def redact(text):
    """Return `text` with every SAS signature, bearer token and registered secret replaced by REDACTED."""
    if text is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _SECRET_FIELDS.sub(r'\1"' + REDACTED + '"', text)
    text = _SIG_QUERY.sub(r"\1" + REDACTED, text)
    return _BEARER.sub(r"\1" + REDACTED, text)


def strip_query(uri):
    """The blob URI without its query string: what may be shown as a blob's identity."""
    return uri.split("?", 1)[0] if uri else uri

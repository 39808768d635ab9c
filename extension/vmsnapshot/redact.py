"""SAS redaction: every signature is removed before text reaches a log, a status, an event or an error.

A SAS URI's secret is its signature (`sig=`); we also hide other signature-bearing query keys that Azure
uses (`skoid`-style delegation keys are not secret, but `sig`, `signature`, `x-ms-signature` are).
"""

import re

_SIG_QUERY = re.compile(r"(?i)([?&;](?:sig|signature|x-ms-signature|st?_?sig)=)[^&\s\"'<>]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-_.~+/=]+")
REDACTED = "REDACTED"


def redact(text):
    """Return `text` with every SAS signature and bearer token replaced by REDACTED."""
    if text is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    text = _SIG_QUERY.sub(r"\1" + REDACTED, text)
    return _BEARER.sub(r"\1" + REDACTED, text)


def strip_query(uri):
    """The blob URI without its query string: what may be shown as a blob's identity."""
    return uri.split("?", 1)[0] if uri else uri

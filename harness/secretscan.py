"""Find secrets left on disk: every file under a tree, read as bytes, searched for each needle.

SAS signatures are looked for both as they appear in a URI (percent-encoded) and decoded, since a leak
may have gone through either form. The host path adds secrets that are not URIs: the snapshotTaskToken
and an ADE VM's DiskEncryptionSettings, found by field name in any settings document.
"""

import os
import urllib.parse


def sas_signatures(uris):
    """The `sig` value of each SAS URI, in its encoded and decoded forms."""
    out = []
    for uri in uris:
        for part in uri.split("?", 1)[-1].split("&"):
            if part.lower().startswith("sig="):
                raw = part[4:]
                out += [raw, urllib.parse.unquote(raw)]
    return sorted(set(s for s in out if s))


SECRET_FIELDS = ("snapshotTaskToken", "DiskEncryptionSettings")


def field_secrets(doc, names=SECRET_FIELDS):
    """The string values of fields named `names` anywhere in a JSON-like document (dicts, lists)."""
    out = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in names and isinstance(value, str) and value:
                out.append(value)
            else:
                out += field_secrets(value, names)
    elif isinstance(doc, list):
        for item in doc:
            out += field_secrets(item, names)
    return sorted(set(out))


def files_containing(root, needles):
    """[(path, needle prefix)] for every file below `root` that contains any of `needles`."""
    encoded = [(n, n.encode("utf-8")) for n in needles if n]
    hits = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            hits += [(path, text[:16] + "...") for text, raw in encoded if raw in data]
    return hits

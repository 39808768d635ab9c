"""Find secrets left on disk: every file under a tree, read as bytes, searched for each needle.

SAS signatures are looked for both as they appear in a URI (percent-encoded) and decoded, since a leak
may have gone through either form.
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

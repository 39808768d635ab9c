"""A blob SAS URI, split once: what settings validation checks and what the storage client connects to.

Nothing assumes a storage suffix: the URI's own scheme, host and port are used, so every cloud, custom
domain and Azure Stack Hub endpoint works. Plain http is only for loopback, decided from the URI's text
alone (no DNS). The object never shows its signature: repr and str are redacted.
"""

import ipaddress
import re

from .redact import redact, strip_query

_FORM = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)([^?#]*)(?:\?([^#]*))?(#.*)?$")
_DOTTED_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,2})){3}$")
DEFAULT_PORTS = {"https": 443, "http": 80}


class SasUriError(ValueError):
    """The text is not a URI this extension can use; the message says why and never quotes the URI."""


def is_loopback(host):
    """True only for exactly `localhost` or a literal 127.0.0.0/8 or ::1 address, decided from the
    text alone (no DNS): `127.attacker.example` or `0177.0.0.1` are not loopback."""
    host = (host or "").lower()
    if host == "localhost":
        return True
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" not in host and not _DOTTED_DECIMAL.match(host):
        return False  # a name, or an address form (octal, hex, short) that resolvers read differently
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SasUri(object):
    """scheme (lower case), host (IPv6 without brackets), port (the scheme's default when absent), path,
    query (None without '?') and the whole text in `uri`. Raises SasUriError for text that is no URI."""

    __slots__ = ("uri", "scheme", "host", "port", "path", "query", "fragment", "has_userinfo")

    def __init__(self, uri):
        if not isinstance(uri, str):
            raise SasUriError("is not a string")
        m = _FORM.match(uri)
        if not m:
            raise SasUriError("is not a URI (scheme://host/path?query)")
        scheme, netloc, self.path, self.query, self.fragment = m.groups()
        self.uri = uri
        self.scheme = scheme.lower()
        self.has_userinfo = "@" in netloc  # user:password@ (no blob SAS URI carries one)
        netloc = netloc.rsplit("@", 1)[-1]
        port = None
        if netloc.startswith("["):
            close = netloc.find("]")
            if close < 0 or netloc[close + 1 : close + 2] not in ("", ":"):
                raise SasUriError("has a malformed IPv6 host")
            host, port = netloc[1:close], netloc[close + 2 :] or None
        elif ":" in netloc:
            host, port = netloc.rsplit(":", 1)
        else:
            host = netloc
        if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
            raise SasUriError("has an invalid port")
        self.host = host
        self.port = int(port) if port else DEFAULT_PORTS.get(self.scheme)

    @property
    def key(self):
        """What a pooled connection is shared by."""
        return (self.scheme, self.host, self.port)

    @property
    def host_header(self):
        host = "[%s]" % self.host if ":" in self.host else self.host
        return host if self.port in (80, 443) else "%s:%d" % (host, self.port)

    @property
    def params(self):
        """The query as a dict (the last value of a repeated key)."""
        if not self.query:
            return {}
        return dict(p.split("=", 1) if "=" in p else (p, "") for p in self.query.split("&"))

    def request_path(self, extra=""):
        """The path and query a request line carries, with `extra` (e.g. comp=snapshot) appended."""
        path = self.path or "/"
        query = "&".join(q for q in (self.query, extra) if q)
        return path + "?" + query if query or self.query is not None else path

    def transport_problem(self):
        """Why no request may be sent to this URI (an unsupported scheme, plain http off loopback), or None."""
        if self.scheme not in DEFAULT_PORTS:
            return "unsupported URI scheme %s" % self.scheme
        if self.scheme == "http" and not is_loopback(self.host):
            return "uses plain http to %s; only https is allowed (http only to loopback)" % self.host
        return None

    def blob_problem(self, require_sig=True):
        """Why this is not a usable blob SAS URI (the settings' check), or None."""
        if (
            self.uri.split("://", 1)[0] not in DEFAULT_PORTS
            or not self.host
            or not self.path.startswith("/")
            or self.query is None
            or self.fragment is not None
        ):
            return "is not an http(s) URI with a query string (a blob SAS URI)"
        problem = self.transport_problem()
        if problem:
            return problem
        if len([p for p in self.path.split("/") if p]) < 2:
            return "does not name a container and a blob"
        if require_sig and not self.params.get("sig"):
            return "has no SAS signature (sig=)"
        return None

    def __repr__(self):
        return "SasUri(%r)" % redact(self.uri)

    def __str__(self):
        return strip_query(self.uri)

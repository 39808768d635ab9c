"""Case-insensitive route table: `{name}` placeholders in ARM path templates, one handler per route.

A handler is `handler(req) -> Response`, where `req` is a `Request` (method, path, query, body, params,
emu). Other areas add routes without editing the core (see plugins/__init__.py).
"""

import json
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple


@dataclass
class Response:
    status: int = 200
    body: object = None  # dict/list -> JSON; bytes/str sent as is; None -> empty body
    headers: Dict[str, str] = field(default_factory=dict)

    def payload(self):
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        self.headers.setdefault("Content-Type", "application/json; charset=utf-8")
        return json.dumps(self.body).encode()


def json_response(body, status=200, **headers):
    return Response(status, body, {k.replace("_", "-"): str(v) for k, v in headers.items()})


def arm_error(status, code, message, **headers):
    """The ARM error envelope every SDK parses into HttpResponseError(code, message)."""
    h = {"x-ms-failure-cause": "gateway"} if status == 403 else {}
    h.update({k.replace("_", "-"): str(v) for k, v in headers.items()})
    return Response(status, {"error": {"code": code, "message": message}}, h)


def resource_not_found(resource_type, name, resource_group):
    return arm_error(
        404,
        "ResourceNotFound",
        f"The Resource '{resource_type}/{name}' under resource group '{resource_group}' was not found.",
    )


@dataclass
class Request:
    method: str
    path: str  # percent-decoded, without the query string
    query: Dict[str, str]  # keys lower-cased (ARM query parameter names are case-insensitive)
    headers: Dict[str, str]  # keys lower-cased
    body: object  # parsed JSON, or None
    raw_body: bytes
    params: Dict[str, str]  # placeholders captured from the route template
    emu: object  # the ArmEmulator (estate, knobs, url)

    @property
    def base_url(self):
        return self.emu.url


Handler = Callable[[Request], Response]


def compile_template(template):
    """'/subscriptions/{sub}/x' -> case-insensitive regex with named groups; a trailing slash is allowed."""
    out, pos = "", 0
    for m in re.finditer(r"\{(\w+)\}", template):
        out += re.escape(template[pos : m.start()]) + f"(?P<{m.group(1)}>[^/]+)"
        pos = m.end()
    out += re.escape(template[pos:])
    return re.compile("^" + out + "/?$", re.IGNORECASE)


class Router:
    def __init__(self):
        self._routes: List[Tuple[str, re.Pattern, Handler, str]] = []

    def add(self, method, template, handler, *, first=False):
        """Register `handler` for `method` (or "*") on `template`; `first=True` overrides a core route."""
        entry = (method.upper(), compile_template(template), handler, template)
        if first:
            self._routes.insert(0, entry)
        else:
            self._routes.append(entry)

    def route(self, method, template):
        """Decorator form of add()."""

        def deco(fn):
            self.add(method, template, fn)
            return fn

        return deco

    def match(self, method, path) -> Tuple[Optional[Handler], Dict[str, str], bool]:
        """(handler, params, path_known): path_known tells 405 from 404 when no handler matches."""
        known = False
        for m, rx, handler, _ in self._routes:
            mt = rx.match(path)
            if not mt:
                continue
            known = True
            if m in (method, "*"):
                return handler, mt.groupdict(), True
        return None, {}, known

    def templates(self):
        return [(m, t) for m, _, _, t in self._routes]


def paged(req, items, key="value", shape=None):
    """One page of `items` with an ARM nextLink when more remain ($skiptoken = offset); `shape` turns
    the page's objects into REST bodies, so only one page is ever serialised."""
    size = max(1, int(req.emu.knobs.page_size))
    try:
        start = int(req.query.get("$skiptoken", 0) or 0)
    except ValueError:
        return arm_error(400, "InvalidSkipToken", "The skip token is not valid.")
    page = items[start : start + size]
    body = {key: [shape(x) for x in page] if shape else page}
    if start + size < len(items):
        import urllib.parse

        q = {k: v for k, v in req.query.items() if k != "$skiptoken"}
        q["$skiptoken"] = str(start + size)
        body["nextLink"] = f"{req.base_url}{urllib.parse.quote(req.path)}?{urllib.parse.urlencode(q)}"
    return json_response(body)

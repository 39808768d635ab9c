"""Expand an ARM template offline: evaluate the expressions our templates use and list the resources a
deployment would create, with copy loops, conditions and inner-scope nested deployments resolved.

Why: a reviewer (and the emulator) can see what 2,500 VM ids turn into before anything is deployed, e.g.
that no policy gets more than 1000 VMs and no nested deployment more than 800 resources. This covers the
function subset the kit's templates use, not every ARM function; an unknown function is a clear error.
`reference()` and policy-rule expressions are not evaluated.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field


class ExpandError(Exception):
    """The template uses something this evaluator does not understand, or a value is wrong."""


@dataclass
class Context:
    subscription_id: str
    resource_group: str | None = None
    location: str = "westus"
    deployment_name: str = "deployment"
    tenant_id: str = "00000000-0000-0000-0000-000000000000"
    environment: dict = field(default_factory=lambda: {"name": "Custom", "portal": "https://portal.invalid"})


@dataclass
class Resource:
    """One resource a deployment would create, fully evaluated."""

    type: str
    name: str
    api_version: str
    subscription_id: str
    resource_group: str | None
    body: dict
    deployment: str

    @property
    def id(self) -> str:
        types = self.type.split("/")
        names = self.name.split("/")
        path = "/providers/%s/%s" % (types[0], "/".join("%s/%s" % tn for tn in zip(types[1:], names)))
        scope = "/subscriptions/%s" % self.subscription_id
        if self.resource_group:
            scope += "/resourceGroups/%s" % self.resource_group
        return scope + path


# -- parsing ---------------------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+)|(?P<id>[A-Za-z_]\w*)"
    r"|(?P<op>[(),\[\].]))"
)


def _tokenize(text):
    pos, out = 0, []
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ExpandError("cannot parse expression near %r" % text[pos : pos + 20])
        pos = m.end()
        kind = m.lastgroup
        value = m.group(kind)
        out.append((kind, value[1:-1].replace("''", "'") if kind == "str" else value))
    return out


class _Parser:
    def __init__(self, tokens):
        self.tokens, self.i = tokens, 0

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None)

    def take(self, value=None):
        tok = self.peek()
        if tok[0] is None or (value is not None and tok[1] != value):
            raise ExpandError("expected %r in expression" % (value or "more"))
        self.i += 1
        return tok

    def expr(self):
        kind, value = self.take()
        if kind == "str":
            node = ("lit", value)
        elif kind == "num":
            node = ("lit", int(value))
        elif kind == "id":
            self.take("(")
            args = []
            if self.peek()[1] != ")":
                args.append(self.expr())
                while self.peek()[1] == ",":
                    self.take(",")
                    args.append(self.expr())
            self.take(")")
            node = ("call", value.lower(), args)
        else:
            raise ExpandError("unexpected %r in expression" % value)
        while self.peek()[1] in ("[", "."):
            if self.take()[1] == "[":
                node = ("index", node, self.expr())
                self.take("]")
            else:
                node = ("index", node, ("lit", self.take()[1]))
        return node


def parse(expression: str):
    p = _Parser(_tokenize(expression))
    node = p.expr()
    if p.peek()[0] is not None:
        raise ExpandError("trailing text in expression %r" % expression)
    return node


# -- evaluation ------------------------------------------------------------------------------------------
class _Scope:
    def __init__(self, template, params, ctx, copy_index=None):
        self.template, self.params, self.ctx, self.copy_index = template, params, ctx, copy_index
        self._vars: dict = {}

    def with_copy(self, index):
        s = _Scope(self.template, self.params, self.ctx, index)
        s._vars = self._vars
        return s

    def variable(self, name):
        key = name.lower()
        if key not in self._vars:
            decl = {k.lower(): v for k, v in (self.template.get("variables") or {}).items()}
            if key not in decl:
                raise ExpandError("variables('%s') is not declared" % name)
            self._vars[key] = self.value(decl[key])
        return self._vars[key]

    def value(self, v):
        if isinstance(v, str):
            if v.startswith("[["):
                return v[1:]
            if v.startswith("[") and v.endswith("]"):
                return self.eval(parse(v[1:-1]))
            return v
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, dict):
            return {k: self.value(x) for k, x in v.items()}
        return v

    def eval(self, node):
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "index":
            base, key = self.eval(node[1]), self.eval(node[2])
            try:
                if isinstance(base, dict):
                    return {k.lower(): x for k, x in base.items()}[str(key).lower()]
                return base[key]
            except (KeyError, IndexError, TypeError) as exc:
                raise ExpandError("cannot index %r with %r" % (type(base).__name__, key)) from exc
        name, args = node[1], node[2]
        if name == "if":  # lazy
            return self.eval(args[1]) if self.eval(args[0]) else self.eval(args[2])
        fn = _FUNCTIONS.get(name)
        if fn is None:
            raise ExpandError("function %s() is not supported by the offline expander" % name)
        return fn(self, *[self.eval(a) for a in args])


def _parameter(scope, name):
    for k, v in scope.params.items():
        if k.lower() == name.lower():
            return v
    raise ExpandError("parameters('%s') has no value" % name)


def _resource_id(scope, *args, kind="group"):
    args = [str(a) for a in args]
    t = next((i for i, a in enumerate(args) if "/" in a and "." in a.split("/")[0]), None)
    if t is None:
        raise ExpandError("resourceId() needs a resource type")
    before, rtype, names = args[:t], args[t], args[t + 1 :]
    sub, rg = scope.ctx.subscription_id, scope.ctx.resource_group
    if len(before) == 1:
        (rg,) = before
    elif len(before) == 2:
        sub, rg = before
    types = rtype.split("/")
    if len(names) != len(types) - 1:
        raise ExpandError("resourceId(%s) needs %d name(s)" % (rtype, len(types) - 1))
    path = "/providers/%s/%s" % (types[0], "/".join("%s/%s" % tn for tn in zip(types[1:], names)))
    if kind == "subscription" or not rg:
        return "/subscriptions/%s%s" % (sub, path)
    return "/subscriptions/%s/resourceGroups/%s%s" % (sub, rg, path)


def _format(fmt, *args):
    def fill(m):
        v = args[int(m.group(1))]
        return ("true" if v else "false") if isinstance(v, bool) else str(v)

    return re.sub(r"\{(\d+)\}", fill, fmt)


def _union(*objs):
    if all(isinstance(o, list) for o in objs):
        out = []
        for o in objs:
            out += [x for x in o if x not in out]
        return out
    out = {}
    for o in objs:
        out.update(o)
    return out


def _copy_index(scope, *args):
    offset = next((a for a in args if isinstance(a, int)), 0)
    if scope.copy_index is None:
        raise ExpandError("copyIndex() outside a copy loop")
    return scope.copy_index + offset


def _guid(*parts):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(map(str, parts))))


def _unique_string(*parts):
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:13]


_FUNCTIONS = {
    "parameters": _parameter,
    "variables": lambda s, n: s.variable(n),
    "copyindex": _copy_index,
    "concat": lambda s, *a: _union(*a) if a and all(isinstance(x, list) for x in a) else "".join(map(str, a)),
    "format": lambda s, f, *a: _format(f, *a),
    "split": lambda s, text, sep: text.split(sep),
    "take": lambda s, v, n: v[: max(0, n)],
    "skip": lambda s, v, n: v[max(0, n) :],
    "first": lambda s, v: v[0],
    "last": lambda s, v: v[-1],
    "length": lambda s, v: len(v),
    "add": lambda s, a, b: a + b,
    "sub": lambda s, a, b: a - b,
    "mul": lambda s, a, b: a * b,
    "div": lambda s, a, b: int(a / b),
    "mod": lambda s, a, b: a % b,
    "min": lambda s, *a: min(a[0]) if len(a) == 1 else min(a),
    "max": lambda s, *a: max(a[0]) if len(a) == 1 else max(a),
    "equals": lambda s, a, b: a == b,
    "greater": lambda s, a, b: a > b,
    "less": lambda s, a, b: a < b,
    "or": lambda s, *a: any(a),
    "and": lambda s, *a: all(a),
    "not": lambda s, a: not a,
    "true": lambda s: True,
    "false": lambda s: False,
    "string": lambda s, v: v if isinstance(v, str) else str(v),
    "int": lambda s, v: int(v),
    "tolower": lambda s, v: v.lower(),
    "toupper": lambda s, v: v.upper(),
    "createarray": lambda s, *a: list(a),
    "createobject": lambda s, *a: dict(zip(a[0::2], a[1::2])),
    "union": lambda s, *a: _union(*a),
    "range": lambda s, start, count: list(range(start, start + count)),
    "guid": lambda s, *a: _guid(*a),
    "uniquestring": lambda s, *a: _unique_string(*a),
    "resourceid": lambda s, *a: _resource_id(s, *a),
    "subscriptionresourceid": lambda s, *a: _resource_id(s, *a, kind="subscription"),
    "subscription": lambda s: {
        "id": "/subscriptions/%s" % s.ctx.subscription_id,
        "subscriptionId": s.ctx.subscription_id,
        "tenantId": s.ctx.tenant_id,
    },
    "resourcegroup": lambda s: {
        "id": "/subscriptions/%s/resourceGroups/%s" % (s.ctx.subscription_id, s.ctx.resource_group),
        "name": s.ctx.resource_group,
        "location": s.ctx.location,
    },
    "deployment": lambda s: {"name": s.ctx.deployment_name, "location": s.ctx.location},
    "environment": lambda s: s.ctx.environment,
    "reference": lambda s, *a: {"identity": {"principalId": "00000000-0000-4000-8000-0000000000ee"}},
}


# -- expansion -------------------------------------------------------------------------------------------
def parameter_values(template: dict, given: dict, ctx: Context) -> dict:
    """Declared parameters with defaults applied; `given` holds raw values (not {"value": ...})."""
    decls = template.get("parameters") or {}
    scope = _Scope(template, {}, ctx)
    out = {}
    for name, decl in decls.items():
        match = next((v for k, v in given.items() if k.lower() == name.lower()), None)
        if match is not None:
            out[name] = match
        elif "defaultValue" in decl:
            scope.params = out
            out[name] = scope.value(decl["defaultValue"])
        else:
            raise ExpandError("required parameter '%s' has no value" % name)
    return out


def expand(template: dict, given: dict, ctx: Context) -> list[Resource]:
    """Every resource the deployment would create (nested inner-scope deployments included)."""
    scope = _Scope(template, parameter_values(template, given, ctx), ctx)
    out: list[Resource] = []
    for res in template.get("resources") or []:
        copy = res.get("copy")
        indexes = range(scope.value(copy["count"])) if copy else [None]
        for index in indexes:
            s = scope.with_copy(index) if index is not None else scope
            if "condition" in res and not s.value(res["condition"]):
                continue
            if _is_inner_deployment(res):
                out += _expand_nested(res, s, ctx)
                continue
            body = {k: s.value(v) for k, v in res.items() if k not in ("copy", "condition", "dependsOn")}
            out.append(
                Resource(
                    res["type"],
                    body["name"],
                    res["apiVersion"],
                    ctx.subscription_id,
                    ctx.resource_group,
                    body,
                    ctx.deployment_name,
                )
            )
    return out


def _is_inner_deployment(res) -> bool:
    props = res.get("properties") or {}
    return (
        res.get("type", "").lower() == "microsoft.resources/deployments"
        and isinstance(props.get("template"), dict)
        and str((props.get("expressionEvaluationOptions") or {}).get("scope", "")).lower() == "inner"
    )


def _expand_nested(res, scope, ctx) -> list[Resource]:
    props = res["properties"]
    values = {k: scope.value(v["value"]) for k, v in (props.get("parameters") or {}).items()}
    inner_ctx = Context(
        ctx.subscription_id,
        scope.value(res.get("resourceGroup", ctx.resource_group)),
        ctx.location,
        scope.value(res["name"]),
        ctx.tenant_id,
        ctx.environment,
    )
    resources = expand(props["template"], values, inner_ctx)
    if len(resources) > 800:
        raise ExpandError(
            "nested deployment %s would create %d resources; ARM allows 800"
            % (inner_ctx.deployment_name, len(resources))
        )
    return resources

"""Just enough understanding of ARM template expressions for a reviewer's checks.

No evaluation: we only need to know whether a string is an expression, which parameters and variables it
references, and the literal text of a `format()`/`concat()` name. A string starting with `[[` is an escaped
literal (used for Azure Policy expressions embedded in a template), not an expression of this template.
"""

from __future__ import annotations

import re

PARAM_REF = re.compile(r"\bparameters\(\s*'([^']+)'\s*\)", re.IGNORECASE)
VAR_REF = re.compile(r"\bvariables\(\s*'([^']+)'\s*\)", re.IGNORECASE)
STRING_LITERAL = re.compile(r"'((?:[^']|'')*)'")
CALL = re.compile(r"^\[\s*([A-Za-z_.]+)\s*\((.*)\)\s*\]$", re.DOTALL)


def is_expression(value) -> bool:
    return isinstance(value, str) and value.startswith("[") and not value.startswith("[[") and value.endswith("]")


def unescape(value):
    """Turn escaped literals (`[[...`) back into expressions, recursively: how ARM hands them on."""
    if isinstance(value, str):
        return value[1:] if value.startswith("[[") else value
    if isinstance(value, list):
        return [unescape(v) for v in value]
    if isinstance(value, dict):
        return {k: unescape(v) for k, v in value.items()}
    return value


def escape(value):
    """Escape policy-rule expressions so that the deployment engine passes them through literally."""
    if isinstance(value, str):
        return "[" + value if value.startswith("[") and value.endswith("]") else value
    if isinstance(value, list):
        return [escape(v) for v in value]
    if isinstance(value, dict):
        return {k: escape(v) for k, v in value.items()}
    return value


def iter_strings(value, path="$"):
    """Yield (json_path, string) for every string (keys excluded) in a JSON value."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from iter_strings(v, "%s[%d]" % (path, i))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from iter_strings(v, "%s.%s" % (path, k))


def referenced(value, pattern=PARAM_REF) -> set[str]:
    """Names referenced through parameters()/variables() in the expressions inside value."""
    names = set()
    for _path, s in iter_strings(value):
        if is_expression(s):
            names.update(m.group(1) for m in pattern.finditer(s))
    return names


def call_of(value: str) -> tuple[str, str] | None:
    """('format', "'{0}/x', parameters('a')") for "[format('{0}/x', parameters('a'))]"."""
    m = CALL.match(value) if is_expression(value) else None
    return (m.group(1).lower(), m.group(2)) if m else None


def literal_name_skeleton(name: str) -> str | None:
    """The literal text of a resource name, with `*` where an expression supplies a part.

    Literal names are returned as-is; `format()` returns its format string with placeholders starred;
    `concat()` joins its literal arguments with `*` for the others. Anything else is unknown (None).
    """
    if not is_expression(name):
        return name
    call = call_of(name)
    if not call:
        return None
    fn, args = call
    if fn == "format":
        m = STRING_LITERAL.match(args.strip())
        return re.sub(r"\{\d+\}", "*", m.group(1).replace("''", "'")) if m else None
    if fn == "concat":
        parts = _split_args(args)
        out = []
        for p in parts:
            m = STRING_LITERAL.fullmatch(p.strip())
            out.append(m.group(1).replace("''", "'") if m else "*")
        return "".join(out)
    return None


def _split_args(args: str) -> list[str]:
    """Split a function's argument list at top-level commas."""
    out, depth, cur, quoted = [], 0, [], False
    for ch in args:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch in "([":
            depth += 1
        elif not quoted and ch in ")]":
            depth -= 1
        elif not quoted and ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return out


def string_literals(expression: str) -> list[str]:
    return [m.group(1).replace("''", "'") for m in STRING_LITERAL.finditer(expression)]

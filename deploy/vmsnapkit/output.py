"""az-style output: -o json|jsonc|table|tsv|yaml|csv and --query (JMESPath applied before formatting).

Table output follows az's: the command's own columns (its table transformer) unless --query reshapes the
result, header underlined with dashes, columns two spaces apart, a header gets two characters of padding.
"""

import csv
import io
import json
import re

from .errors import EXIT_USAGE, KitError

FORMATS = ("json", "jsonc", "table", "tsv", "yaml", "csv")


def apply_query(result, expression):
    if not expression:
        return result
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        return jmespath.search(expression, result)
    except JMESPathError as exc:
        raise KitError(
            f"--query {expression!r} is not valid JMESPath: {str(exc).splitlines()[0]}", EXIT_USAGE
        ) from None


def render(rows, fmt="json", query=None, columns=None, color=False):
    data = apply_query(rows, query)
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True, default=str) + "\n"
    if fmt == "jsonc":
        text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True, default=str) + "\n"
        return colorize(text) if color else text
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    if fmt == "tsv":
        return tsv(data)
    if fmt == "csv":
        return to_csv(data)
    if fmt == "table":
        return table(data, None if query else columns)
    raise KitError(f"--output {fmt!r}: choose one of {', '.join(FORMATS)}", EXIT_USAGE)


def _text(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "; ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _as_rows(data):
    if data is None:
        return []
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return [r if isinstance(r, dict) else {"Result": r} for r in data]
    return [{"Result": data}]


def table(data, columns=None):
    rows = _as_rows(data)
    if not rows:
        return ""
    if columns:
        headers = [h for h, _ in columns]
        cells = [[_text(r.get(k)) for _, k in columns] for r in rows]
        numeric = [
            all(
                isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)
                for r in rows
                if r.get(k) is not None
            )
            for _, k in columns
        ]
    else:
        headers = []
        for r in rows:
            headers += [k for k in r if k not in headers and not isinstance(r[k], (dict, list))]
        cells = [[_text(r.get(k)) for k in headers] for r in rows]
        numeric = [
            all(
                isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)
                for r in rows
                if r.get(k) is not None
            )
            for k in headers
        ]
    widths = [max([len(h) + 2] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]

    def line(values, right):
        return "  ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)).rstrip()

    out = [line(headers, [False] * len(headers)), line(["-" * w for w in widths], [False] * len(headers))]
    out += [line(row, numeric) for row in cells]
    return "\n".join(out) + "\n"


def tsv(data):
    """az tsv: one line per item, values tab-separated in key order, nested objects left out."""
    lines = []
    for item in data if isinstance(data, list) else [data]:
        if isinstance(item, (dict, list)):
            values = item.values() if isinstance(item, dict) else item
            lines.append("\t".join(_text(v) for v in values if not isinstance(v, (dict, list))))
        elif item is not None:
            lines.append(_text(item))
    return "\n".join(lines) + ("\n" if lines else "")


def to_csv(data):
    rows = _as_rows(data)
    headers = []
    for r in rows:
        headers += [k for k in r if k not in headers]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    for r in rows:
        writer.writerow([_text(r.get(k)) for k in headers])
    return buf.getvalue()


_TOKEN = re.compile(r'("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)')


def colorize(text):
    """jsonc: keys blue, strings green, numbers and literals yellow/cyan, as a terminal shows az's jsonc."""

    def paint(m):
        if m.group(1):
            return f"\x1b[94m{m.group(1)}\x1b[0m{m.group(2)}" if m.group(2) else f"\x1b[32m{m.group(1)}\x1b[0m"
        if m.group(3):
            return f"\x1b[96m{m.group(3)}\x1b[0m"
        return f"\x1b[33m{m.group(4)}\x1b[0m"

    return _TOKEN.sub(paint, text)

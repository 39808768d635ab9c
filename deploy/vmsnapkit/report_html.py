"""The verify report as one self-contained HTML page: counts, four SVG pictures of the fleet, the failure
reasons, and every VM in one server-rendered table, its rows in <tbody> chunks (readable with scripts off; the
inline script adds sorting and filtering). The page loads nothing: its Content-Security-Policy allows only its
own hashed style and script.

Rows are written compactly (optional end tags omitted) so 10,000 VMs stay well under 3 MB."""

import html
import unicodedata

from . import __version__, report, report_assets, report_charts, report_stats

# Rows per <tbody>: each is skipped by the browser's layout and paint while off screen (content-visibility),
# so 10,000 VMs render about as fast as 200; the script keeps the chunks full when it sorts.
CHUNK = 200
TOP = 10  # bars per compliance chart before the rest fold into one "others" bar

# (words key, row key, numeric, widest column in characters) for the VM table; Result first, so failing rows
# read first. Columns are as wide as their longest cell up to that cap (longer names wrap); "why" takes the rest.
COLUMNS = [
    ("col_result", "result", False, 8),
    ("col_vm", "vm", False, 30),
    ("col_rg", "resourceGroup", False, 28),
    ("col_ext", "extensionState", False, 12),
    ("col_ver", "extensionVersion", False, 9),
    ("col_vault", "vault", False, 26),
    ("col_policy", "policy", False, 22),
    ("col_last", "lastBackupStatus", False, 14),
    ("col_time", "lastBackupTime", False, 16),
    ("col_age", "backupAgeHours", True, 8),
    ("col_why", "reasons", False, None),
    ("col_sub", "subscriptionId", False, 36),  # last: the widest, and the first to scroll off a narrow screen
]
WHY_MIN = 36


def _e(value):
    return html.escape(str(value), quote=False)


def _a(value):
    return html.escape(str(value), quote=True)


def _cell(row, key, words):
    value = row.get(key)
    if key == "reasons":
        items = [_e(words.reason(x)) for x in value or []]
        return items[0] if len(items) == 1 else ("<ul><li>" + "<li>".join(items) + "</ul>" if items else "")
    if key == "result":
        return _e(words[value])
    if key == "lastBackupTime":
        return _e(report.readable_time(value))
    if key in ("extensionState", "lastBackupStatus"):
        return _e(words.value(value) or "")
    return _e(report.cell(value))


def render(rows, rules, cloud_name, scope, now, words):
    failed, reasons = report.counts(rows)
    passed = len(rows) - len(failed)
    cells = [[_cell(r, key, words) for _, key, _, _ in COLUMNS] for r in rows]
    columns_css = _column_widths(cells, words)
    csp = report_assets.content_security_policy((report_assets.CSS, columns_css))
    stamp = f"{now:%Y-%m-%d %H:%M} UTC"
    title = f"{words['title']} ({stamp})"
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{words.lang}"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_a(csp)}">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{report_assets.CSS}</style><style>{columns_css}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        '<p class="meta">' + "<br>".join(_e(x) for x in report.meta_lines(rules, cloud_name, scope, words)) + "</p>",
        '<div class="cards">',
        f'<div class="card" id="n-checked"><b>{len(rows):,}</b>{_e(words["checked"])}</div>',
        f'<div class="card good" id="n-passed"><b>{passed:,}</b>{_e(words["passed"])}</div>',
        f'<div class="card bad" id="n-failed"><b>{len(failed):,}</b>{_e(words["failed"])}</div>',
        f'<div class="card" id="n-compliant"><b>{_percent(passed, len(rows))}</b>{_e(words["compliant"])}</div>',
        "</div>",
    ]
    if rows:
        parts += _charts(rows, rules, words)
    if reasons:
        parts.append(
            f'<h2>{_e(words["reasons"])}</h2><table id="reasons"><thead><tr><th>{_e(words["reason"])}'
            f"<th>{_e(words['vms'])}</thead><tbody>"
        )
        parts += [f"<tr><td>{_e(words.reason_kind(k))}<td>{n}" for k, n in reasons.most_common()]
        parts.append("</tbody></table>")
    parts += _table(rows, cells, words)
    parts.append(f"<script>{report_assets.SCRIPT}</script>")
    parts.append(f'<p class="hint">{_e(words.fmt("generated", v=__version__, t=stamp))}</p></body></html>')
    return "\n".join(parts) + "\n"


def _percent(part, whole):
    return f"{100 * part / whole:.1f} %" if whole else "–"


def _charts(rows, rules, words):
    groups, others = report_stats.by_resource_group(rows, TOP)
    rg_title = words.fmt("by_rg", n=TOP) if others else words["by_rg_all"]
    subs, other_subs = report_stats.by_subscription(rows, TOP)
    sub_title = words.fmt("by_sub_top", n=TOP) if other_subs else words["by_sub"]
    max_age = rules["max_age"].total_seconds() / 3600 if rules.get("max_age") is not None else None
    figures = [
        (sub_title, report_charts.compliance_chart("chart-sub", sub_title, subs, words, other_subs)),
        (rg_title, report_charts.compliance_chart("chart-rg", rg_title, groups, words, others)),
        (
            words["age"] if max_age else words["age_norule"],
            report_charts.age_chart("chart-age", words["age"], report_stats.age_histogram(rows, max_age), words),
        ),
        (
            words["versions"],
            report_charts.versions_chart(
                "chart-ver",
                words["versions"],
                report_stats.versions(rows, rules.get("min_version")),
                words,
                rules.get("min_version"),
            ),
        ),
    ]
    out = [f'<h2>{_e(words["charts"])}</h2><div class="charts">']
    out += [f"<figure><figcaption>{_e(caption)}</figcaption>{svg}</figure>" for caption, svg in figures]
    out.append("</div>")
    return out


def _width(text):
    """Characters as the table shows them: wide (CJK) ones count double; markup is not shown."""
    text = html.unescape(text.replace("<ul><li>", "").replace("<li>", " ").replace("</ul>", ""))
    return len(text) + sum(1 for ch in text if unicodedata.east_asian_width(ch) in "WF")


def _column_widths(cells, words):
    """The table's grid columns fitted to this page's data (the one style made per page, hashed into the CSP)."""
    tracks = []
    for i, (key, _, _, cap) in enumerate(COLUMNS):
        if cap is None:
            tracks.append(f"minmax({WHY_MIN}ch,1fr)")
            continue
        head = max(_width(word) for word in words[key].split())
        longest = max((_width(row[i]) for row in cells), default=0)
        tracks.append(f"{max(head, min(cap, longest)) + 2}ch")
    fixed = sum(int(t[:-2]) for t in tracks if t.endswith("ch") and not t.startswith("minmax"))
    return f"#vmt{{min-width:{fixed + WHY_MIN}ch}}#vmt tr{{grid-template-columns:{' '.join(tracks)}}}"


def _table(rows, cells, words):
    heads = "".join(f"<th{' data-t=n' if numeric else ''}>{_e(words[key])}" for key, _, numeric, _ in COLUMNS)
    out = [
        f"<h2>{_e(words['vm_table'])}</h2>",
        f'<p class="hint">{_e(words.fmt("total", total=f"{len(rows):,}"))}</p>',
        f'<div class="tools" id="tools" hidden data-shown="{_a(words["shown"])}">'
        f'<label>{_e(words["filter"])} <input type="search" id="q" placeholder="{_a(words["filter_hint"])}"></label>'
        f'<select id="res" aria-label="{_a(words["col_result"])}"><option value="">{_e(words["all"])}'
        f'<option value="f">{_e(words["failing"])}<option value="p">{_e(words["passing"])}</select>'
        f'<span id="shown"></span><span class="hint">{_e(words["sort_hint"])}</span></div>',
        f'<table id="vmt"><thead><tr>{heads}</thead>',
    ]
    for start in range(0, len(rows), CHUNK):
        out.append("<tbody>")
        out += [
            f"<tr class={'p' if r['passed'] else 'f'}>" + "".join(f"<td>{c}" for c in row_cells)
            for r, row_cells in zip(rows[start : start + CHUNK], cells[start : start + CHUNK])
        ]
        out.append("</tbody>")
    out.append("</table>")
    return out

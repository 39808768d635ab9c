"""The verify report as one self-contained HTML page: counts, four SVG pictures of the fleet, the failure
reasons, and every VM in one server-rendered table (readable with scripts off; the inline script adds sorting
and filtering). The page loads nothing: its Content-Security-Policy allows only its own hashed style and script.

Rows are written compactly (optional end tags omitted) so 10,000 VMs stay well under 3 MB."""

import html

from . import __version__, report, report_assets, report_charts, report_stats

TOP = 10  # bars per compliance chart before the rest fold into one "others" bar

# (words key, row key, numeric) for the VM table; Result first, so failing rows read first.
COLUMNS = [
    ("col_result", "result", False),
    ("col_vm", "vm", False),
    ("col_rg", "resourceGroup", False),
    ("col_ext", "extensionState", False),
    ("col_ver", "extensionVersion", False),
    ("col_vault", "vault", False),
    ("col_policy", "policy", False),
    ("col_last", "lastBackupStatus", False),
    ("col_time", "lastBackupTime", False),
    ("col_age", "backupAgeHours", True),
    ("col_why", "reasons", False),
    ("col_sub", "subscriptionId", False),  # last: the widest, and the first to scroll off a narrow screen
]


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
    stamp = f"{now:%Y-%m-%d %H:%M} UTC"
    title = f"{words['title']} ({stamp})"
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{words.lang}"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_a(report_assets.content_security_policy())}">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{report_assets.CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        '<p class="meta">' + "<br>".join(_e(x) for x in report.meta_lines(rules, cloud_name, scope, words)) + "</p>",
        '<div class="cards">',
        f'<div class="card" id="n-checked"><b>{len(rows)}</b>{_e(words["checked"])}</div>',
        f'<div class="card good" id="n-passed"><b>{passed}</b>{_e(words["passed"])}</div>',
        f'<div class="card bad" id="n-failed"><b>{len(failed)}</b>{_e(words["failed"])}</div>',
        f'<div class="card" id="n-compliant"><b>{_percent(passed, len(rows))}</b>{_e(words["compliant"])}</div>',
        "</div>",
    ]
    if rows:
        parts += _charts(rows, rules, words)
    if reasons:
        parts.append(
            f'<h2>{_e(words["reasons"])}</h2><table id="reasons"><thead><tr><th>{_e(words["reason"])}'
            f'<th>{_e(words["vms"])}</thead><tbody>'
        )
        parts += [f"<tr><td>{_e(words.reason_kind(k))}<td>{n}" for k, n in reasons.most_common()]
        parts.append("</tbody></table>")
    parts += _table(rows, words)
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
        (words["age"] if max_age else words["age_norule"], report_charts.age_chart(
            "chart-age", words["age"], report_stats.age_histogram(rows, max_age), words)),
        (words["versions"], report_charts.versions_chart(
            "chart-ver", words["versions"], report_stats.versions(rows, rules.get("min_version")), words,
            rules.get("min_version"))),
    ]
    out = [f'<h2>{_e(words["charts"])}</h2><div class="charts">']
    out += [f"<figure><figcaption>{_e(caption)}</figcaption>{svg}</figure>" for caption, svg in figures]
    out.append("</div>")
    return out


def _table(rows, words):
    heads = "".join(
        f'<th{" data-t=n" if numeric else ""}>{_e(words[key])}' for key, _, numeric in COLUMNS
    )
    out = [
        f'<h2>{_e(words["vm_table"])}</h2>',
        f'<p class="hint">{_e(words.fmt("total", total=len(rows)))}</p>',
        f'<div class="tools" id="tools" hidden data-shown="{_a(words["shown"])}">'
        f'<label>{_e(words["filter"])} <input type="search" id="q" placeholder="{_a(words["filter_hint"])}"></label>'
        f'<select id="res" aria-label="{_a(words["col_result"])}"><option value="">{_e(words["all"])}'
        f'<option value="f">{_e(words["failing"])}<option value="p">{_e(words["passing"])}</select>'
        f'<span id="shown"></span><span class="hint">{_e(words["sort_hint"])}</span></div>',
        f'<table id="vmt"><thead><tr>{heads}</thead><tbody>',
    ]
    out += [
        f'<tr class={"p" if r["passed"] else "f"}>' + "".join(f"<td>{_cell(r, key, words)}" for _, key, _ in COLUMNS)
        for r in rows
    ]
    out.append("</tbody></table>")
    return out

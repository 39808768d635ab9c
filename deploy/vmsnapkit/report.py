"""The verify report: one self-contained page, HTML (report_html: counts, SVG pictures of the fleet, a sortable
table) or Markdown (counts, failure reasons, the failing then the passing VMs), in en-US or zh-CN.

Shared here: the counts, the reason kinds of the summary, the rules sentence and readable timestamps."""

import collections
import datetime
import re

from . import __version__
from .protection import parse_time
from .report_i18n import EN, Words
from .report_i18n import resolve as resolve_language  # noqa: F401 - verify's entry point for --locale

FIELDS = [
    ("col_vm", "vm"),
    ("col_rg", "resourceGroup"),
    ("col_ext", "extensionState"),
    ("col_ver", "extensionVersion"),
    ("col_vault", "vault"),
    ("col_policy", "policy"),
    ("col_last", "lastBackupStatus"),
    ("col_time", "lastBackupTime"),
    ("col_age", "backupAgeHours"),
]

REASON_KINDS = (
    "not installed",
    "provisioningState",
    "older than",
    "not protected",
    "protection state",
    "backup health",
    "last backup Failed",
    "no completed backup",
    "could not be read",
)


def counts(rows):
    """(failing rows, Counter of reason kinds)."""
    failed = [r for r in rows if not r["passed"]]
    reasons = collections.Counter(reason_kind(reason) for r in failed for reason in r["reasons"])
    return failed, reasons


def reason_kind(reason):
    """Group reasons for the summary ('last backup 30.1h ago, older than 26h' -> 'older than')."""
    for key in REASON_KINDS:
        if key.lower() in reason.lower():
            return key
    return reason


def rules_text(rules, words):
    parts = [words["rule_installed"]]
    if rules.get("min_version"):
        parts.append(words.fmt("rule_version", v=rules["min_version"]))
    if rules.get("max_age") is not None:
        parts.append(words.fmt("rule_age", t=rules["max_age_text"]))
    parts.append(words["rule_optional"] if rules.get("allow_unprotected") else words["rule_protected"])
    return ("，" if words.lang != EN else ", ").join(parts)


def meta_lines(rules, cloud_name, scope, words):
    """('Cloud: X. Scope: Y.', 'Rules: ....') with the language's own punctuation."""
    c, stop = words["colon"], words["stop"]
    return (
        f"{words['cloud']}{c}{cloud_name}{stop}{words['scope']}{c}{scope}{stop}".rstrip(),
        f"{words['rules']}{c}{rules_text(rules, words)}{stop}".rstrip(),
    )


def cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


_ISO_MINUTE = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})")


def readable_time(text):
    """'2026-12-06T18:47:12.123456Z' -> '2026-12-06 18:47' (UTC, to the minute); unparseable text is kept
    to its minute when it looks like ISO 8601, else unchanged."""
    if not text:
        return ""
    ts = parse_time(text)
    if ts is not None:
        return ts.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    m = _ISO_MINUTE.match(str(text))
    return f"{m.group(1)} {m.group(2)}" if m else str(text)


def render(rows, rules, cloud_name, scope, now, markdown=False, lang=EN):
    words = Words(lang)
    if markdown:
        return _markdown(rows, rules, cloud_name, scope, now, words)
    from . import report_html  # imported here: report_html builds on this module

    return report_html.render(rows, rules, cloud_name, scope, now, words)


def _md(text):
    return str(text).replace("|", "\\|")


def _md_cell(row, key, words):
    if key == "lastBackupTime":
        return readable_time(row[key])
    if key in ("extensionState", "lastBackupStatus"):
        return words.value(row[key]) or ""
    return cell(row[key])


def _markdown(rows, rules, cloud_name, scope, now, words):
    failed, reasons = counts(rows)
    stamp = f"{now:%Y-%m-%d %H:%M} UTC"
    out = [
        f"# {words['title']} ({stamp})",
        "",
        " ".join(meta_lines(rules, cloud_name, scope, words)),
        "",
        f"| {words['checked']} | {words['passed']} | {words['failed']} |",
        "|---:|---:|---:|",
        f"| {len(rows)} | {len(rows) - len(failed)} | {len(failed)} |",
        "",
    ]
    if reasons:
        out += [f"## {words['reasons']}", "", f"| {words['reason']} | {words['vms']} |", "|---|---:|"]
        out += [f"| {_md(words.reason_kind(k))} | {n} |" for k, n in reasons.most_common()] + [""]
    sections = ((words["md_failing"], failed), (words["md_passing"], [r for r in rows if r["passed"]]))
    for title, subset in sections:
        if not subset:
            continue
        out += [
            f"## {title} ({len(subset)})",
            "",
            "| " + " | ".join(words[h] for h, _ in FIELDS) + f" | {words['col_why']} |",
            "|" + "---|" * (len(FIELDS) + 1),
        ]
        for r in subset:
            cells = [_md(_md_cell(r, k, words)) for _, k in FIELDS]
            why = "<br>".join(_md(words.reason(x)) for x in r["reasons"])
            out.append("| " + " | ".join(cells) + " | " + why + " |")
        out.append("")
    out.append(words.fmt("generated", v=__version__, t=stamp))
    return "\n".join(out) + "\n"

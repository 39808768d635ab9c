"""The report's pictures as inline SVG: no script, font or file from anywhere else, so the page draws the same
offline, from a mail attachment or a file share. Colours come from classes styled by the page's one hashed
<style> block (style attributes would need 'unsafe-inline'); every bar is a <g class="bar"> carrying its numbers
in data-* attributes and a <title> tooltip, so a reader hovering and a test reading the DOM see the same facts."""

import html
import unicodedata

from . import report_stats

WIDTH = 560
LABEL_W = 180
NOTE_W = 150
ROW_H = 22
BAR_H = 14


def _e(value):
    return html.escape(str(value), quote=True)


def _text_width(text, size=12):
    """Rough advance width for layout: CJK and other wide characters count double."""
    wide = sum(1 for ch in text if unicodedata.east_asian_width(ch) in "WF")
    return (len(text) - wide) * size * 0.62 + wide * size


def _fit(text, width, size=12):
    """Shorten a label to the width: keep its head and its tail (subscription ids differ at both ends)."""
    if _text_width(text, size) <= width:
        return text
    head, tail = text[: len(text) // 2], text[len(text) // 2 :]
    while (head or tail) and _text_width(head + "…" + tail, size) > width:
        if len(head) >= len(tail):
            head = head[:-1]
        else:
            tail = tail[1:]
    return head + "…" + tail


def _svg(chart_id, label, height, body, width=WIDTH):
    return (
        f'<svg id="{chart_id}" class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}">'
        + "".join(body)
        + "</svg>"
    )


def _hbars(chart_id, label, bars, shares=False):
    """Horizontal bars, one row each: bars are (g class, data-* dict, name, note, [(rect class, value)]).
    shares=True draws every bar full width split by its own total (a 100 % bar), else all to one scale."""
    if not bars:
        return _svg(chart_id, label, ROW_H, [])
    largest = max(sum(v for _, v in segments) for *_, segments in bars) or 1
    span = WIDTH - LABEL_W - NOTE_W - 16
    body = []
    for i, (cls, data, name, note, segments) in enumerate(bars):
        y = 4 + i * ROW_H
        x = LABEL_W + 8
        scale = (sum(v for _, v in segments) or 1) if shares else largest
        attrs = "".join(f' data-{k}="{_e(v)}"' for k, v in data.items())
        rects = []
        for rect_cls, value in segments:
            width = span * value / scale
            rects.append(f'<rect class="{rect_cls}" x="{x:.1f}" y="{y}" width="{width:.1f}" height="{BAR_H}"/>')
            x += width
        body.append(
            f'<g class="{cls}"{attrs}><title>{_e(name)}: {_e(note)}</title>'
            f'<text class="lbl" x="{LABEL_W}" y="{y + 11}">{_e(_fit(name, LABEL_W - 4))}</text>'
            + "".join(rects)
            + f'<text class="note" x="{x + 6:.1f}" y="{y + 11}">{_e(note)}</text></g>'
        )
    return _svg(chart_id, label, 8 + len(bars) * ROW_H, body)


def compliance_chart(chart_id, label, groups, words, others=None):
    """100 % bars, passed (green) then failed (red), worst group first, the folded rest last: shares, so a
    group of 80 VMs reads as clearly as the "others" bar holding 9,000."""
    bars = [
        (
            "bar others" if g is others else "bar",
            {"key": g.key, "pass": g.passed, "fail": g.failed},
            words.fmt("others", n=g.members) if g is others else g.label,
            words.fmt("of", f=f"{g.failed:,}", n=f"{g.total:,}"),
            [("ok", g.passed), ("bad", g.failed)],
        )
        for g in list(groups) + ([others] if others else [])
    ]
    return _hbars(chart_id, label, bars, shares=True)


def versions_chart(chart_id, label, versions, words, min_version=None):
    """One bar per extension version, newest first; versions below --min-version and "not installed" red."""
    bars = []
    for v in versions:
        if v.label is None:
            name = words["not_installed"]
        elif not v.ok and min_version:
            name = f"{v.label} ({words.fmt('below_min', v=min_version)})"
        else:
            name = v.label
        bars.append(
            (
                "bar",
                {"key": v.label or "", "count": v.count},
                name,
                f"{v.count:,}",
                [("ok" if v.ok else "bad", v.count)],
            )
        )
    return _hbars(chart_id, label, bars)


def _hours(value):
    return f"{value:g}h" if value == int(value) else f"{value:.1f}h"


def age_chart(chart_id, label, hist: report_stats.Histogram, words):
    """Vertical bars over the age axis, the rule drawn as a line at its bin edge; bars past it in red."""
    height, top, bottom, left = 200, 18, 160, 8
    bins = hist.bins
    slots = len(bins) + 2  # the bins, a gap, the "none" bar
    slot = (WIDTH - left - 8) / slots
    scale = max([c for _, _, c in bins] + [hist.no_backup, 1])
    body = [f'<line class="axis" x1="{left}" y1="{bottom}" x2="{WIDTH - 8}" y2="{bottom}"/>']

    def bar(i, cls, count, tip, data):
        x = left + i * slot + 1
        h = (bottom - top) * count / scale
        num = f'<text class="cnt" x="{x + slot / 2 - 1:.1f}" y="{bottom - h - 3:.1f}">{count}</text>' if count else ""
        body.append(
            f'<g class="bar" {data} data-count="{count}"><title>{_e(tip)}: {count}</title>'
            f'<rect class="{cls}" x="{x:.1f}" y="{bottom - h:.1f}" width="{slot - 2:.1f}" height="{h:.1f}"/>'
            f"{num}</g>"
        )

    for i, (low, high, count) in enumerate(bins):
        late = hist.threshold is not None and low >= hist.threshold
        cls = "bad" if late else ("ok" if hist.threshold is not None else "neutral")
        tip = f"{_hours(low)}–{_hours(high)}" if high is not None else f"≥ {_hours(low)}"
        bar(i, cls, count, tip, f'data-from="{low:g}" data-to="{"" if high is None else f"{high:g}"}"')
    bar(len(bins) + 1, "muted", hist.no_backup, words["no_backup"], 'data-from="" data-to=""')
    # ticks: 0, half the rule, the rule, 1.5x, 2x; then the overflow and "none" bars by name
    per_bin = hist.edges[1] - hist.edges[0]
    for edge in hist.edges[:-1:4]:
        x = left + (edge / per_bin) * slot
        body.append(f'<text class="tick" x="{x:.1f}" y="{bottom + 14}">{_hours(edge)}</text>')
    body.append(
        f'<text class="tick" x="{left + (len(bins) - 0.5) * slot:.1f}" y="{bottom + 14}">'
        f"&gt;{_hours(hist.edges[-1])}</text>"
    )
    body.append(
        f'<text class="tick" x="{left + (len(bins) + 1.5) * slot:.1f}" y="{bottom + 14}">'
        f"{_e(words['no_backup'])}</text>"
    )
    if hist.threshold is not None:
        x = left + (hist.threshold / per_bin) * slot
        body.append(
            f'<g class="threshold" data-hours="{hist.threshold:g}">'
            f'<line class="rule" x1="{x:.1f}" y1="{top - 10}" x2="{x:.1f}" y2="{bottom + 2}"/>'
            f'<text class="rulel" x="{x + 4:.1f}" y="{top - 2}">{_e(words["rule"])} {_hours(hist.threshold)}</text>'
            "</g>"
        )
    return _svg(chart_id, label, height, body)

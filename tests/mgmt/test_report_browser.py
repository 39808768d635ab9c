"""The verify report as a person sees it: the real `vmsnapkit verify --report` against the ARM emulator, opened in
Debian's headless Chromium (harness/chromium.py, DevTools protocol). The DOM must tell the same story as the JSON
output of the same run: counts, the four charts' bars, the table; sorting and filtering must work with a real
click and real typing; the Content-Security-Policy must let the page's own style and script run and nothing else.
Skipped with the reason printed when Chromium is missing (`make test` as root installs it: mk/report.mk)."""

import collections
import time

import pytest
from vmsnapkit import report, report_html

from harness import chromium
from harness.chromium import Chromium
from harness.report_page import RULES, fleet

from .report_rows import NOW, RULE_SET, synthetic_rows

pytestmark = pytest.mark.skipif(chromium.skip_reason() is not None, reason=str(chromium.skip_reason()))


@pytest.fixture
def report_run(emulator, kit_for, tmp_path):
    """(JSON rows, path of the HTML report) from one verify run on a lived-in 60-VM fleet."""
    emu = emulator(fleet=fleet(60))
    page = tmp_path / "fleet.html"
    _, rows = kit_for(emu).json("verify", *RULES, "--report", str(page), check=1)
    assert len(rows) == 60
    return rows, page


def bars(browser, chart):
    return browser.evaluate(
        f"Array.from(document.querySelectorAll('#{chart} g.bar')).map(function (g) {{"
        "var r = g.querySelectorAll('rect'); return {key: g.dataset.key, pass: +g.dataset.pass,"
        " fail: +g.dataset.fail, count: +g.dataset.count, from: g.dataset.from,"
        " cls: r[r.length - 1].getAttribute('class'),"
        " widths: Array.from(r).map(function (x) { return x.getBBox().width; }),"
        " heights: Array.from(r).map(function (x) { return x.getBBox().height; })}; })"
    )


def column(browser, n):
    return browser.evaluate(
        f"Array.from(document.querySelectorAll('#vmt tbody tr:not([hidden]) td:nth-child({n})'))"
        ".map(function (c) { return c.textContent; })"
    )


def wait_for(browser, expression, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if browser.evaluate(expression):
            return True
        time.sleep(0.05)
    raise AssertionError(f"not true within {timeout}s: {expression}")


def test_report_in_chromium_matches_the_json_and_sorts_and_filters(report_run, tmp_path):
    rows, page = report_run
    failing = [r for r in rows if not r["passed"]]
    with Chromium(1400, 1000) as b:
        b.navigate(page.as_uri())
        assert b.problems() == []  # no CSP refusal, no console error, no exception
        assert b.evaluate("document.getElementById('tools').hidden") is False  # the hashed script ran
        assert b.evaluate("getComputedStyle(document.body).marginLeft") == "0px"  # the hashed style applied

        # counts and table against the JSON of the same run, in the same order (failing first)
        cards = b.evaluate(
            "['n-checked','n-passed','n-failed'].map(function (i) {"
            " return +document.querySelector('#' + i + ' b').textContent.replace(/,/g, ''); })"
        )
        assert cards == [60, 60 - len(failing), len(failing)]
        assert column(b, 2) == [r["vm"] for r in rows]
        assert b.evaluate("document.querySelectorAll('#vmt tbody tr.f').length") == len(failing)

        # compliance by subscription: one bar per subscription, pass/fail as in the JSON, each a 100 % bar
        by_sub = collections.defaultdict(lambda: [0, 0])
        for r in rows:
            by_sub[r["subscriptionId"].lower()][0 if r["passed"] else 1] += 1
        subs = bars(b, "chart-sub")
        assert {s["key"]: [s["pass"], s["fail"]] for s in subs} == dict(by_sub)
        span = sum(subs[0]["widths"])
        for s in subs:
            share = s["pass"] / (s["pass"] + s["fail"])
            assert s["widths"] == pytest.approx([span * share, span * (1 - share)], abs=0.2)
        assert [s["fail"] for s in subs] == sorted((s["fail"] for s in subs), reverse=True)

        # by resource group: 2 x 6 groups -> the 10 worst and one "others" bar holding the last 2
        groups = collections.defaultdict(lambda: [0, 0])
        for r in rows:
            groups[f"{r['subscriptionId'].lower()}/{r['resourceGroup'].lower()}"][0 if r["passed"] else 1] += 1
        rg = bars(b, "chart-rg")
        assert len(rg) == 11 and rg[-1]["key"] == "others"
        assert [g["fail"] for g in rg[:-1]] == sorted((f for _, f in groups.values()), reverse=True)[:10]
        for g in rg[:-1]:
            assert groups[g["key"]] == [g["pass"], g["fail"]]
        assert sum(g["pass"] + g["fail"] for g in rg) == 60

        # backup age: every VM in exactly one bar; past the 26 h rule red; no backup in its own bar
        ages = bars(b, "chart-age")
        assert sum(a["count"] for a in ages) == 60
        late = [a for a in ages if a["from"] and float(a["from"]) >= 26]
        assert sum(a["count"] for a in late) == sum(1 for r in rows if (r["backupAgeHours"] or 0) >= 26) > 0
        assert all(a["cls"] == "bad" for a in late)
        assert ages[-1]["count"] == sum(1 for r in rows if r["backupAgeHours"] is None) > 0
        assert b.evaluate("document.querySelector('#chart-age .threshold').dataset.hours") == "26"
        tallest = max(ages, key=lambda a: a["count"])
        assert tallest["heights"][0] > 100 and all(a["heights"][0] == 0 for a in ages if not a["count"])

        # extension versions: counts as in the JSON, "not installed" last and red, 1.8 below the 1.9 floor red
        versions = {v["key"]: (v["count"], v["cls"]) for v in bars(b, "chart-ver")}
        expected = collections.Counter("" if r["extensionState"] == "Missing" else r["extensionVersion"] for r in rows)
        assert {k: c for k, (c, _) in versions.items()} == dict(expected)
        assert versions[""][1] == "bad" and versions["1.8"][1] == "bad" and versions["1.10"][1] == "ok"
        for chart in ("chart-sub", "chart-rg", "chart-age", "chart-ver"):
            assert b.evaluate(f"document.getElementById('{chart}').getBoundingClientRect().width") > 300

        # sorting: a real click on the age header, then again; empty cells stay last both ways
        b.click("#vmt thead th[data-t=n] button")
        ages_shown = column(b, 10)
        numbers = [float(x) for x in ages_shown if x]
        assert numbers == sorted(numbers) and ages_shown[len(numbers) :] == [""] * (60 - len(numbers))
        assert b.evaluate("document.querySelector('#vmt thead th[data-t=n]').getAttribute('aria-sort')") == (
            "ascending"
        )
        b.click("#vmt thead th[data-t=n] button")
        numbers = [float(x) for x in column(b, 10) if x]
        assert numbers == sorted(numbers, reverse=True)
        b.click("#vmt thead th:nth-child(2) button")
        assert column(b, 2) == sorted(r["vm"] for r in rows)

        # filtering: typed text, then the failing/passing choice; the counter says how many are shown
        b.type_text("#q", "rg-app-2")
        in_group = sorted(r["vm"] for r in rows if r["resourceGroup"] == "rg-app-2")
        wait_for(b, f"document.querySelectorAll('#vmt tbody tr:not([hidden])').length === {len(in_group)}")
        assert column(b, 2) == in_group
        b.evaluate("var s = document.getElementById('res'); s.value = 'f'; s.dispatchEvent(new Event('change'))")
        bad_in_group = sorted(r["vm"] for r in failing if r["resourceGroup"] == "rg-app-2")
        assert column(b, 2) == bad_in_group
        assert b.evaluate("document.getElementById('shown').textContent") == f"{len(bad_in_group)} of 60 VMs shown"

        shot = tmp_path / "report.png"
        size = b.screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and size > 20_000
        assert b.problems() == []


def test_sorting_and_filtering_span_every_chunk_of_a_large_table(tmp_path):
    """Past CHUNK rows the table is several <tbody>: a sort must order across all of them and keep them full."""
    rows = synthetic_rows(2 * report_html.CHUNK + 50)
    page = tmp_path / "large.html"
    page.write_text(report.render(rows, RULE_SET, "AzureCloud", "3 subscription(s)", NOW), encoding="utf-8")
    with Chromium(1400, 1000) as b:
        b.navigate(page.as_uri())
        sizes = "Array.from(document.querySelectorAll('#vmt tbody')).map(function (t) { return t.rows.length; })"
        assert b.evaluate(sizes) == [report_html.CHUNK, report_html.CHUNK, 50]
        b.click("#vmt thead th[data-t=n] button")
        b.click("#vmt thead th[data-t=n] button")  # descending: the oldest backups first, then the empty cells
        shown = column(b, 10)
        numbers = [float(x) for x in shown if x]
        assert numbers == sorted((r["backupAgeHours"] for r in rows if r["backupAgeHours"] is not None), reverse=True)
        assert shown[len(numbers) :] == [""] * (len(rows) - len(numbers)) and b.evaluate(sizes) == [200, 200, 50]
        b.type_text("#q", "rg-workload-07")
        wanted = sum(1 for r in rows if r["resourceGroup"] == "rg-workload-07")
        wait_for(b, f"document.querySelectorAll('#vmt tbody tr:not([hidden])').length === {wanted}")
        assert b.problems() == []
        empty = tmp_path / "empty.html"  # no VM matched: counts, no charts, an empty table, still no error
        empty.write_text(report.render([], RULE_SET, "AzureCloud", "0", NOW), encoding="utf-8")
        b.navigate(empty.as_uri())
        b.click("#vmt thead th:nth-child(2) button")
        assert b.evaluate("document.getElementById('shown').textContent") == "0 of 0 VMs shown"
        assert b.evaluate("document.querySelectorAll('svg.chart').length") == 0 and b.problems() == []


def test_chinese_page_runs_clean_and_sorts(tmp_path):
    rows = synthetic_rows(30)
    page = tmp_path / "zh.html"
    page.write_text(report.render(rows, RULE_SET, "AzureChinaCloud", "3", NOW, lang="zh-CN"), encoding="utf-8")
    with Chromium(1400, 1000) as b:
        b.navigate(page.as_uri())
        assert b.evaluate("document.documentElement.lang") == "zh-CN"
        assert b.evaluate("document.getElementById('shown').textContent") == "显示 30 / 30 台虚拟机"
        b.click("#vmt thead th[data-t=n] button")
        numbers = [float(x) for x in column(b, 10) if x]
        assert numbers == sorted(numbers) and len(numbers) == sum(1 for r in rows if r["backupAgeHours"] is not None)
        assert set(column(b, 1)) == {"通过", "未通过"} and b.problems() == []


def test_report_is_readable_with_scripts_off(report_run):
    rows, page = report_run
    with Chromium(1400, 1000) as b:
        b.navigate(page.as_uri(), scripts=False)
        assert b.evaluate("document.getElementById('tools').hidden") is True  # no dead controls shown
        assert b.evaluate("document.querySelectorAll('#vmt thead button').length") == 0
        assert column(b, 2) == [r["vm"] for r in rows]
        assert b.evaluate("document.querySelector('#vmt tbody tr').getBoundingClientRect().height") > 10
        assert b.evaluate("document.querySelectorAll('svg.chart g.bar').length") > 20
        assert b.problems() == []


def test_csp_refuses_a_page_whose_style_or_script_was_changed(report_run, tmp_path):
    """The no-violation check above can fail: the same page with one changed byte in its style and script."""
    _, page = report_run
    text = page.read_text(encoding="utf-8")
    tampered = tmp_path / "tampered.html"
    tampered.write_text(
        text.replace("<style>", "<style>/**/", 1).replace('"use strict";', '"use strict";0;', 1), encoding="utf-8"
    )
    with Chromium(1000, 800) as b:
        b.navigate(tampered.as_uri())
        problems = b.problems()
        assert any("style-src" in p for p in problems) and any("script-src" in p for p in problems)
        assert b.evaluate("document.getElementById('tools').hidden") is True
        assert b.evaluate("getComputedStyle(document.body).marginLeft") != "0px"

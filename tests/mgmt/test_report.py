"""The verify report without a browser: zh-CN wording end to end, the locale rules, the CSP hashes against the
inline code, readable timestamps, the chart numbers, and the size of a 10,000-VM page."""

import re

import pytest
from vmsnapkit import report, report_assets, report_stats
from vmsnapkit.errors import EXIT_USAGE, KitError
from vmsnapkit.report_i18n import EN, ZH, resolve

from harness.report_page import RULES, fleet

from .report_rows import NOW, RULE_SET, synthetic_rows

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_chinese_report_from_the_environment_and_english_on_request(emulator, kit_for, tmp_path):
    emu = emulator(fleet=fleet(60))
    kit = kit_for(emu)
    zh_page = tmp_path / "zh.html"
    _, rows = kit.json("verify", *RULES, "--report", str(zh_page), env={"LANG": "zh_CN.UTF-8"}, check=1)
    page = zh_page.read_text(encoding="utf-8")
    assert '<html lang="zh-CN">' in page and "虚拟机快照与备份验证" in page and "按订阅的合规情况" in page
    why_cells = [m for m in re.findall(r"<tr class=f>(.*?)(?=<tr|</tbody>)", page, re.S)]
    assert len(why_cells) == sum(1 for r in rows if not r["passed"])
    for r in rows:  # every reason verify gives is said in Chinese: no English reason text is left
        for reason in r["reasons"]:
            assert reason not in page
    assert all(CJK.search(cell.split("<td>")[11]) for cell in why_cells)
    assert "2026" in page and not re.search(r"\d\d:\d\d:\d\d\.\d+", page)  # no microseconds anywhere

    md = tmp_path / "zh.md"
    kit.run("verify", *RULES, "--report", str(md), "--locale", "zh-CN", check=1)
    assert "## 未通过的虚拟机" in md.read_text(encoding="utf-8")
    en = tmp_path / "en.html"
    kit.run("verify", *RULES, "--report", str(en), "--locale", "en-US", env={"LANG": "zh_CN.UTF-8"}, check=1)
    assert '<html lang="en-US">' in en.read_text(encoding="utf-8")

    bad = tmp_path / "never.html"
    proc = kit.run("verify", "--report", str(bad), "--locale", "fr-FR", check=EXIT_USAGE)
    assert "--locale 'fr-FR': the report speaks en-US or zh-CN" in proc.stderr
    assert "Traceback" not in proc.stderr and not bad.exists()


@pytest.mark.parametrize(
    "option, env, lang",
    [
        ("zh_CN", {}, ZH),
        ("zh-Hans", {"LANG": "en_US.UTF-8"}, ZH),
        ("en-us", {"LANG": "zh_CN.UTF-8"}, EN),
        (None, {"LANG": "zh_CN.UTF-8"}, ZH),
        (None, {"LC_ALL": "C.UTF-8", "LANG": "zh_CN.UTF-8"}, EN),
        (None, {"VMSNAPKIT_LOCALE": "zh-cn", "LC_ALL": "en_US.UTF-8"}, ZH),
        (None, {"LANG": "fr_FR.UTF-8"}, EN),
        (None, {}, EN),
    ],
)
def test_locale_resolution_follows_the_runtime_spellings(option, env, lang):
    assert resolve(option, env) == lang


def test_an_unknown_explicit_locale_is_a_usage_error():
    with pytest.raises(KitError) as err:
        resolve("de")
    assert err.value.exit_code == EXIT_USAGE


def test_csp_allows_exactly_the_inline_style_and_script_and_nothing_loads():
    page = report.render(synthetic_rows(50), RULE_SET, "AzureCloud", "1 subscription(s)", NOW)
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page).group(1)
    styles = re.findall(r"<style>(.*?)</style>", page, re.S)
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert styles[0] == report_assets.CSS and "grid-template-columns" in styles[1] and len(styles) == 2
    assert scripts == [report_assets.SCRIPT]
    style_src = " ".join(report_assets.sha256_source(s) for s in styles)
    assert csp.replace("&#x27;", "'") == (
        f"default-src 'none'; script-src {report_assets.sha256_source(scripts[0])}; "
        f"style-src {style_src}; img-src 'none'; base-uri 'none'; form-action 'none'"
    )
    assert "unsafe" not in csp
    for forbidden in (" style=", " onclick", " onload", "<link", "<img", " src=", "<iframe", "http://", "https://"):
        assert forbidden not in page, forbidden


@pytest.mark.parametrize(
    "text, shown",
    [
        ("2026-12-06T18:47:12.123456Z", "2026-12-06 18:47"),
        ("2026-12-06T18:47:12.1234567Z", "2026-12-06 18:47"),  # Azure's 7 digits, beyond fromisoformat
        ("2026-12-06T20:47:12+02:00", "2026-12-06 18:47"),
        ("", ""),
        (None, ""),
        ("yesterday", "yesterday"),
    ],
)
def test_timestamps_are_readable_utc_minutes(text, shown):
    assert report.readable_time(text) == shown


def test_resource_groups_top_ten_and_others_and_same_names_told_apart():
    rows = synthetic_rows(700, groups=25, subscriptions=3)
    top, others = report_stats.by_resource_group(rows, top=10)
    assert len(top) == 10 and others.members == 75 - 10
    assert sum(g.total for g in top) + others.total == 700
    assert sum(g.failed for g in top) + others.failed == sum(1 for r in rows if not r["passed"])
    fails = [g.failed for g in top]
    assert fails == sorted(fails, reverse=True) and min(fails) >= max(0, others.failed // others.members)
    assert all(re.fullmatch(r"rg-workload-\d\d \(\d{8}\)", g.label) for g in top)  # the name is in 3 subs
    few, none = report_stats.by_resource_group(rows[:3], top=10)
    assert none is None and len(few) == 3
    subs, other_subs = report_stats.by_subscription(synthetic_rows(700, subscriptions=40))
    assert len(subs) == 10 and other_subs.members == 30 and sum(g.total for g in subs) + other_subs.total == 700


def test_age_histogram_bins_against_the_rule():
    rows = [{"backupAgeHours": a} for a in (0.1, 3.24, 3.25, 25.9, 26.0, 51.9, 52.0, 400.0, None, None)]
    hist = report_stats.age_histogram(rows, 26.0)
    assert hist.threshold == 26.0 and hist.edges[8] == 26.0 and len(hist.counts) == 17
    assert (hist.counts[0], hist.counts[1], hist.counts[7], hist.counts[8]) == (2, 1, 1, 1)
    assert hist.counts[15] == 1 and hist.counts[16] == 2 and hist.no_backup == 2
    assert sum(hist.counts) + hist.no_backup == len(rows)
    assert report_stats.age_histogram(rows).threshold is None


def test_versions_newest_first_missing_last():
    rows = [{"extensionState": "Succeeded", "extensionVersion": v} for v in ("1.9", "1.10", "1.10", "1.8")]
    rows.append({"extensionState": "Missing", "extensionVersion": ""})
    got = [(v.label, v.count, v.ok) for v in report_stats.versions(rows, "1.9")]
    assert got == [("1.10", 2, True), ("1.9", 1, True), ("1.8", 1, False), (None, 1, False)]


def test_ten_thousand_vms_stay_under_three_megabytes():
    page = report.render(synthetic_rows(10_000, groups=400, subscriptions=8), RULE_SET, "AzureCloud", "8", NOW)
    size = len(page.encode("utf-8"))
    assert page.count("<tr class=") == 10_000 and size < 3 * 1024 * 1024, size
    assert page.count('class="bar others"') == 1  # 400 resource groups folded; 8 subscriptions all shown

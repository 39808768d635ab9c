"""The report page's style sheets and only script, inlined and allowed by their SHA-256 in the page's
Content-Security-Policy. CSS and SCRIPT are constants (the page's words reach the script through data-*
attributes); the one style made per page is the table's column widths, fitted to the names in it, and its hash
is computed with the page."""

import base64
import hashlib

CSS = """
:root{color-scheme:light}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI","Noto Sans","Noto Sans CJK SC","WenQuanYi Micro Hei",
"Microsoft YaHei","PingFang SC",sans-serif;margin:0;padding:1.2em 2em 2em;color:#1b1b1b;background:#fff}
h1{font-size:1.45em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.4em 0 .5em}
.meta{color:#444;margin:.2em 0 1em}
.cards{display:flex;flex-wrap:wrap;gap:.8em}
.card{border:1px solid #d0d0d0;border-radius:6px;padding:.45em 1.1em;min-width:7em}
.card b{display:block;font-size:1.8em;line-height:1.2}.bad b{color:#b00020}.good b{color:#1e7e34}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:1em 1.6em;max-width:1400px;
align-items:start}
figure{margin:0;border:1px solid #e0e0e0;border-radius:6px;padding:.6em .8em}
figcaption{font-weight:600;margin-bottom:.4em}
svg.chart{width:100%;height:auto;display:block;font-size:12px;font-family:inherit}
svg .ok{fill:#2e7d32}svg .bad{fill:#c62828}svg .muted{fill:#9e9e9e}svg .neutral{fill:#1565c0}
svg .lbl{text-anchor:end;fill:#222}svg .note{fill:#444}
svg .cnt{text-anchor:middle;font-size:10px;fill:#333}svg .tick{text-anchor:middle;font-size:10px;fill:#555}
svg .axis{stroke:#999}svg .rule{stroke:#b00020;stroke-width:1.5;stroke-dasharray:4 3}
svg .rulel{fill:#b00020;font-size:11px}svg .others .lbl{font-style:italic}svg .bar:hover rect{opacity:.75}
table{border-collapse:collapse;margin:.4em 0}
th,td{border:1px solid #d6d6d6;padding:3px 7px;text-align:left;vertical-align:top}
thead th{background:#f1f1f1}
#vmt,#vmt thead,#vmt tbody{display:block}
#vmt{font-size:13px;line-height:18px;border:1px solid #d6d6d6;border-width:1px 0 0 1px}
#vmt tr{display:grid}
#vmt thead{position:sticky;top:0;z-index:1}
#vmt tbody{content-visibility:auto;contain-intrinsic-size:auto 5000px}
#vmt tr{border-bottom:1px solid #d6d6d6}
#vmt th,#vmt td{border-width:0 1px 0 0;padding:3px 6px;overflow-wrap:break-word;min-width:0}
#vmt td:nth-child(10){text-align:right}
#vmt tr.f{background:#fdecea}#vmt tr.p{background:#f3f9f3}#vmt tr[hidden]{display:none}
th button{font:inherit;font-weight:600;background:none;border:0;padding:0;cursor:pointer;color:inherit;text-align:left}
th[aria-sort=ascending] button::after{content:" \\25B2"}th[aria-sort=descending] button::after{content:" \\25BC"}
.tools{display:flex;gap:.8em;align-items:center;margin:.4em 0;flex-wrap:wrap}
.tools[hidden]{display:none}.tools input{padding:3px 6px;min-width:18em}
.hint{color:#666}
ul{margin:0;padding-left:1.1em}
@media print{.tools{display:none}#vmt thead{position:static}#vmt tbody{content-visibility:visible}}
"""

SCRIPT = """
(function () {
  "use strict";
  var table = document.getElementById("vmt"), tools = document.getElementById("tools");
  if (!table || !tools) return;
  var bodies = Array.prototype.slice.call(table.tBodies), rows = [];
  bodies.forEach(function (b) { rows.push.apply(rows, b.rows); });
  var chunk = bodies.length ? bodies[0].rows.length : 1;  /* rows per <tbody> (what the page renders at once) */
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var q = document.getElementById("q"), res = document.getElementById("res");
  var shown = document.getElementById("shown"), texts = null, timer = 0;
  var collator = new Intl.Collator(document.documentElement.lang, {numeric: true, sensitivity: "base"});

  function sortBy(th, col) {
    var numeric = th.getAttribute("data-t") === "n";
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    var keyed = rows.map(function (row, i) {
      var t = row.cells[col] ? row.cells[col].textContent.trim() : "";
      return {row: row, k: numeric ? parseFloat(t) : t, e: t === "", i: i};
    });
    keyed.sort(function (a, b) {
      if (a.e !== b.e) return a.e ? 1 : -1;  /* empty cells last, both ways */
      var c = numeric ? a.k - b.k : collator.compare(a.k, b.k);
      return c * dir || a.i - b.i;
    });
    rows = keyed.map(function (x) { return x.row; });
    bodies.forEach(function (b) { table.removeChild(b); });  /* reorder off the document */
    rows.forEach(function (r, i) { bodies[Math.floor(i / chunk)].appendChild(r); });
    bodies.forEach(function (b) { table.appendChild(b); });
    heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  }

  function apply() {
    var needle = q.value.trim().toLowerCase(), want = res.value, n = 0;
    if (needle && !texts) {
      texts = new Map(rows.map(function (r) { return [r, r.textContent.toLowerCase()]; }));
    }
    rows.forEach(function (r) {
      var ok = (!want || r.classList.contains(want)) && (!needle || texts.get(r).indexOf(needle) >= 0);
      if (r.hidden === ok) r.hidden = !ok;
      if (ok) n++;
    });
    shown.textContent = tools.getAttribute("data-shown").replace("{n}", n).replace("{total}", rows.length);
  }

  heads.forEach(function (th, col) {
    var b = document.createElement("button");
    b.type = "button";
    while (th.firstChild) b.appendChild(th.firstChild);
    th.appendChild(b);
    b.addEventListener("click", function () { sortBy(th, col); });
  });
  q.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(apply, 120); });
  q.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { clearTimeout(timer); apply(); } });
  res.addEventListener("change", apply);
  shown.textContent = tools.getAttribute("data-shown").replace("{n}", rows.length).replace("{total}", rows.length);
  tools.hidden = false;
})();
"""


def sha256_source(text):
    """The CSP source expression ('sha256-...') for an inline <script> or <style> with exactly this text."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy(styles=(CSS,)):
    """Nothing loads or runs but the page's own styles and script: no network, no other inline code."""
    return (
        "default-src 'none'; "
        f"script-src {sha256_source(SCRIPT)}; style-src {' '.join(sha256_source(s) for s in styles)}; "
        "img-src 'none'; base-uri 'none'; form-action 'none'"
    )

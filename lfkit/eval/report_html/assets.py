"""The page's inline CSS and script: no CDN, no fonts, no network (the page's CSP forbids all of it).

The script only reads ``data-*`` attributes the server wrote from a fixed vocabulary (labels,
change tokens, positions) and toggles ``hidden``/classes; it never inserts text from the
page into HTML, so escaped model output stays text. State lives in the URL hash
(``#changed``, ``#change=fixed&difficulty=simple&label=wrong&stage=1&q=12&expand``), so a
filtered view can be linked, and the controls and the hash go through one ``apply``.
"""

from __future__ import annotations

CSS = """
:root { --fg:#1f2328; --muted:#656d76; --line:#d0d7de; --bg:#fff; --soft:#f6f8fa;
  --ok:#1a7f37; --ok-bg:#dafbe1; --bad:#cf222e; --bad-bg:#ffebe9; --err:#9a6700; --err-bg:#fff8c5;
  --tmo:#8250df; --tmo-bg:#fbefff; --none:#57606a; --none-bg:#eaeef2; --accent:#0969da; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: var(--bg);
  font: 14px/1.45 -apple-system, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif; }
main { max-width: 1400px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 13px; margin: 10px 0 4px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.meta { color: var(--muted); margin: 0; }
#lead { max-width: 980px; margin: 10px 0 0; }
.meta code { font-size: 12px; }
table { border-collapse: collapse; }
table.grid th, table.grid td { border: 1px solid var(--line); padding: 5px 10px; }
table.grid thead th { background: var(--soft); font-weight: 600; text-align: center; }
table.grid tbody th { text-align: left; font-weight: 600; white-space: nowrap; }
table.grid td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.ex { position: relative; min-width: 110px; }
td.ex .bar { position: absolute; left: 0; bottom: 0; height: 3px; background: #54aeff; }
td.ex small, .n { color: var(--muted); font-weight: normal; font-size: 12px; }
td.best span { font-weight: 700; }
.up { color: var(--ok); } .down { color: var(--bad); }
.tables { display: flex; flex-wrap: wrap; gap: 12px 36px; align-items: flex-start; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
figure { margin: 12px 0; } figure img { max-width: 100%; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 12px; }
.figs { display: flex; flex-wrap: wrap; gap: 16px; } .figs figure { max-width: 560px; }
.note { background: var(--err-bg); border: 1px solid #d4a72c66; padding: 6px 10px; border-radius: 6px; }
.controls { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; position: sticky; top: 0;
  background: var(--bg); padding: 8px 0; z-index: 5; border-bottom: 1px solid var(--line); }
.controls label { color: var(--muted); }
.controls select, .controls input, .controls button { font: inherit; padding: 3px 6px; border: 1px solid var(--line);
  border-radius: 6px; background: var(--bg); }
.controls button { cursor: pointer; background: var(--soft); }
#shown { margin-left: auto; color: var(--muted); }
#qtable { width: 100%; margin-top: 6px; }
#qtable th, #qtable td { border-bottom: 1px solid var(--line); padding: 6px 8px; vertical-align: top;
  text-align: left; }
#qtable thead th { position: sticky; top: 46px; background: var(--soft); z-index: 4; white-space: nowrap; }
#qtable th[data-sort] { cursor: pointer; user-select: none; }
#qtable th[data-sort]::after { content: " \\2195"; color: #afb8c1; }
#qtable th[aria-sort=ascending]::after { content: " \\2191"; color: var(--fg); }
#qtable th[aria-sort=descending]::after { content: " \\2193"; color: var(--fg); }
tr.summary { cursor: pointer; } tr.summary:hover { background: var(--soft); }
#qtable tr.summary td { vertical-align: middle; }
tbody.q { scroll-margin-top: 90px; }
tbody.open tr.summary { background: #ddf4ff66; }
td.qtext { max-width: 520px; }
.js tr.detail { display: none; } .js tbody.open tr.detail { display: table-row; }
tr.detail > td { background: #fbfcfd; padding: 4px 14px 16px; }
.lab { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 12px; font-weight: 600;
  white-space: nowrap; }
.lab.correct { color: var(--ok); background: var(--ok-bg); }
.lab.wrong { color: var(--bad); background: var(--bad-bg); }
.lab.error { color: var(--err); background: var(--err-bg); }
.lab.timeout { color: var(--tmo); background: var(--tmo-bg); }
.lab.no_sql, .lab.missing { color: var(--none); background: var(--none-bg); }
.diff { font-size: 12px; padding: 0 6px; border-radius: 4px; background: var(--soft); border: 1px solid var(--line); }
.iss { font-size: 11px; color: var(--err); margin-left: 4px; }
.chg { font-size: 12px; white-space: nowrap; }
.detail-grid { display: grid; grid-template-columns: minmax(280px, 1fr) minmax(420px, 2fr); gap: 8px 24px; }
pre { margin: 2px 0; padding: 6px 8px; background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
  white-space: pre-wrap; word-break: break-word;
  font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.answer { border-left: 3px solid var(--line); padding: 2px 0 6px 10px; margin: 8px 0; }
.answer.correct { border-color: var(--ok); } .answer.wrong { border-color: var(--bad); }
.answer.error, .answer.timeout { border-color: #d4a72c; }
.ahead { display: flex; gap: 8px; align-items: center; }
.same { color: var(--muted); font-size: 12px; }
.issue { display: inline-block; font: 11px ui-monospace, monospace; color: var(--err); background: var(--err-bg);
  border-radius: 4px; padding: 0 5px; margin: 2px 4px 0 0; }
.errmsg { color: var(--bad); font-size: 12px; }
details.tree { grid-column: 1 / -1; margin-top: 6px; } details.tree summary { cursor: pointer; font-weight: 600; }
table.nodes { width: 100%; margin-top: 6px; }
table.nodes td, table.nodes th { border: 1px solid var(--line); padding: 3px 6px; vertical-align: top;
  font-size: 12px; }
table.nodes tr.path { background: #dafbe166; } table.nodes tr.path td:first-child { font-weight: 700; }
"""

JS = """
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var table = document.getElementById("qtable");
  if (!table) { return; }
  var bodies = Array.prototype.slice.call(table.tBodies);
  var $ = function (id) { return document.getElementById(id); };
  var ctl = { difficulty: $("f-difficulty"), change: $("f-change"), label: $("f-label"), stage: $("f-stage"),
              text: $("f-text") };
  var changeTokens = Array.prototype.map.call(ctl.change.options, function (o) { return o.value; });
  var sortKey = "", sortDir = 1;
  var defaults = {};  // the controls as the page was written: a new hash starts from them
  Object.keys(ctl).forEach(function (k) { defaults[k] = ctl[k].value; });

  function visible(tb) {
    var d = ctl.difficulty.value, c = ctl.change.value, l = ctl.label.value, s = ctl.stage.value;
    var t = ctl.text.value.trim().toLowerCase();
    if (d && tb.dataset.difficulty !== d) { return false; }
    if (c && tb.dataset.change.split(" ").indexOf(c) < 0) { return false; }
    if (l) {
      var labels = tb.dataset.labels.split(" ");
      if (s === "any" ? labels.indexOf(l) < 0 : labels[+s] !== l) { return false; }
    }
    if (t && tb.textContent.toLowerCase().indexOf(t) < 0) { return false; }
    return true;
  }

  function apply() {
    var n = 0;
    bodies.forEach(function (tb) { var v = visible(tb); tb.hidden = !v; if (v) { n += 1; } });
    $("shown").textContent = n + " of " + bodies.length + " questions shown";
  }

  function writeHash() {
    var parts = [];
    ["change", "difficulty", "label", "text"].forEach(function (k) {
      if (ctl[k].value) { parts.push(k + "=" + encodeURIComponent(ctl[k].value)); }
    });
    if (ctl.label.value) { parts.push("stage=" + encodeURIComponent(ctl.stage.value)); }
    if (sortKey) { parts.push("sort=" + (sortDir < 0 ? "-" : "") + sortKey); }
    try { history.replaceState(null, "", parts.length ? "#" + parts.join("&") : location.pathname); } catch (e) {}
  }

  function setSelect(el, value) {
    for (var i = 0; i < el.options.length; i += 1) {
      if (el.options[i].value === value) { el.value = value; return; }
    }
  }

  function readHash() {
    var open = [], expand = false;
    Object.keys(ctl).forEach(function (k) { ctl[k].value = defaults[k]; });
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      if (!part) { return; }
      var eq = part.indexOf("="), k = eq < 0 ? part : part.slice(0, eq);
      var v = eq < 0 ? "" : decodeURIComponent(part.slice(eq + 1));
      if (eq < 0 && changeTokens.indexOf(k) >= 0) { setSelect(ctl.change, k); }
      else if (k === "expand") { expand = true; }
      else if (k === "q") { open.push(v); }
      else if (k === "sort") { sortBy(v.replace(/^-/, ""), v.charAt(0) === "-" ? -1 : 1); }
      else if (k === "text") { ctl.text.value = v; }
      else if (ctl[k]) { setSelect(ctl[k], v); }
    });
    apply();
    bodies.forEach(function (tb) {
      if (expand && !tb.hidden) { tb.classList.add("open"); }
      if (open.indexOf(tb.dataset.qid) >= 0) {  // a linked question: its revision tree open too
        tb.classList.add("open");
        var tree = tb.querySelector("details.tree");
        if (tree) { tree.open = true; }
      }
    });
    var first = open.length ? $("q-" + open[0]) : null;
    if (first && !first.hidden) {  // scroll only when its row is out of sight
      var top = first.getBoundingClientRect().top;
      if (top < 0 || top > window.innerHeight - 80) { first.scrollIntoView(); }
    }
  }

  function key(tb, k) {
    if (k === "id") { return [+tb.dataset.order]; }
    if (k === "difficulty") { return [+tb.dataset.drank, +tb.dataset.order]; }
    if (k === "change") { return [+tb.dataset.crank, +tb.dataset.order]; }
    var s = +k.slice(1);  // "s<i>": stage i's label
    return [+tb.dataset.lranks.split(" ")[s], +tb.dataset.order];
  }

  function sortBy(k, dir) {
    sortKey = k; sortDir = dir;
    bodies.sort(function (a, b) {
      var x = key(a, k), y = key(b, k);
      for (var i = 0; i < x.length; i += 1) { if (x[i] !== y[i]) { return (x[i] - y[i]) * (i ? 1 : dir); } }
      return 0;
    });
    bodies.forEach(function (tb) { table.appendChild(tb); });
    Array.prototype.forEach.call(table.tHead.querySelectorAll("th[data-sort]"), function (th) {
      if (th.dataset.sort === k) { th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending"); }
      else { th.removeAttribute("aria-sort"); }
    });
  }

  Object.keys(ctl).forEach(function (k) {
    ctl[k].addEventListener(k === "text" ? "input" : "change", function () { apply(); writeHash(); });
  });
  table.tHead.addEventListener("click", function (ev) {
    var th = ev.target.closest("th[data-sort]");
    if (!th) { return; }
    sortBy(th.dataset.sort, sortKey === th.dataset.sort ? -sortDir : 1);
    writeHash();
  });
  table.addEventListener("click", function (ev) {
    var row = ev.target.closest("tr.summary");
    if (row) { row.parentNode.classList.toggle("open"); }
  });
  $("expand-all").addEventListener("click", function () {
    bodies.forEach(function (tb) { if (!tb.hidden) { tb.classList.add("open"); } });
  });
  $("collapse-all").addEventListener("click", function () {
    bodies.forEach(function (tb) { tb.classList.remove("open"); });
  });
  window.addEventListener("hashchange", readHash);
  readHash();
})();
"""

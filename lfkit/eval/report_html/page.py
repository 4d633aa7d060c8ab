"""The HTML page: one static, self-contained file (inline CSS and script, images as data: URIs).

Every text that comes from a file (questions, SQL, model answers, stage names, feedback,
extra-table cells) goes through :func:`html.escape` exactly once, in :func:`_t`, so
model output is text, never markup: a ``</script><script>`` in an answer shows as those
characters. As a second wall the page's Content-Security-Policy lets only the page's own
script run (by its SHA-256) and loads nothing from anywhere (no network at all).
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lfkit import __version__
from lfkit.data.rows import DIFFICULTIES
from lfkit.eval.report_html.assets import CSS, JS
from lfkit.eval.report_html.data import (
    CHANGE_TOKENS,
    REPORT_LABELS,
    Answer,
    QuestionView,
    ReportData,
    ReportError,
    ReportTable,
    TreeStep,
)
from lfkit.tree.model import INF_DISTANCE

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANGE_TEXT = {
    "changed": "changed between stages",
    "unchanged": "unchanged",
    "fixed": "fixed by a stage",
    "broke": "broken by a stage",
    "always_correct": "correct in every stage",
    "never_correct": "correct in no stage",
}
assert set(_CHANGE_TEXT) == set(CHANGE_TOKENS)


def _t(value: Any) -> str:
    """Text as HTML: the one escaping step (quotes too, so it is safe in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def csp(script: str) -> str:
    """The Content-Security-Policy: nothing loads, only ``script`` (by its hash) runs, images only as data:."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"


def png_data_uri(path: str | os.PathLike[str]) -> str:
    """``data:image/png;base64,...`` of a PNG file (the pipelines' plots); anything else is refused."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path}: image file not found")
    data = path.read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise ReportError(f"{path}: not a PNG file (only PNG images are embedded)")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _lab(label: str) -> str:
    return f'<span class="lab {_t(label)}">{_t(label)}</span>'


def _pct(x: float) -> str:
    return f"{x:.1f}"


# ----------------------------------------------------------------------------- summary tables


def _ex_table(data: ReportData) -> str:
    cols = [*data.difficulties, "total"]
    head = "".join(
        f'<th>{_t(d)} <span class="n">({data.stages[0].report["by_difficulty"][d]["n"]})</span></th>'
        for d in data.difficulties
    )
    head += f'<th>total <span class="n">({data.stages[0].report["n"]})</span></th>'
    head += (
        '<th title="total EX minus the stage above">&Delta; total</th>'
        '<th title="questions correct here and not in the stage above">fixed</th>'
        '<th title="questions correct in the stage above and not here">broke</th><th>soft-F1</th>'
    )
    best = {c: max(_cell(s.report, c)[0] for s in data.stages) for c in cols}
    rows = []
    for k, stage in enumerate(data.stages):
        cells = []
        for c in cols:
            ex, correct, n = _cell(stage.report, c)
            cls = "num ex best" if len(data.stages) > 1 and ex == best[c] else "num ex"
            cells.append(
                f'<td class="{cls}" data-col="{_t(c)}"><div class="bar" style="width:{min(ex, 100.0):.2f}%"></div>'
                f"<span>{_pct(ex)}</span> <small>{correct}/{n}</small></td>"
            )
        if k:
            delta = stage.report["ex"] - data.stages[k - 1].report["ex"]
            cls = "up" if delta > 0 else "down" if delta < 0 else ""
            cells.append(f'<td class="num {cls}">{delta:+.1f}</td>')
            cells.append(f'<td class="num">{stage.fixed}</td><td class="num">{stage.broke}</td>')
        else:
            cells.append('<td class="num">&ndash;</td><td class="num">&ndash;</td><td class="num">&ndash;</td>')
        cells.append(f'<td class="num">{_pct(stage.report["soft_f1"])}</td>')
        rows.append(f'<tr data-stage="{_t(stage.name)}"><th title="{_t(stage.predictions)}">{_t(stage.name)}</th>')
        rows[-1] += "".join(cells) + "</tr>"
    return (
        '<table id="ex" class="grid"><caption>EX % (correct/n) by stage and difficulty</caption>'
        f"<thead><tr><th>stage</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _cell(report: dict[str, Any], col: str) -> tuple[float, int, int]:
    part = report if col == "total" else report["by_difficulty"][col]
    return float(part["ex"]), int(part["correct"]), int(part["n"])


def _labels_table(data: ReportData) -> str:
    labels = [lab for lab in REPORT_LABELS if any(s.labels[lab] for s in data.stages)]
    head = "".join(f"<th>{_lab(lab)}</th>" for lab in labels)
    rows = "".join(
        f"<tr><th>{_t(s.name)}</th>" + "".join(f'<td class="num">{s.labels[lab]}</td>' for lab in labels) + "</tr>"
        for s in data.stages
    )
    return (
        '<table id="labels" class="grid"><caption>Answers by label</caption>'
        f"<thead><tr><th>stage</th>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )


def _issues_table(data: ReportData) -> str:
    counts = [Counter(i.name for q in data.questions for i in q.answers[k].issues) for k in range(len(data.stages))]
    names = sorted(set().union(*counts), key=lambda n: (-sum(c[n] for c in counts), n))
    if not names:
        return ""
    head = "".join(f"<th>{_t(s.name)}</th>" for s in data.stages)
    rows = "".join(
        f'<tr><th><span class="issue">{_t(n)}</span></th>'
        + "".join(f'<td class="num">{c[n]}</td>' for c in counts)
        + "</tr>"
        for n in names
    )
    return (
        '<table id="issues" class="grid"><caption>SQL issue detectors: answers they fire on</caption>'
        f"<thead><tr><th>detector</th>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )


def _extra_table(table: ReportTable, k: int) -> str:
    head = "".join(f"<th>{_t(h)}</th>" for h in table.headers)
    rows = "".join(
        "<tr>"
        + "".join(f'<td class="num">{_t(v)}</td>' if isinstance(v, int | float) else f"<td>{_t(v)}</td>" for v in row)
        + "</tr>"
        for row in table.rows
    )
    return (
        f'<table id="extra-{k}" class="grid"><caption>{_t(table.caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )


def _figures(images: Sequence[str | os.PathLike[str]]) -> str:
    if not images:
        return ""
    figs = "".join(
        f'<figure><img src="{png_data_uri(p)}" alt="{_t(Path(p).name)}"><figcaption>{_t(Path(p).name)}</figcaption>'
        "</figure>"
        for p in images
    )
    return f'<div class="figs">{figs}</div>'


def _notes(data: ReportData) -> str:
    notes = []
    failed = sum(1 for q in data.questions if q.gold_status != "ok")
    if failed:
        notes.append(f"{failed} gold queries failed to run: those questions cannot be correct in any stage.")
    if data.trees_unmatched:
        notes.append(
            f"{data.trees_unmatched} revision trees belong to no question here (same id, database and gold SQL "
            "are required; trees built on train questions do not match dev ones)."
        )
    return "".join(f'<p class="note">{_t(n)}</p>' for n in notes)


# ----------------------------------------------------------------------------- questions


def _controls(data: ReportData) -> str:
    diffs = "".join(f'<option value="{_t(d)}">{_t(d)}</option>' for d in data.difficulties)
    changes = "".join(f'<option value="{c}">{_CHANGE_TEXT[c]}</option>' for c in CHANGE_TOKENS)
    labels = "".join(f'<option value="{lab}">{lab}</option>' for lab in REPORT_LABELS)
    last = len(data.stages) - 1
    stages = '<option value="any">any stage</option>' + "".join(
        f'<option value="{k}"{" selected" if k == last else ""}>{_t(s.name)}</option>'
        for k, s in enumerate(data.stages)
    )
    return (
        '<div class="controls">'
        f'<label>difficulty <select id="f-difficulty"><option value="">all</option>{diffs}</select></label>'
        f'<label>change <select id="f-change"><option value="">all questions</option>{changes}</select></label>'
        f'<label>label <select id="f-label"><option value="">any</option>{labels}</select></label>'
        f'<label>in <select id="f-stage">{stages}</select></label>'
        '<label>search <input id="f-text" type="search" placeholder="question or SQL text"></label>'
        '<button id="expand-all" type="button">expand all</button>'
        '<button id="collapse-all" type="button">collapse all</button>'
        f'<span id="shown">{len(data.questions)} of {len(data.questions)} questions shown</span></div>'
    )


def _change_text(q: QuestionView, n_stages: int) -> tuple[str, int]:
    """What the "change" column says, and its sort rank."""
    if q.fixed_at and q.broken_at:
        return f"fixed by {_t(q.fixed_at)}, broken by {_t(q.broken_at)}", 2
    if q.fixed_at:
        return f'<span class="up">fixed by {_t(q.fixed_at)}</span>', 0
    if q.broken_at:
        return f'<span class="down">broken by {_t(q.broken_at)}</span>', 1
    if all(q.correct):
        return ("correct throughout" if n_stages > 1 else "correct"), 4
    return "never correct", 3


def _answer(a: Answer, previous: Answer | None) -> str:
    same = ""
    if previous is not None and a.sql is not None and a.sql == previous.sql:
        same = f'<span class="same">same SQL as {_t(previous.stage)}</span>'
    if a.sql is None:
        sql = '<p class="same">(no prediction for this question)</p>'
    elif not a.sql:
        sql = '<p class="same">(empty: no SQL extracted)</p>'
    else:
        sql = f"<pre>{_t(a.sql)}</pre>"
    err = f'<div class="errmsg">{_t(a.status)}: {_t(a.error)}</div>' if a.label in ("error", "timeout") else ""
    issues = "".join(f'<span class="issue" title="{_t(i.detail)}">{_t(i.name)}</span>' for i in a.issues)
    return (
        f'<div class="answer {_t(a.label)}"><div class="ahead"><b>{_t(a.stage)}</b> {_lab(a.label)} {same}</div>'
        f"{sql}{err}{issues and f'<div>{issues}</div>'}</div>"
    )


def _tree(steps: list[TreeStep]) -> str:
    path = [s for s in steps if s.on_path]
    if path:
        summary = f"correct at depth {path[-1].depth}: " + " &rarr; ".join(_t(s.node_id) for s in path)
    else:
        summary = "no correct node"
    rows = "".join(
        f'<tr class="{"path" if s.on_path else ""}"><td>{s.depth}</td><td>{_t(s.node_id)}</td>'
        f"<td>{_t(s.parent_id)}</td>"
        f"<td>{_lab(s.label)}</td><td>{'&infin;' if s.distance >= INF_DISTANCE else s.distance}</td>"
        f"<td><pre>{_t(s.sql)}</pre></td><td><pre>{_t(s.feedback)}</pre></td></tr>"
        for s in steps
    )
    return (
        f'<details class="tree"><summary>Revision tree: {len(steps)} nodes, {summary}</summary>'
        '<table class="nodes"><thead><tr><th>depth</th><th>node</th><th>parent</th><th>label</th>'
        "<th>distance</th><th>SQL</th><th>execution feedback</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></details>"
    )


def _question(q: QuestionView, order: int, data: ReportData) -> str:
    n_stages = len(data.stages)
    change, crank = _change_text(q, n_stages)
    drank = DIFFICULTIES.index(q.difficulty) if q.difficulty in DIFFICULTIES else len(DIFFICULTIES)
    labels = " ".join(a.label for a in q.answers)
    lranks = " ".join(str(REPORT_LABELS.index(a.label)) for a in q.answers)
    cells = "".join(
        f'<td>{_lab(a.label)}<span class="iss" title="{_t(", ".join(i.name for i in a.issues))}">'
        f"{'&#9888;' + str(len(a.issues)) if a.issues else ''}</span></td>"
        for a in q.answers
    )
    gold_note = f'<p class="errmsg">gold failed to run ({_t(q.gold_status)})</p>' if q.gold_status != "ok" else ""
    evidence = f"<h3>Evidence</h3><p>{_t(q.evidence)}</p>" if q.evidence else ""
    answers = "".join(_answer(a, q.answers[k - 1] if k else None) for k, a in enumerate(q.answers))
    tree = _tree(q.tree) if q.tree is not None else ""
    return (
        f'<tbody class="q" id="q-{_t(q.key)}" data-qid="{_t(q.key)}" data-order="{order}" '
        f'data-difficulty="{_t(q.difficulty)}" data-drank="{drank}" data-labels="{labels}" data-lranks="{lranks}" '
        f'data-change="{" ".join(q.changes)}" data-crank="{crank}">'
        f'<tr class="summary"><td>{_t(q.key)}</td><td><span class="diff">{_t(q.difficulty)}</span></td>'
        f'<td class="qtext">{_t(q.question) or _t(q.gold_sql)}</td>{cells}<td class="chg">{change}</td></tr>'
        f'<tr class="detail"><td colspan="{4 + n_stages}"><div class="detail-grid"><div>'
        f'<h3>Question</h3><p>{_t(q.question)} <span class="n">(db {_t(q.db_id)})</span></p>{evidence}'
        f"<h3>Gold SQL</h3><pre>{_t(q.gold_sql)}</pre>{gold_note}</div>"
        f"<div><h3>Answers</h3>{answers}</div>{tree}</div></td></tr></tbody>"
    )


def _questions(data: ReportData) -> str:
    stages = "".join(f'<th data-sort="s{k}">{_t(s.name)}</th>' for k, s in enumerate(data.stages))
    bodies = "".join(_question(q, k, data) for k, q in enumerate(data.questions))
    return (
        f"{_controls(data)}"
        '<table id="qtable"><thead><tr><th data-sort="id">#</th><th data-sort="difficulty">difficulty</th>'
        f'<th>question</th>{stages}<th data-sort="change">change</th></tr></thead>{bodies}</table>'
    )


# ----------------------------------------------------------------------------- the page


def render_page(
    data: ReportData,
    *,
    title: str = "lfkit report",
    images: Sequence[str | os.PathLike[str]] = (),
    extra_tables: Sequence[ReportTable] = (),
    lead: str = "",
) -> str:
    """The whole page as one string (see the module docstring for how it escapes); ``lead``: a paragraph under the
    title (a pipeline's verdict)."""
    trees = sum(1 for q in data.questions if q.tree is not None)
    meta = (
        f"{len(data.questions)} questions &middot; gold <code>{_t(data.gold)}</code> &middot; "
        f"{_t(data.comparison)} comparison &middot; {len(data.stages)} stages"
        + (f" &middot; revision trees for {trees} questions" if trees else "")
        + f" &middot; lfkit {_t(__version__)}"
    )
    files = "".join(f"<li><b>{_t(s.name)}</b>: <code>{_t(s.predictions)}</code></li>" for s in data.stages)
    tables = [_ex_table(data), _labels_table(data), _issues_table(data)]
    tables += [_extra_table(t, k) for k, t in enumerate(extra_tables)]
    lead_html = f'<p id="lead">{_t(lead)}</p>' if lead else ""
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp(JS)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_t(title)}</title><style>{CSS}</style></head>\n<body><main>"
        f'<h1 id="title">{_t(title)}</h1><p class="meta">{meta}</p>{_notes(data)}{lead_html}'
        f'<h2>Execution accuracy</h2><div class="tables">{"".join(t for t in tables if t)}</div>'
        f"{_figures(images)}"
        f'<details><summary class="meta">prediction files</summary><ul>{files}</ul></details>'
        "<h2>Questions</h2>"
        '<p class="meta">Click a row for the question, gold SQL, every stage\'s answer with the issue detectors '
        "that fire on it" + (", and the revision tree" if trees else "") + ". Filters and sorting are kept in "
        "the address (link a view).</p>"
        f"{_questions(data)}</main>\n<script>{JS}</script>\n</body></html>\n"
    )

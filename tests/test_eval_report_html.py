"""`lfkit eval report`: the HTML page's data (labels = `lfkit eval score`'s, fixed/broke, issues, trees,
escaping) and the page as a person sees it in a real headless Chromium (Debian's `chromium`)."""

from __future__ import annotations

import base64
import doctest
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

import lfkit.eval.report_html.data
from lfkit.cli import main
from lfkit.eval import write_bird_predictions
from lfkit.eval.report_html import (
    ReportError,
    ReportTable,
    build_report_data,
    parse_stage,
    render_page,
    write_html_report,
)
from lfkit.io import write_rows
from lfkit.sql.issues import detect_issues
from lfkit.tree.model import INITIAL, RevisionTree

N = 8  # the first 8 dev questions of the demo corpus
HOSTILE = (
    "SELECT 1 </script><script>document.title='pwned';document.documentElement.setAttribute('data-pwned','1')"
    "</script><img src=x onerror=\"document.title='pwned2'\">"
)
WRONG = {  # a wrong (or failing) answer per question, by hand
    0: "SELECT L FROM Teams WHERE name = 'New York Yankees' AND yearID = 2019",
    1: "SELECT name FROM Teams WHERE yearID = 1977 AND lgID = 'AL'",
    2: "SELECT SUM(HR) FROM Batting WHERE yearID = 1984 AND playerID = 'nobody'",
    5: "SELECT attendance FROM Teams ORDER BY yearID",
    6: "SELECT 0",
}
# Labels by hand, per question: (base, sft, dpo); "G" = the gold SQL (correct).
PLAN = {
    0: (("wrong", WRONG[0]), ("correct", "G"), ("correct", "G")),  # fixed by sft
    1: (("correct", "G"), ("correct", "G"), ("wrong", WRONG[1])),  # broken by dpo
    2: (("error", "SELECT SUM(HRs) FROM Batting"), ("wrong", WRONG[2]), ("correct", "G")),  # fixed by dpo
    3: (("no_sql", ""), ("correct", "G"), ("error", HOSTILE)),  # fixed by sft, broken by dpo
    4: (("correct", "G"), ("correct", "G"), ("correct", "G")),  # always correct
    5: (("wrong", WRONG[5]), ("wrong", WRONG[5]), ("wrong", WRONG[5])),  # never correct
    6: (("correct", "G"), ("wrong", WRONG[6]), ("correct", "G")),  # broken by sft, fixed by dpo
    7: (("correct", "G"), ("missing", None), ("correct", "G")),  # sft has no prediction for it
}
STAGES = ("base", "sft", "dpo")
CHANGED = {"0", "1", "2", "3", "6", "7"}
# EX by hand from PLAN (simple: 0 3 5, moderate: 2 4 6 7, challenging: 1): (EX text, "correct/n") per column
COLUMNS = ("simple", "moderate", "challenging", "total")
EX = {
    "base": (("0.0", "0/3"), ("75.0", "3/4"), ("100.0", "1/1"), ("50.0", "4/8")),
    "sft": (("66.7", "2/3"), ("25.0", "1/4"), ("100.0", "1/1"), ("50.0", "4/8")),
    "dpo": (("33.3", "1/3"), ("100.0", "4/4"), ("0.0", "0/1"), ("62.5", "5/8")),
}


@pytest.fixture(scope="module")
def run(demo_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Gold = the first 8 dev questions; base as BIRD predict_dev.json, sft and dpo as lfkit JSONL; trees."""
    root = tmp_path_factory.mktemp("report_html")
    dev = json.loads((demo_corpus / "dev.json").read_text())[:N]
    (root / "dev.json").write_text(json.dumps(dev, indent=1))
    gold = {q["question_id"]: q["SQL"] for q in dev}
    files = {}
    for k, stage in enumerate(STAGES):
        answers = {qid: PLAN[qid][k][1] for qid in PLAN if PLAN[qid][k][1] is not None}
        answers = {qid: gold[qid] if sql == "G" else sql for qid, sql in answers.items()}
        if stage == "base":
            files[stage] = write_bird_predictions(root / "base.json", {q: (s, "lahman") for q, s in answers.items()})
        else:
            files[stage] = root / f"{stage}.jsonl"
            write_rows(files[stage], [{"question_id": q, "sql": s} for q, s in answers.items()])
    # a tree for question 2 (wrong -> revised: one child wrong, one correct), and one for a train question
    # with the same id as dev question 5 but another gold SQL: it must not be shown for question 5
    tree = RevisionTree(2, "lahman", question=dev[2]["question"], gold_sql=dev[2]["SQL"], max_depth=2)
    feedback = "no such column: HRs </details><script>document.title='tree'</script>"
    tree.add_node(INITIAL, 1, generated_sql="SELECT SUM(HRs) FROM Batting", label="error", execution_feedback=feedback)
    tree.add_node("node_1_1", 2, generated_sql=WRONG[2], label="wrong", execution_feedback="1 row: (None,)")
    tree.add_node("node_1_1", 2, generated_sql=dev[2]["SQL"], label="correct", is_correct=True)
    tree.compute_distances()
    other = RevisionTree(5, "lahman", gold_sql="SELECT 1", max_depth=1)
    other.add_node(INITIAL, 1, generated_sql="SELECT 1", label="correct", is_correct=True)
    (root / "trees").mkdir()
    (root / "trees" / "all_trees.json").write_text(json.dumps([tree.to_dict(), other.to_dict()]))
    return {"root": root, "gold": root / "dev.json", "db_root": demo_corpus / "dev_databases", **files}


def _stages(run: dict[str, Path]) -> list[tuple[str, Path]]:
    return [(s, run[s]) for s in STAGES]


@pytest.fixture(scope="module")
def data(run: dict[str, Path]):
    return build_report_data(_stages(run), run["gold"], run["db_root"], trees=run["root"] / "trees", workers=0)


def test_labels_are_eval_scores(run: dict[str, Path], data) -> None:
    """Each stage's labels match the plan, and correctness/status are exactly `lfkit eval score --out`'s."""
    assert [(q.key, [a.label for a in q.answers]) for q in data.questions] == [
        (str(qid), [label for label, _ in PLAN[qid]]) for qid in range(N)
    ]
    for k, stage in enumerate(STAGES):
        out = run["root"] / f"score_{stage}.json"
        args = ["eval", "score", "-p", str(run[stage]), "-g", str(run["gold"]), "--db-root", str(run["db_root"])]
        result = CliRunner().invoke(main, [*args, "--workers", "0", "--no-progress", "--out", str(out)])
        assert result.exit_code == 0, result.output
        scored = json.loads(out.read_text())
        assert [(r["correct"], r["status"]) for r in scored["results"]] == [
            (a.label == "correct", a.status) for a in (q.answers[k] for q in data.questions)
        ]
        assert data.stages[k].report["ex"] == scored["ex"]
        assert data.stages[k].report["by_difficulty"] == scored["by_difficulty"]


def test_fixed_and_broke(data) -> None:
    got = {q.key: (q.fixed_at, q.broken_at) for q in data.questions}
    assert got == {
        "0": ("sft", None), "1": (None, "dpo"), "2": ("dpo", None), "3": ("sft", "dpo"),
        "4": (None, None), "5": (None, None), "6": ("dpo", "sft"), "7": ("dpo", "sft"),
    }  # fmt: skip
    assert {q.key for q in data.questions if "changed" in q.changes} == CHANGED
    assert [q.key for q in data.questions if "always_correct" in q.changes] == ["4"]
    assert [q.key for q in data.questions if "never_correct" in q.changes] == ["5"]
    assert [(s.fixed, s.broke) for s in data.stages] == [(0, 0), (2, 2), (3, 2)]


def test_issues_are_the_detectors(data) -> None:
    q5 = data.questions[5]
    answer = q5.answers[0]
    assert [i.name for i in answer.issues] == [i.name for i in detect_issues(WRONG[5], question=q5.question)]
    assert "order_by_without_limit" in [i.name for i in answer.issues]
    assert data.questions[4].answers[0].issues == []  # gold SQL for a filtered question: nothing fires
    assert "invalid_sql" in [i.name for i in data.questions[3].answers[2].issues]  # the hostile answer


def test_tree_path(data) -> None:
    steps = data.questions[2].tree
    assert [(s.node_id, s.label, s.on_path) for s in steps] == [
        ("node_1_1", "error", True),
        ("node_2_1", "wrong", False),
        ("node_2_2", "correct", True),
    ]
    assert [s.distance for s in steps] == [1, 999, 0]
    assert data.questions[5].tree is None  # same id, other gold SQL: a train question's tree
    assert (data.trees_matched, data.trees_unmatched) == (1, 1)


def test_page_escapes_model_output(data) -> None:
    page = render_page(data, title="<b>t</b>")
    assert page.count("<script>") == 1  # the page's own; the answer's tags are text
    assert "&lt;/script&gt;&lt;script&gt;document.title=&#x27;pwned&#x27;" in page
    assert "onerror=" not in page.replace("onerror=&quot;", "")
    assert "&lt;/details&gt;&lt;script&gt;document.title=&#x27;tree&#x27;" in page
    assert "<title>&lt;b&gt;t&lt;/b&gt;</title>" in page
    assert "content=\"default-src 'none'; img-src data:;" in page  # nothing loads from anywhere


def test_images_and_extra_tables(data, tmp_path: Path) -> None:
    png = tmp_path / "loss.png"
    png.write_bytes(bytes.fromhex("89504e470d0a1a0a") + b"rest of the file")
    table = ReportTable("RM <accuracy>", ["kind", "pairs", "acc %"], [["tree</td>", 12, 66.7]])
    page = render_page(data, images=[png], extra_tables=[table])
    assert f'<img src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}" alt="loss.png">' in page
    assert "<caption>RM &lt;accuracy&gt;</caption>" in page
    assert '<td>tree&lt;/td&gt;</td><td class="num">12</td><td class="num">66.7</td>' in page
    assert '<p id="lead">' not in page  # no verdict given, no empty paragraph
    assert '<p id="lead">SFT &lt;b&gt;+1&lt;/b&gt;</p>' in render_page(data, lead="SFT <b>+1</b>")


def test_bad_inputs(run: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"stage 'sft': expected NAME=PREDICTIONS_FILE"):
        parse_stage("sft")
    assert parse_stage(" dpo = a=b.json ") == ("dpo", Path("a=b.json"))
    with pytest.raises(ReportError, match=r"stage 'sft' is given twice"):
        build_report_data([("sft", run["sft"]), ("sft", run["dpo"])], run["gold"], run["db_root"], workers=0)
    fake = tmp_path / "plot.png"
    fake.write_text("<svg onload=alert(1)>")
    with pytest.raises(ReportError, match=r"plot.png: not a PNG file"):
        write_html_report(tmp_path / "r.html", _stages(run), run["gold"], run["db_root"], images=[fake], workers=0)
    assert not (tmp_path / "r.html").exists()
    twice = tmp_path / "trees.jsonl"
    tree = json.loads((run["root"] / "trees" / "all_trees.json").read_text())[0]
    twice.write_text(json.dumps(tree) + "\n" + json.dumps(tree) + "\n")
    with pytest.raises(ReportError, match=r"trees.jsonl: tree 1: question_id 2 \(db lahman\) already has a tree"):
        build_report_data(_stages(run), run["gold"], run["db_root"], trees=twice, workers=0)


def test_cli_errors_are_one_line(run: dict[str, Path], tmp_path: Path) -> None:
    base = [
        sys.executable,
        "-m",
        "lfkit.cli",
        "eval",
        "report",
        "-g",
        str(run["gold"]),
        "--db-root",
        str(run["db_root"]),
    ]
    env = {k: v for k, v in os.environ.items() if k != "LFKIT_DEBUG"}
    bad = subprocess.run([*base, "-s", str(run["sft"]), "-o", str(tmp_path / "r.html")], capture_output=True,
                         text=True, env=env, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and "expected NAME=PREDICTIONS_FILE" in bad.stderr, bad.stderr
    broken = tmp_path / "trees.json"
    broken.write_text('[{"question_id": 2, "db_id": "lahman", "nodes": {}}]')
    args = ["-s", f"sft={run['sft']}", "--trees", str(broken), "--workers", "0", "-o", str(tmp_path / "r.html")]
    one = subprocess.run([*base, *args], capture_output=True, text=True, env=env, timeout=300)
    assert one.returncode == 1 and "Traceback" not in one.stderr, one.stderr
    assert one.stderr.strip().splitlines() == [f"Error: {broken}: tree 0 (question_id 2): field 'SQL' is missing"]


def test_module_doctests() -> None:
    assert doctest.testmod(lfkit.eval.report_html.data).failed == 0


# ----------------------------------------------------------------------------- in a real browser

CHROMIUM = shutil.which("chromium")


class Dom(HTMLParser):
    """What a person sees in the DOM Chromium dumps after the page's script ran."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.html_attrs: dict[str, str | None] = {}
        self.title = ""
        self.questions: list[dict[str, str | None]] = []  # each tbody.q's attributes, in DOM order
        self.ex: dict[str, list[str]] = {}  # stage -> the texts of its row in the EX table
        self.shown = ""
        self.pre: list[str] = []  # the text of every <pre> (SQL, feedback)
        self._in: list[str] = []  # "title" / "shown" / "ex-row" while inside them
        self._ex_table = False
        self._row: list[str] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.html_attrs = a
        elif tag in ("title", "pre"):
            self._in.append(tag)
            if tag == "pre":
                self.pre.append("")
        elif tag == "span" and a.get("id") == "shown":
            self._in.append("shown")
        elif tag == "tbody" and "q" in (a.get("class") or "").split():
            self.questions.append(a)
        elif tag == "table":
            self._ex_table = a.get("id") == "ex"
        elif self._ex_table and tag == "tr":
            self._row = []
        elif self._ex_table and tag in ("th", "td"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("title", "span", "pre") and self._in:
            self._in.pop()
        elif self._ex_table and tag in ("th", "td") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif self._ex_table and tag == "tr" and self._row:
            self.ex[self._row[0]] = self._row[1:]
        elif tag == "table":
            self._ex_table = False

    def handle_data(self, data: str) -> None:
        if self._in and self._in[-1] == "title":
            self.title += data
        elif self._in and self._in[-1] == "shown":
            self.shown += data
        elif self._in and self._in[-1] == "pre":
            self.pre[-1] += data
        if self._cell is not None:
            self._cell.append(data)

    def visible(self) -> list[str]:
        return [q["data-qid"] for q in self.questions if "hidden" not in q]


def _dump_dom(page: Path, fragment: str, tmp_path: Path) -> Dom:
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", page.as_uri() + fragment,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    return Dom(done.stdout)


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run installs it)"
)


@pytest.fixture(scope="module")
def page(run: dict[str, Path]) -> Path:
    """The page as `lfkit eval report` writes it for the three stages, with trees and an image."""
    page = run["root"] / "page" / "report.html"
    png = run["root"] / "ex.png"
    png.write_bytes(bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + bytes(20))
    result = CliRunner().invoke(
        main,
        ["eval", "report", *[f"-s{s}={run[s]}" for s in STAGES], "-g", str(run["gold"]), "--db-root",
         str(run["db_root"]), "--trees", str(run["root"] / "trees"), "--image", str(png), "--workers", "0",
         "--title", "Report under test", "-o", str(page)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return page


@needs_chromium
def test_page_in_chromium(page: Path, tmp_path: Path) -> None:
    dom = _dump_dom(page, "", tmp_path)
    assert "js" in (dom.html_attrs.get("class") or "").split()  # the page's own script ran ...
    assert dom.title == "Report under test" and "data-pwned" not in dom.html_attrs  # ... the answer's did not
    assert HOSTILE in dom.pre  # shown as the text it is
    assert dom.ex["stage"][:4] == [f"{c} ({n})" for c, n in zip(COLUMNS, (3, 4, 1, 8), strict=True)]
    for stage, cols in EX.items():
        row = dom.ex[stage]
        assert row[:4] == [f"{ex} {frac}" for ex, frac in cols], row
    assert [q["data-qid"] for q in dom.questions] == [str(i) for i in range(N)]
    assert dom.visible() == [str(i) for i in range(N)] and dom.shown == f"{N} of {N} questions shown"

    dom = _dump_dom(page, "#changed", tmp_path)
    assert set(dom.visible()) == CHANGED and dom.shown == f"{len(CHANGED)} of {N} questions shown"
    assert dom.title == "Report under test"

    dom = _dump_dom(page, "#label=wrong&stage=1", tmp_path)  # wrong in sft
    assert dom.visible() == ["2", "5", "6"]

    dom = _dump_dom(page, "#change=fixed&difficulty=moderate", tmp_path)
    assert dom.visible() == ["2", "6", "7"]

    dom = _dump_dom(page, "#sort=-s2&q=2", tmp_path)  # dpo's label, descending (missing < ... < correct)
    order = [q["data-qid"] for q in dom.questions]
    assert order[:3] == ["3", "1", "5"] and sorted(order[3:]) == ["0", "2", "4", "6", "7"], order
    assert [q["data-qid"] for q in dom.questions if "open" in (q.get("class") or "").split()] == ["2"]


# A page beside the report that loads it in a frame and drives it as a person would: clicks a row, picks
# a filter, clicks a column header twice, clicks "expand all", types a search; then writes what it saw.
HARNESS = """<!DOCTYPE html><html><body><pre id="out">not run</pre><iframe id="f" src="report.html"></iframe><script>
document.getElementById("f").addEventListener("load", function () {
  var d = this.contentDocument, w = this.contentWindow, out = [];
  var ids = function (pred) {
    return Array.prototype.filter.call(d.querySelectorAll("tbody.q"), pred).map(function (t) { return t.dataset.qid; });
  };
  var shown = function (t) { return !t.hidden; }, open = function (t) { return t.classList.contains("open"); };
  var detail = function () { return w.getComputedStyle(d.querySelector("#q-2 tr.detail")).display; };
  var pick = function (id, value, ev) {
    var el = d.getElementById(id); el.value = value; el.dispatchEvent(new Event(ev));
  };
  out.push(["before", ids(open).join(","), detail()]);
  d.querySelector("#q-2 tr.summary").click();
  out.push(["clicked", ids(open).join(","), detail()]);
  d.querySelector("#q-2 tr.summary").click();
  out.push(["clicked again", ids(open).join(","), detail()]);
  pick("f-change", "fixed", "change");
  out.push(["fixed", ids(shown).join(","), w.location.hash, d.getElementById("shown").textContent]);
  d.querySelector('th[data-sort="difficulty"]').click();
  out.push(["sorted", ids(function () { return true; }).join(",")]);
  d.querySelector('th[data-sort="difficulty"]').click();
  out.push(["sorted again", ids(function () { return true; }).join(","), w.location.hash]);
  d.getElementById("expand-all").click();
  out.push(["expanded", ids(open).join(",")]);
  pick("f-text", "yankees", "input");
  out.push(["searched", ids(shown).join(",")]);
  document.getElementById("out").textContent = JSON.stringify(out);
});
</script></body></html>
"""


@needs_chromium
def test_page_clicks_in_chromium(page: Path, tmp_path: Path) -> None:
    harness = page.parent / "harness.html"
    harness.write_text(HARNESS)
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--allow-file-access-from-files",  # lets the harness reach into the framed file:// page
        f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", harness.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    found = Dom(done.stdout).pre
    assert found and found[0] != "not run", done.stdout[:2000]
    fixed = "0,2,3,6,7"
    assert json.loads(found[0]) == [
        ["before", "", "none"],
        ["clicked", "2", "table-row"],  # a click on a row shows its details ...
        ["clicked again", "", "none"],  # ... a second click hides them
        ["fixed", fixed, "#change=fixed", "5 of 8 questions shown"],
        ["sorted", "0,3,5,2,4,6,7,1"],  # simple, moderate, challenging; ties in file order
        ["sorted again", "1,2,4,6,7,0,3,5", "#change=fixed&sort=-difficulty"],
        ["expanded", "2,6,7,0,3"],  # the questions shown, in their sorted order
        ["searched", "0"],  # "yankees": question 0 only, within the fixed ones
    ]

"""Best-of-N selection on canned candidates with hand-computed EX for every strategy.

Database t(a, b) = (1, 'x'), (2, 'y'), (3, 'y'). Per question, the candidates, their result
sets and what each strategy must pick (c<i> = candidate i; G = groups by result set):

Q0 simple  gold {2,3}: c0 {1,2,3} wrong, c1 {2,3} ok, c2 {2,3} ok, c3 {1} wrong, c4 error;
           scores .5 -1 -2 3 5. vote G1={c1,c2} -> c1 right; rm_top1 c4 (error) wrong;
           rm_top1_exec c3 wrong; rm_vote weights G0 .62, G1 .27+.12=.39, G2 .95 -> c3 wrong.
Q1 moderate gold {3}: c0 {2}, c1 {3}, c2 {2}, c3 {3}: vote tie 2-2 -> earliest group (c0) wrong;
           scores 0 1 0 1: rm_top1 tie -> earliest c1 right; rm_vote 1.0 vs 1.46 -> c1 right.
Q2 challenging gold {'x'}: every candidate fails (error, no SQL, error): vote/first/oracle c0,
           rm picks c1 (no SQL): all wrong; greedy right.
Q3 simple  gold {'y'}: c0 {'y'} right, c1/c2 {'x'}: vote G1 (2) wrong; rm (2, -3, -3) c0 right;
           rm_vote .88 vs .09 -> c0 right. Candidates given as text only (SQL extracted).
Q4 moderate gold {3}: c0 error (score 4), c1 {3} right (1), c2 {1} (.5): rm_top1 c0 wrong,
           rm_top1_exec c1 right; vote tie 1-1 -> c1 right; rm_vote .73 vs .62 -> c1 right.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from lfkit.cli import main
from lfkit.eval.select import SelectError, run_select, strategy_file, vote

GOLD = [
    (0, "SELECT a FROM t WHERE b = 'y'", "simple"),
    (1, "SELECT COUNT(*) FROM t", "moderate"),
    (2, "SELECT b FROM t WHERE a = 1", "challenging"),
    (3, "SELECT b FROM t WHERE a = 3", "simple"),
    (4, "SELECT MAX(a) FROM t", "moderate"),
]
CANDS = {
    0: ["SELECT a FROM t", "SELECT a FROM t WHERE a >= 2", "SELECT a FROM t WHERE a > 1", "SELECT a FROM t WHERE a = 1",
        "SELECT nope FROM t"],
    1: ["SELECT COUNT(*) FROM t WHERE b = 'y'", "SELECT COUNT(a) FROM t", "SELECT 2", "SELECT 3"],
    2: ["SELECT zz FROM t", "", "SELEC a"],
    3: ["SELECT b FROM t WHERE a = 2", "SELECT b FROM t WHERE a = 1", "SELECT b FROM t WHERE a = 1 OR a = 1"],
    4: ["SELECT MAX(q) FROM t", "SELECT 3", "SELECT 1"],
}  # fmt: skip
SCORES = {0: [0.5, -1.0, -2.0, 3.0, 5.0], 1: [0.0, 1.0, 0.0, 1.0], 2: [0.1, 0.9, 0.2], 3: [2.0, -3.0, -3.0],
          4: [4.0, 1.0, 0.5]}  # fmt: skip
GREEDY = {0: "SELECT a FROM t WHERE b='y'", 1: "SELECT 2", 2: "SELECT b FROM t WHERE a = 1", 3: "SELECT 'x'",
          4: "SELECT MAX(a) FROM t"}  # fmt: skip
# strategy -> (EX %, {difficulty: EX %}, chosen candidate per question)
EXPECTED = {
    "first": (20.0, {"simple": 50.0, "moderate": 0.0, "challenging": 0.0}, [0, 0, 0, 0, 0]),
    "greedy": (60.0, {"simple": 50.0, "moderate": 50.0, "challenging": 100.0}, None),
    "vote": (40.0, {"simple": 50.0, "moderate": 50.0, "challenging": 0.0}, [1, 0, 0, 1, 1]),
    "rm_top1": (40.0, {"simple": 50.0, "moderate": 50.0, "challenging": 0.0}, [4, 1, 1, 0, 0]),
    "rm_top1_exec": (60.0, {"simple": 50.0, "moderate": 100.0, "challenging": 0.0}, [3, 1, 1, 0, 1]),
    "rm_vote": (60.0, {"simple": 50.0, "moderate": 100.0, "challenging": 0.0}, [3, 1, 1, 0, 1]),
    "oracle": (80.0, {"simple": 100.0, "moderate": 100.0, "challenging": 0.0}, [1, 1, 0, 0, 1]),
}


def fence(sql: str) -> str:
    return f"Answer:\n```sql\n{sql}\n```" if sql else "I do not know."


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    db = tmp_path / "dev_databases" / "toy" / "toy.sqlite"
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        con.executemany("INSERT INTO t VALUES (?, ?)", [(1, "x"), (2, "y"), (3, "y")])
    dev = [{"question_id": q, "db_id": "toy", "question": f"q{q}", "SQL": sql, "difficulty": d} for q, sql, d in GOLD]
    (tmp_path / "dev.json").write_text(json.dumps(dev))
    rows = []
    for q, sqls in CANDS.items():
        # question 3: text only, select extracts the SQL itself
        cands = [{"text": fence(s)} if q == 3 else {"text": fence(s), "sql": s} for s in sqls]
        rows.append({"question_id": q, "db_id": "toy", "candidates": cands, "greedy": {"sql": GREEDY[q]}})
    (tmp_path / "cands.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    scores = [{"question_id": q, "scores": s} for q, s in SCORES.items()]
    (tmp_path / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in scores))
    return tmp_path


def test_every_strategy_hand_computed_and_rescored_by_eval_score(corpus: Path) -> None:
    out = corpus / "select" / "report.json"
    report = run_select(
        corpus / "cands.jsonl", corpus / "dev.json", corpus / "dev_databases", out, scores=corpus / "scores.jsonl",
        workers=0,
    )  # fmt: skip
    assert list(report["strategies"]) == list(EXPECTED)
    assert report["labels"] == {"correct": 6, "wrong": 7, "error": 4, "no_sql": 1}
    assert report["questions_without_running_candidate"] == 1
    assert report["n_candidates"] == 5
    assert Path(report["plot"]).stat().st_size > 1000
    assert json.loads(out.read_text())["strategies"]["oracle"]["ex"] == 80.0
    runner = CliRunner()
    for name, (ex, by_diff, picks) in EXPECTED.items():
        got = report["strategies"][name]
        assert got["ex"] == ex, name
        assert {d: v["ex"] for d, v in got["by_difficulty"].items()} == by_diff, name
        pred_file = strategy_file(out, name)
        preds = json.loads(pred_file.read_text())
        if picks is not None:
            want = [CANDS[q][i] for q, i in enumerate(picks)]
            assert [preds[str(q)].split("\t")[0] for q in range(5)] == want, name
        # the same number from `lfkit eval score` on the strategy's own file
        rescored = corpus / f"{name}.score.json"
        result = runner.invoke(
            main,
            ["eval", "score", "-p", str(pred_file), "-g", str(corpus / "dev.json"),
             "--db-root", str(corpus / "dev_databases"), "--workers", "0", "--out", str(rescored), "--no-progress"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert json.loads(rescored.read_text())["ex"] == ex, name


def test_without_scores_or_greedy_only_the_other_strategies(corpus: Path) -> None:
    rows = [json.loads(line) for line in (corpus / "cands.jsonl").read_text().splitlines()]
    for r in rows:
        del r["greedy"]
    (corpus / "plain.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = run_select(corpus / "plain.jsonl", corpus / "dev.json", corpus / "dev_databases", corpus / "r.json",
                        workers=0, plot=False)  # fmt: skip
    assert list(report["strategies"]) == ["first", "vote", "oracle"]
    assert report["strategies"]["vote"]["ex"] == 40.0


def test_cli_select_and_bad_scores(corpus: Path) -> None:
    runner = CliRunner()
    base = ["eval", "select", "--candidates", str(corpus / "cands.jsonl"), "--gold", str(corpus / "dev.json"),
            "--db-root", str(corpus / "dev_databases"), "--workers", "0"]  # fmt: skip
    result = runner.invoke(main, [*base, "--scores", str(corpus / "scores.jsonl"), "--out", str(corpus / "c.json")])
    assert result.exit_code == 0, result.output
    assert "rm_top1_exec" in result.output and (corpus / "c_predictions" / "vote" / "predict_dev.json").is_file()
    # one score short for question 4: one clear error line, nothing written
    bad = [{"question_id": q, "scores": s[:-1] if q == 4 else s} for q, s in SCORES.items()]
    (corpus / "bad.jsonl").write_text("".join(json.dumps(r) + "\n" for r in bad))
    result = runner.invoke(main, [*base, "--scores", str(corpus / "bad.jsonl"), "--out", str(corpus / "d.json")])
    assert result.exit_code == 1
    assert "question 4: 2 scores for 3 candidates" in result.output
    assert not (corpus / "d.json").exists() and not (corpus / "d_predictions").exists()


def test_greedy_as_a_candidate(corpus: Path) -> None:
    """--greedy-candidate: the greedy decode is candidate 0 of every question (hand-computed):
    vote Q0 {G, c1, c2} -> G right, Q1 {G, c0, c2} = {2} wrong, Q2 only G runs -> right, Q3 {G, c1, c2} = {'x'}
    wrong, Q4 {G, c1} -> G right: 60.0 (40.0 without); oracle every question: 100.0; first stays c0: 20.0;
    rm_top1 with greedy scores (-10 except Q2: 10): c4, c1, G, c0, c0 -> 60.0."""
    greedy_scores = {0: -10.0, 1: -10.0, 2: 10.0, 3: -10.0, 4: -10.0}
    rows = [{"question_id": q, "scores": s, "greedy_score": greedy_scores[q]} for q, s in SCORES.items()]
    (corpus / "gscores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = corpus / "g" / "report.json"
    report = run_select(
        corpus / "cands.jsonl", corpus / "dev.json", corpus / "dev_databases", out, scores=corpus / "gscores.jsonl",
        greedy_candidate=True, workers=0, plot=False,
    )  # fmt: skip
    ex = {name: s["ex"] for name, s in report["strategies"].items()}
    assert (ex["first"], ex["greedy"], ex["vote"], ex["oracle"], ex["rm_top1"]) == (20.0, 60.0, 60.0, 100.0, 60.0)
    assert report["n_candidates"] == 6 and report["greedy_candidate"] is True
    vote_preds = json.loads(strategy_file(out, "vote").read_text())
    assert vote_preds["0"].split("\t")[0] == GREEDY[0]
    # scores written before rm score scored the greedy decode: one line naming the row and what to do
    with pytest.raises(SelectError, match=r"row 0: no 'greedy_score'.*lfkit rm score"):
        run_select(corpus / "cands.jsonl", corpus / "dev.json", corpus / "dev_databases", corpus / "h.json",
                   scores=corpus / "scores.jsonl", greedy_candidate=True, workers=0, plot=False)  # fmt: skip
    plain = [json.loads(line) for line in (corpus / "cands.jsonl").read_text().splitlines()]
    del plain[2]["greedy"]
    (corpus / "plain.jsonl").write_text("".join(json.dumps(r) + "\n" for r in plain))
    with pytest.raises(SelectError, match=r"plain.jsonl: row 2: no greedy decode for --greedy-candidate"):
        run_select(corpus / "plain.jsonl", corpus / "dev.json", corpus / "dev_databases", corpus / "i.json",
                   greedy_candidate=True, workers=0, plot=False)  # fmt: skip


def test_select_rejects_unknown_question(corpus: Path) -> None:
    (corpus / "x.jsonl").write_text(json.dumps({"question_id": 99, "candidates": [{"sql": "SELECT 1"}]}) + "\n")
    with pytest.raises(SelectError, match="question_id 99 is not in"):
        run_select(corpus / "x.jsonl", corpus / "dev.json", corpus / "dev_databases", corpus / "r.json", workers=0)


def test_vote_ties_go_to_the_earliest_group() -> None:
    assert vote([[2, 3], [0, 1]]) == 2  # groups are in order of first member; equal sizes: the first listed
    assert vote([[0], [1, 2], [3, 4]]) == 1
    assert vote([[0], [1]], weights=[0.4, 0.4]) == 0

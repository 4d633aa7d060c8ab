"""`lfkit eval score` on BIRD-format files built in the test (real SQLite, hand-computed EX)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from lfkit.cli import main
from lfkit.eval import read_gold, read_predictions, score_predictions, write_bird_predictions
from lfkit.io import DataFileError


def _make_db(path: Path, script: str) -> None:
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.commit()
    conn.close()


# (question_id, db_id, difficulty, gold SQL, predicted SQL, correct under bird, correct under testsuite)
QUESTIONS = [
    (0, "shop", "simple", "SELECT count(*) FROM item", "SELECT COUNT(*) FROM item", True, True),
    (1, "shop", "simple", "SELECT name FROM item WHERE price > 2", "SELECT name FROM item WHERE price >= 2",
     False, False),
    (2, "shop", "simple", "SELECT name FROM item ORDER BY price", "SELECT name FROM item ORDER BY price DESC",
     True, False),
    (3, "school", "moderate", "SELECT grade, count(*) FROM pupil GROUP BY grade",
     "SELECT grade, count(*) FROM pupils GROUP BY grade", False, False),
    (4, "school", "moderate", "SELECT DISTINCT grade FROM pupil", "SELECT grade FROM pupil", True, False),
    (5, "school", "challenging", "SELECT max(n) FROM big", "SELECT count(*) FROM big a, big b, big c", False, False),
    (6, "shop", "challenging", "SELECT name, price FROM item WHERE price < 2",
     "SELECT price, name FROM item WHERE price < 2", False, True),
]  # fmt: skip


@pytest.fixture
def bird_dir(tmp_path: Path) -> Path:
    """A tiny BIRD-layout folder: dev.json, dev_gold.sql, dev_databases/<db>/<db>.sqlite, predict_dev.json."""
    root = tmp_path / "bird"
    dbs = root / "dev_databases"
    _make_db(
        dbs / "shop" / "shop.sqlite",
        """CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, price REAL);
        INSERT INTO item (name, price) VALUES ('pen', 1.5), ('ink', 2), ('pad', 3.5), ('cap', 0.5);""",
    )
    rows = ",".join(f"({i})" for i in range(2000))
    _make_db(
        dbs / "school" / "school.sqlite",
        f"""CREATE TABLE pupil (id INTEGER PRIMARY KEY, name TEXT, grade INTEGER);
        INSERT INTO pupil (name, grade) VALUES ('a', 1), ('b', 1), ('c', 2), ('d', 3);
        CREATE TABLE big (n INTEGER); INSERT INTO big VALUES {rows};""",
    )
    dev = [
        {"question_id": q, "db_id": db, "question": f"q{q}", "evidence": "", "SQL": gold, "difficulty": diff}
        for q, db, diff, gold, *_ in QUESTIONS
    ]
    (root / "dev.json").write_text(json.dumps(dev, indent=2))
    (root / "dev_gold.sql").write_text("".join(f"{gold}\t{db}\n" for _, db, _, gold, *_ in QUESTIONS))
    write_bird_predictions(root / "predict_dev.json", {q: (pred, db) for q, db, _, _, pred, *_ in QUESTIONS})
    return root


# EX by hand from the table above: bird  simple 2/3, moderate 1/2, challenging 0/2, total 3/7;
#                                  testsuite simple 1/3, moderate 0/2, challenging 1/2, total 2/7.
EXPECTED = {
    "bird": {"simple": (66.67, 3), "moderate": (50.0, 2), "challenging": (0.0, 2), "total": 42.86},
    "testsuite": {"simple": (33.33, 3), "moderate": (0.0, 2), "challenging": (50.0, 2), "total": 28.57},
}


def _check(report: dict, comparison: str) -> None:
    expected = EXPECTED[comparison]
    assert report["n"] == 7
    assert report["ex"] == expected["total"]
    assert list(report["by_difficulty"]) == ["simple", "moderate", "challenging"]
    for name in ("simple", "moderate", "challenging"):
        cell = report["by_difficulty"][name]
        assert (cell["ex"], cell["n"]) == expected[name], name
    assert report["errors"] == 1  # question 3: no such table
    assert report["timeouts"] == 1  # question 5: cartesian count
    assert report["missing"] == 0 and report["gold_failures"] == []
    by_id = {r["question_id"]: r for r in report["results"]}
    assert [by_id[str(q[0])]["correct"] for q in QUESTIONS] == [q[5 if comparison == "bird" else 6] for q in QUESTIONS]


@pytest.mark.parametrize("comparison", ["bird", "testsuite"])
def test_score_bird_files(bird_dir: Path, comparison: str) -> None:
    report = score_predictions(
        bird_dir / "predict_dev.json",
        bird_dir / "dev.json",
        bird_dir / "dev_databases",
        comparison=comparison,
        timeout=1.0,
        workers=2,
    )
    _check(report, comparison)


def test_soft_f1_in_report(bird_dir: Path) -> None:
    report = score_predictions(
        bird_dir / "predict_dev.json", bird_dir / "dev.json", bird_dir / "dev_databases", timeout=1.0, workers=0
    )
    f1 = {r["question_id"]: r["soft_f1"] for r in report["results"]}
    # q1: soft-F1 pairs rows by position: pred (ink), (pad) vs gold (pad) -> row 0 matches nothing,
    # row 1 is an extra false positive: tp = 0 -> 0.0
    assert f1["1"] == 0.0
    assert f1["0"] == 1.0 and f1["3"] == 0.0 and f1["5"] == 0.0
    # q6: columns swapped, each cell still found in the gold row -> 1.0
    assert f1["6"] == 1.0
    assert report["soft_f1"] == pytest.approx(round(100 * sum(f1.values()) / 7, 2))


def test_dev_gold_sql_with_difficulties_and_cli(bird_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "report.json"
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "score",
            "--predictions",
            str(bird_dir / "predict_dev.json"),
            "--gold",
            str(bird_dir / "dev_gold.sql"),
            "--difficulties",
            str(bird_dir / "dev.json"),
            "--db-root",
            str(bird_dir / "dev_databases"),
            "--timeout",
            "1",
            "--workers",
            "2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "challenging" in result.output and "42.86" in result.output
    _check(json.loads(out.read_text()), "bird")


def test_lfkit_jsonl_predictions_by_id(bird_dir: Path, tmp_path: Path) -> None:
    preds = tmp_path / "preds.jsonl"
    # ids, not positions; out of order; question 4 missing
    rows = [{"question_id": q, "sql": pred} for q, _, _, _, pred, *_ in reversed(QUESTIONS) if q != 4]
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = score_predictions(preds, bird_dir / "dev.json", bird_dir / "dev_databases", timeout=1.0, workers=0)
    assert report["missing"] == 1 and report["n"] == 7
    assert report["by_difficulty"]["moderate"] == {"ex": 0.0, "n": 2, "correct": 0, "soft_f1": 0.0}
    assert report["ex"] == round(100 * 2 / 7, 2)


def test_console_script_runs(bird_dir: Path) -> None:
    exe = Path(sys.executable).parent / "lfkit"
    proc = subprocess.run(
        [
            str(exe),
            "eval",
            "score",
            "-p",
            str(bird_dir / "predict_dev.json"),
            "-g",
            str(bird_dir / "dev.json"),
            "--db-root",
            str(bird_dir / "dev_databases"),
            "--timeout",
            "1",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "42.86" in proc.stdout


@pytest.mark.parametrize("module", ["select", "inspect"])
def test_files_in_the_working_directory_do_not_shadow_the_sql_workers_imports(
    bird_dir: Path, tmp_path: Path, module: str
) -> None:
    # A user's own select.py / inspect.py in the folder they run lfkit from: the SQL workers
    # import the standard library's modules of those names, never these.
    cwd = tmp_path / "work"
    cwd.mkdir()
    (cwd / f"{module}.py").write_text("raise SystemExit('imported from the working directory')\n")
    exe = Path(sys.executable).parent / "lfkit"
    args = ["eval", "score", "-p", str(bird_dir / "predict_dev.json"), "-g", str(bird_dir / "dev.json")]
    args += ["--db-root", str(bird_dir / "dev_databases"), "--timeout", "1", "--no-progress", "--workers", "2"]
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert "42.86" in proc.stdout and "gold" not in proc.stdout.lower(), proc.stdout


def test_clear_errors(bird_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    # a prediction for another database
    wrong = tmp_path / "wrong.json"
    write_bird_predictions(wrong, {0: ("SELECT 1", "school")})
    res = runner.invoke(
        main,
        [
            "eval",
            "score",
            "-p",
            str(wrong),
            "-g",
            str(bird_dir / "dev.json"),
            "--db-root",
            str(bird_dir / "dev_databases"),
        ],
    )
    assert res.exit_code != 0 and "db_id 'school'" in res.output and "Traceback" not in res.output
    # a db root without the databases
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(
        main,
        [
            "eval",
            "score",
            "-p",
            str(bird_dir / "predict_dev.json"),
            "-g",
            str(bird_dir / "dev.json"),
            "--db-root",
            str(empty),
        ],
    )
    assert res.exit_code != 0 and "shop" in res.output
    # a JSONL row without sql
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question_id": 0, "sql": "SELECT 1"}\n{"question_id": 1}\n')
    with pytest.raises(DataFileError, match=r"bad.jsonl: row 1: missing field 'sql'"):
        read_predictions(bad)
    # predictions keyed by unknown ids
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"100": "SELECT 1\t----- bird -----\tshop"}))
    with pytest.raises(DataFileError, match="not gold question ids"):
        score_predictions(unknown, bird_dir / "dev.json", bird_dir / "dev_databases", workers=0)


def test_bird_prediction_file_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "predict_dev.json"
    sql = "SELECT a\nFROM t\tWHERE b = 'x  y'"
    write_bird_predictions(path, {10: ("SELECT 2", "db"), 2: (sql, "db")})
    data = json.loads(path.read_text())
    assert list(data) == ["2", "10"]
    assert data["10"] == "SELECT 2\t----- bird -----\tdb"
    preds = read_predictions(path)
    assert preds["2"].sql == sql and preds["2"].db_id == "db"


def test_read_gold_formats(bird_dir: Path) -> None:
    from_json = read_gold(bird_dir / "dev.json")
    from_sql = read_gold(bird_dir / "dev_gold.sql", difficulties=bird_dir / "dev.json")
    assert [(g.question_id, g.db_id, g.gold_sql, g.difficulty) for g in from_json] == [
        (g.question_id, g.db_id, g.gold_sql, g.difficulty) for g in from_sql
    ]
    assert {g.difficulty for g in read_gold(bird_dir / "dev_gold.sql")} == {"unknown"}

"""label_candidates: completions -> SQL -> executed on a real SQLite database -> hand-computed labels."""

from __future__ import annotations

import doctest
import sqlite3
from pathlib import Path

import pytest

import lfkit.sql.label
from lfkit.data.rows import Question
from lfkit.sql import LABELS, REJECTABLE, Verifier, label_candidates

SLOW = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"


def fence(sql: str) -> str:
    return f"Answer:\n```sql\n{sql}\n```"


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    db = tmp_path / "shop" / "shop.sqlite"
    db.parent.mkdir()
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, price REAL)")
        con.executemany("INSERT INTO item VALUES (?, ?, ?)", [(1, "pen", 1.5), (2, "ink", 4.0), (3, "pad", 2.5)])
    con.close()
    return db


def test_labels_by_hand(shop: Path) -> None:
    # gold: names of items cheaper than 3 -> {pen, pad}
    q = Question(1, "shop", gold_sql="SELECT name FROM item WHERE price < 3", db_path=shop)
    texts = [
        fence("SELECT name FROM item WHERE price <= 2.5"),  # same rows: correct
        fence("SELECT name FROM item WHERE price < 3 ORDER BY name DESC"),  # bird compares sets: correct
        fence("SELECT name FROM item"),  # pen, ink, pad: wrong
        fence("SELECT name FROM item WHERE price > 100"),  # no rows: wrong
        fence("SELECT nope FROM item"),  # no such column: error
        fence(SLOW),  # never ends: timeout
        "I cannot answer that.",  # nothing to extract: no_sql
    ]
    with Verifier(timeout=0.5, workers=0) as verifier:
        (cands,) = label_candidates([q], [texts], verifier)
    assert [c.label for c in cands] == ["correct", "correct", "wrong", "wrong", "error", "timeout", "no_sql"]
    assert [c.status for c in cands] == ["ok", "ok", "ok", "ok", "error", "timeout", "error"]
    assert [c.rows for c in cands] == [2, 2, 3, 0, 0, 0, 0]
    assert all(c.gold_status == "ok" for c in cands)
    assert cands[0].sql == "SELECT name FROM item WHERE price <= 2.5" and cands[0].text == texts[0]
    assert "nope" in cands[4].error and cands[6].sql == ""
    assert {c.label for c in cands} <= set(LABELS)
    assert {c.label for c in cands if c.label in REJECTABLE} == {"wrong", "error", "timeout"}


def test_testsuite_comparison_respects_order(shop: Path) -> None:
    q = Question("a", "shop", gold_sql="SELECT name FROM item ORDER BY price", db_path=shop)
    texts = [[fence("SELECT name FROM item ORDER BY price DESC"), fence("SELECT name FROM item ORDER BY price")]]
    with Verifier(comparison="testsuite", workers=0) as verifier:
        assert [c.label for c in label_candidates([q], texts, verifier)[0]] == ["wrong", "correct"]
    with Verifier(comparison="bird", workers=0) as verifier:
        assert [c.label for c in label_candidates([q], texts, verifier)[0]] == ["correct", "correct"]


def test_malformed_extract_and_gold_failure(shop: Path) -> None:
    good = Question(1, "shop", gold_sql="SELECT count(*) FROM item", db_path=shop)
    broken = Question(2, "shop", gold_sql="SELECT x FROM missing", db_path=shop)
    texts = [["<r>ok</r> SELECT count(*) FROM item", "SELECT count(*) FROM item"], ["<r>?</r> SELECT 3"]]

    def extract(text: str) -> str:  # a caller-supplied extractor: everything from SELECT on
        return text[text.find("SELECT") :] if "SELECT" in text else ""

    with Verifier(workers=0) as verifier:
        out = label_candidates([good, broken], texts, verifier, extract, well_formed=lambda t: t.startswith("<r>"))
    assert [c.label for c in out[0]] == ["correct", "malformed"]
    assert out[0][1].sql == "SELECT count(*) FROM item" and out[0][1].status == "ok"  # still run
    # gold does not run: the candidate is not correct, and gold_status says why
    assert [(c.label, c.gold_status) for c in out[1]] == [("wrong", "error")]


def test_execution_is_deduplicated_and_gold_runs_once_per_question(shop: Path) -> None:
    qs = [Question(i, "shop", gold_sql="SELECT name FROM item WHERE id = 1", db_path=shop) for i in range(3)]
    same = [fence("SELECT name FROM item WHERE id = 2"), fence("select NAME from ITEM where ID=2;")]
    with Verifier(workers=0) as verifier:
        out = label_candidates(qs, [same] * 3, verifier)
        # one gold (same normalised SQL on the same db for all three) + one distinct candidate
        assert verifier.stats["executed"] == 2 and verifier.stats["requested"] == 3 * 2 * 2
    assert [[c.label for c in cands] for cands in out] == [["wrong", "wrong"]] * 3


def test_bad_arguments(shop: Path) -> None:
    q = Question(1, "shop", gold_sql="SELECT 1", db_path=shop)
    with Verifier(workers=0) as verifier:
        with pytest.raises(ValueError, match="1 questions but 2 lists"):
            label_candidates([q], [["a"], ["b"]], verifier)
        with pytest.raises(ValueError, match="no database path"):
            label_candidates([Question(1, "shop", gold_sql="SELECT 1")], [["SELECT 1"]], verifier)
        assert label_candidates([q], [[]], verifier) == [[]]


def test_module_doctest() -> None:
    assert doctest.testmod(lfkit.sql.label).failed == 0

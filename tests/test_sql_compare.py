"""Comparison semantics (bird set vs testsuite bag/order), soft-F1, on rows from real SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from lfkit.sql import ExecResult, execute_sql, has_top_level_order_by, results_match, rows_match, soft_f1


def _match(db: Path, pred_sql: str, gold_sql: str, comparison: str) -> bool:
    pred, gold = execute_sql(db, pred_sql), execute_sql(db, gold_sql)
    assert pred.ok and gold.ok, (pred, gold)
    return results_match(pred, gold, comparison, gold_sql=gold_sql)


# (pred, gold, bird, testsuite) — expected outcomes reasoned from each definition
CASES = [
    # duplicates: a set ignores them, a bag does not
    (
        "SELECT country FROM singer WHERE country IS NOT NULL",
        "SELECT DISTINCT country FROM singer WHERE country <> ''",
        True,
        False,
    ),
    ("SELECT age FROM singer WHERE age = 30", "SELECT 30 UNION ALL SELECT 30", True, True),
    ("SELECT age FROM singer WHERE age = 30", "SELECT 30", True, False),
    # row order without ORDER BY in gold: ignored by both
    ("SELECT name FROM singer ORDER BY name DESC", "SELECT name FROM singer", True, True),
    # row order when gold has a top-level ORDER BY: only testsuite cares
    ("SELECT name FROM singer ORDER BY name DESC", "SELECT name FROM singer ORDER BY name", True, False),
    ("SELECT name FROM singer ORDER BY singer_id", "SELECT name FROM singer ORDER BY name", True, True),
    # ORDER BY only inside a subquery of gold does not make order matter
    (
        "SELECT name FROM singer WHERE age > 26 AND age < 50 ORDER BY name DESC",
        "SELECT name FROM (SELECT name, age FROM singer ORDER BY age LIMIT 4) WHERE age > 26",
        True,
        True,
    ),
    # column order: rows are tuples for bird; testsuite matches columns by permutation
    ("SELECT age, name FROM singer", "SELECT name, age FROM singer", False, True),
    ("SELECT name, name FROM singer", "SELECT name, age FROM singer", False, False),
    # NULLs: NULL equals NULL in both
    ("SELECT net FROM singer", "SELECT net FROM singer ORDER BY singer_id", True, True),
    ("SELECT country FROM singer WHERE singer_id = 5", "SELECT NULL", True, True),
    ("SELECT country FROM singer WHERE singer_id = 5", "SELECT ''", False, False),
    # int vs float: 30 == 30.0 (Python equality, as BIRD); '30' (text) is not 30
    ("SELECT age FROM singer WHERE singer_id = 1", "SELECT 30.0", True, True),
    ("SELECT CAST(age AS TEXT) FROM singer WHERE singer_id = 1", "SELECT 30", False, False),
    # floats are compared exactly, no tolerance
    ("SELECT 0.1 + 0.2", "SELECT 0.3", False, False),
    ("SELECT avg(net) FROM singer WHERE singer_id IN (3, 5)", "SELECT 2", True, True),
    # empty results match each other
    ("SELECT name FROM singer WHERE age > 100", "SELECT venue FROM concert WHERE year = 1900", True, True),
    ("SELECT name FROM singer WHERE age > 100", "SELECT NULL", False, False),
]


@pytest.mark.parametrize(("pred", "gold", "bird", "testsuite"), CASES)
def test_comparison_semantics(toy_sqlite: Path, pred: str, gold: str, bird: bool, testsuite: bool) -> None:
    assert _match(toy_sqlite, pred, gold, "bird") is bird
    assert _match(toy_sqlite, pred, gold, "testsuite") is testsuite


def test_bird_is_exactly_python_set_equality() -> None:
    # the official evaluation.py: set(predicted_res) == set(ground_truth_res)
    pred = [(1, "a"), (1, "a"), (None, 2.0)]
    gold = [(None, 2), (1.0, "a")]
    assert rows_match(pred, gold, "bird") is (set(pred) == set(gold)) is True
    assert rows_match([(1,), (2,)], [(1,)], "bird") is False


def test_failed_results_never_match() -> None:
    ok = ExecResult("ok", ((1,),))
    for status in ("error", "timeout", "too_many_rows"):
        bad = ExecResult(status, error="x")
        assert not results_match(bad, ok)
        assert not results_match(ok, bad)
        assert not results_match(bad, bad, "testsuite")


def test_unknown_comparison_is_rejected() -> None:
    with pytest.raises(ValueError, match="comparison"):
        results_match(ExecResult("ok"), ExecResult("ok"), "exact")


def test_top_level_order_by_detection() -> None:
    assert has_top_level_order_by("SELECT a FROM t ORDER BY a")
    assert has_top_level_order_by("SELECT a FROM t UNION SELECT b FROM u ORDER BY 1")
    assert not has_top_level_order_by("SELECT a FROM (SELECT a FROM t ORDER BY a LIMIT 3)")
    assert not has_top_level_order_by("WITH c AS (SELECT a FROM t ORDER BY a) SELECT a FROM c")
    assert not has_top_level_order_by("SELECT rank() OVER (ORDER BY a) FROM t")
    assert not has_top_level_order_by("SELECT a FROM t")


def test_soft_f1_matches_bird_minidev_definition() -> None:
    assert soft_f1([], []) == 1.0
    assert soft_f1([(1,)], []) == 0.0
    assert soft_f1([], [(1,)]) == 0.0
    assert soft_f1([(1, 2)], [(1, 2)]) == 1.0
    # one of two cells matched in a single row: tp=0.5, fp=0.5, fn=0.5 -> P=R=F1=0.5
    assert soft_f1([(1, 3)], [(1, 2)]) == pytest.approx(0.5)
    # duplicates are dropped; an extra predicted row is a whole false positive:
    # tp=1, fp=1, fn=0 -> P=0.5, R=1, F1=2/3
    assert soft_f1([("a",), ("a",), ("b",)], [("a",)]) == pytest.approx(2 / 3)
    # a missing row is a whole false negative: tp=1, fp=0, fn=1 -> F1=2/3
    assert soft_f1([("a",)], [("a",), ("b",)]) == pytest.approx(2 / 3)
    # rows are paired by position after deduplication (order matters for soft-F1, as in mini-dev)
    assert soft_f1([("b",), ("a",)], [("a",), ("b",)]) == 0.0

"""The complexity classifier on hand-written SQL: the seed's labels and its multi-step rules."""

from __future__ import annotations

import doctest

import pytest

import lfkit.sql.complexity as complexity_module
from lfkit.sql.complexity import (
    MULTI_STEP,
    SIMPLE,
    ComplexityFeatures,
    classify_complexity,
    complexity_features,
    normalize_label,
)


def test_labels_are_the_seeds() -> None:
    assert (SIMPLE, MULTI_STEP) == ("sql", "多步推理")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT name FROM singer",
        "SELECT COUNT(*) FROM singer WHERE country = 'France' AND age > 30",
        "SELECT country, AVG(age) FROM singer GROUP BY country ORDER BY 2 DESC LIMIT 1",
        "SELECT s.name FROM singer AS s JOIN concert AS c ON s.singer_id = c.singer_id WHERE c.year = 2020",
        "SELECT a.x FROM a, b WHERE a.id = b.id",  # one (implicit) join
        "SELECT CASE WHEN age > 30 THEN 'old' ELSE 'young' END FROM singer",
    ],
)
def test_simple(sql: str) -> None:
    assert classify_complexity(sql) == SIMPLE
    assert classify_complexity(sql, english=True) == "simple"
    assert complexity_features(sql).reasons == []


@pytest.mark.parametrize(
    ("sql", "reasons"),
    [
        ("SELECT a.x FROM a JOIN b ON a.id = b.id JOIN c ON b.id = c.id", ["2 joins"]),
        ("SELECT a.x FROM a, b, c WHERE a.id = b.id AND b.id = c.id", ["2 joins"]),
        ("WITH old AS (SELECT * FROM singer WHERE age > 40) SELECT name FROM old", ["1 CTE"]),
        ("SELECT name FROM singer UNION SELECT venue FROM concert", ["1 set operation"]),
        ("SELECT name FROM singer INTERSECT SELECT name FROM fan EXCEPT SELECT name FROM x", ["2 set operations"]),
        ("SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM concert)", ["1 subquery"]),
        ("SELECT name, (SELECT COUNT(*) FROM concert) FROM singer WHERE EXISTS (SELECT 1 FROM fan)", ["2 subqueries"]),
        ("SELECT x FROM (SELECT age AS x FROM singer) AS t", ["1 subquery"]),
        ("SELECT country FROM singer GROUP BY country HAVING COUNT(*) > 2", ["1 HAVING"]),
        ("SELECT name, RANK() OVER (ORDER BY age) FROM singer", ["1 window function"]),
    ],
)
def test_multi_step(sql: str, reasons: list[str]) -> None:
    assert classify_complexity(sql) == MULTI_STEP
    assert classify_complexity(sql, english=True) == "multi-step"
    assert complexity_features(sql).reasons == reasons


def test_unparsable_sql_is_judged_on_tokens() -> None:
    feats = complexity_features("SELECT a FROM t JOIN u ON t.id = u.id JOIN v ON (")
    assert feats == ComplexityFeatures(joins=2, parsed=False)
    assert feats.label == MULTI_STEP
    assert complexity_features("SELECT a FROM t WHERE b IN (SELECT c FROM").subqueries == 1
    assert classify_complexity("SELECT a FROM t WHERE (") == SIMPLE
    for nothing in ("", None, "'unterminated", "no sql here at all"):
        assert classify_complexity(nothing) == SIMPLE


@pytest.mark.parametrize(
    ("label", "canonical"),
    [
        ("sql", SIMPLE),
        (" SQL ", SIMPLE),
        ("simple", SIMPLE),
        ("多步推理", MULTI_STEP),
        ("Multi-Step", MULTI_STEP),
        ("multi_step", MULTI_STEP),
        ("multistep", MULTI_STEP),
        ("complex", MULTI_STEP),
        ("hard", None),
        ("", None),
        (None, None),
        (3, None),
    ],
)
def test_normalize_label(label, canonical) -> None:
    assert normalize_label(label) == canonical


def test_doctests() -> None:
    result = doctest.testmod(complexity_module)
    assert result.attempted >= 5 and result.failed == 0

"""SQL extraction from model text and normalisation for dedup / cache keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from lfkit.data.prompts import format_sql_answer
from lfkit.sql import execute_sql, extract_sql, normalize_sql

EXTRACT = [
    ("```sql\nSELECT name FROM singer\n```", "SELECT name FROM singer"),
    ("```sqlite\nSELECT 1\n```", "SELECT 1"),
    ("```\nSELECT 1\n```", "SELECT 1"),
    ("The query is ```sql SELECT 1 ``` as shown.", "SELECT 1"),
    ("```sql\nSELECT 1```\nmore text", "SELECT 1"),
    ("Sure! Here it is:\n```sql\nSELECT a\nFROM t\n```\nIt selects a.", "SELECT a\nFROM t"),
    # the last fenced block wins (revised answers come last)
    ("Draft:\n```sql\nSELECT 1\n```\nFixed:\n```sql\nSELECT 2;\n```", "SELECT 2;"),
    # non-SQL fences are ignored
    ("```python\nprint('x')\n```\nSELECT 6 FROM t", "SELECT 6 FROM t"),
    # a fence cut off by max_new_tokens runs to the end
    ("```sql\nSELECT a FROM t WHERE", "SELECT a FROM t WHERE"),
    ("<answer>SELECT name FROM singer</answer>", "SELECT name FROM singer"),
    ("<think>maybe SELECT x FROM y?</think>\n\n<answer>SELECT name FROM singer</answer>", "SELECT name FROM singer"),
    ("<answer>\n```sql\nSELECT 5\n```\n</answer>", "SELECT 5"),
    ("<think>SELECT wrong FROM t</think>SELECT right FROM t", "SELECT right FROM t"),
    ("<answer>SELECT a FROM t", "SELECT a FROM t"),
    ("<think>I could use SELECT name FROM singer but the budget ran ou", ""),
    ("SELECT a FROM t", "SELECT a FROM t"),
    ("SQL: SELECT a FROM t", "SELECT a FROM t"),
    ("sql query: select a from t where b = 'x;y'; -- done\nThis returns a.", "select a from t where b = 'x;y';"),
    ("SELECT a FROM t; This query returns every a.", "SELECT a FROM t;"),
    (
        "SELECT name\nFROM singer\nWHERE age > 3\nThis lists the names of the singers.",
        "SELECT name\nFROM singer\nWHERE age > 3",
    ),
    ("SELECT name FROM singer\n\nExplanation: we read the table.", "SELECT name FROM singer"),
    ("To answer, I will select the names.\nSELECT name FROM singer", "SELECT name FROM singer"),
    ("WITH c AS (SELECT 1 AS x) SELECT x FROM c\nThe CTE helps.", "WITH c AS (SELECT 1 AS x) SELECT x FROM c"),
    ("I do not know.", ""),
    ("", ""),
    (None, ""),
]


@pytest.mark.parametrize(("text", "expected"), EXTRACT)
def test_extract_sql(text: str | None, expected: str) -> None:
    assert extract_sql(text) == expected


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT name FROM singer",
        "SELECT T1.name, count(*)\nFROM singer AS T1\nJOIN concert AS T2 ON T1.singer_id = T2.singer_id\nGROUP BY 1;",
        "SELECT 'a ``` b' FROM t",
    ],
)
def test_extract_roundtrips_the_sft_answer_format(sql: str) -> None:
    assert extract_sql(format_sql_answer(sql)) == sql


def test_normalize_merges_spellings(toy_sqlite: Path) -> None:
    variants = [
        "SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id WHERE T2.year = 2020",
        "select t1.NAME from SINGER as t1 join concert as t2 on t1.singer_id=t2.singer_id where t2.year=2020;",
        "SELECT s.name\n  FROM singer s\n  JOIN concert c ON s.singer_id = c.singer_id  -- join\n WHERE c.year = 2020",
    ]
    keys = {normalize_sql(v) for v in variants}
    assert len(keys) == 1
    # and they really are the same query
    assert len({execute_sql(toy_sqlite, v).rows for v in variants}) == 1


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SELECT name FROM singer WHERE country = 'France'", "SELECT name FROM singer WHERE country = 'france'"),
        ("SELECT name FROM singer WHERE name = 'A  B'", "SELECT name FROM singer WHERE name = 'A B'"),
        ("SELECT name FROM singer", "SELECT name FROM singer LIMIT 1"),
        ("SELECT name FROM singer ORDER BY age", "SELECT name FROM singer ORDER BY age DESC"),
        ('SELECT "Name" FROM singer WHERE "Zzz" = 1', 'SELECT "Name" FROM singer WHERE "zzz" = 1'),
    ],
)
def test_normalize_keeps_different_queries_apart(a: str, b: str) -> None:
    assert normalize_sql(a) != normalize_sql(b)


def test_normalize_nested_alias_reuse_is_left_alone() -> None:
    # the alias "s" is declared twice (outer and inner scope): renaming is skipped, not botched
    sql = "SELECT s.name FROM singer s WHERE s.age > (SELECT avg(s.age) FROM singer s)"
    assert "s.name" in normalize_sql(sql).lower()


def test_normalize_falls_back_to_whitespace() -> None:
    assert normalize_sql("SELEC   name\n FROM   t  ;") == "SELEC name FROM t"
    assert normalize_sql("garbage ((( 'a   b'") == "garbage ((( 'a   b'"


@pytest.mark.parametrize(
    ("full", "expected_full", "expected_stopped"),
    [
        # the SFT answer format: the stop ends it where end-of-sequence would
        ("```sql\nSELECT a FROM t\n```\n\nThis query lists a.", "SELECT a FROM t", "SELECT a FROM t"),
        # prose before the fence: "\n```sql" must not stop it
        ("Here it is:\n```sql\nSELECT a\nFROM t;\n```\n\nExplanation", "SELECT a\nFROM t;", "SELECT a\nFROM t;"),
        # a second answer: the full text is scored on the last closed fence, greedy eval on the first
        ("```sql\nSELECT 1\n```\nOr:\n```sql\nSELECT 2\n```\n", "SELECT 2", "SELECT 1"),
        # a second answer cut by the token cap never replaces a closed one
        ("```sql\nSELECT 1\n```\nOr:\n```sql\nSELECT 2 FR", "SELECT 1", "SELECT 1"),
        # never closed: the open fence runs to the end either way
        ("```sql\nSELECT 1 FROM t WHERE", "SELECT 1 FROM t WHERE", "SELECT 1 FROM t WHERE"),
    ],
)
def test_fence_stop_ends_greedy_answers_at_the_first_closed_fence(full, expected_full, expected_stopped) -> None:
    from lfkit.generate import truncate_at_stop
    from lfkit.sql.extract import SQL_FENCE_STOP

    stopped, _ = truncate_at_stop(full, SQL_FENCE_STOP)
    assert extract_sql(full) == expected_full
    assert extract_sql(stopped) == expected_stopped
    if expected_full == expected_stopped and "\n```\n" in full:
        assert stopped.endswith("\n```\n") and stopped.count("```") % 2 == 0  # a complete fence


def test_documented_examples_hold() -> None:
    import doctest

    import lfkit.generate.base
    import lfkit.sql.extract

    for module in (lfkit.sql.extract, lfkit.generate.base):
        result = doctest.testmod(module)
        assert result.attempted >= 3 and result.failed == 0, module.__name__

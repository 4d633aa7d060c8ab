"""Comparing a candidate's result with the gold result: the one definition of "correct".

``bird`` (the official BIRD ``evaluation.py``): ``set(pred_rows) == set(gold_rows)``.
Duplicates and row order are ignored; column order matters (rows are tuples).

``testsuite`` (test-suite-sql-eval, Zhong et al. 2020): the rows as a multiset (bag), in order
only when the gold query has a top-level ``ORDER BY``; columns may come in any order (the
candidate's columns are matched to gold's by a permutation, as the test-suite evaluator does).

Values compare with Python equality, exactly like BIRD: ``1 == 1.0`` (and they hash alike, so
sets and bags agree), ``'1' != 1``, floats must be equal to the last bit (``0.1 + 0.2 != 0.3``,
no tolerance), and ``NULL`` (``None``) equals ``NULL``. A candidate or gold that did not run
(status other than ``ok``) never matches.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Sequence

from lfkit.sql.execute import ExecResult

COMPARISONS = ("bird", "testsuite")
# Column permutations tried by ``testsuite`` before giving up (the test-suite evaluator caps it too).
MAX_PERMUTATIONS = 5_000


def check_comparison(comparison: str) -> str:
    if comparison not in COMPARISONS:
        raise ValueError(f"comparison must be one of {COMPARISONS}, got {comparison!r}")
    return comparison


@functools.lru_cache(maxsize=16_384)
def has_top_level_order_by(sql: str) -> bool:
    """True when the outermost query of ``sql`` has ORDER BY (parsed with sqlglot, SQLite dialect).

    ORDER BY inside a subquery, a CTE or a window does not count. Unparseable SQL falls back
    to "ORDER BY appears in the text", the conservative reading for a gold query.
    """
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except Exception:  # sqlglot's ParseError/TokenError and friends
        return "order by" in " ".join(sql.lower().split())
    if isinstance(tree, exp.Command):
        return "order by" in " ".join(sql.lower().split())
    # For UNION/INTERSECT/EXCEPT the ORDER BY sits on the set operation itself.
    return tree.args.get("order") is not None


def _bag_equal(pred: Sequence[tuple], gold: Sequence[tuple], ordered: bool) -> bool:
    if ordered:
        return list(pred) == list(gold)
    return Counter(pred) == Counter(gold)


def _testsuite_equal(pred: Sequence[tuple], gold: Sequence[tuple], ordered: bool) -> bool:
    if len(pred) != len(gold):
        return False
    if not gold:
        return True
    width = len(gold[0])
    if len(pred[0]) != width:
        return False
    if _bag_equal(pred, gold, ordered):
        return True
    # Gold column j can only be pred column i when both hold the same multiset of values.
    gold_cols = [Counter(row[j] for row in gold) for j in range(width)]
    pred_cols = [Counter(row[i] for row in pred) for i in range(width)]
    options = [[i for i in range(width) if pred_cols[i] == gold_cols[j]] for j in range(width)]
    if any(not opts for opts in options):
        return False
    for tried, perm in enumerate(itertools.product(*options)):
        if tried >= MAX_PERMUTATIONS:
            break
        if len(set(perm)) != width:
            continue
        if _bag_equal([tuple(row[i] for i in perm) for row in pred], gold, ordered):
            return True
    return False


def rows_match(
    pred_rows: Sequence[tuple], gold_rows: Sequence[tuple], comparison: str = "bird", gold_sql: str | None = None
) -> bool:
    """Compare two row lists under ``comparison`` (see the module docstring)."""
    check_comparison(comparison)
    if comparison == "bird":
        return set(pred_rows) == set(gold_rows)
    ordered = bool(gold_sql) and has_top_level_order_by(gold_sql)
    return _testsuite_equal(pred_rows, gold_rows, ordered)


def results_match(pred: ExecResult, gold: ExecResult, comparison: str = "bird", gold_sql: str | None = None) -> bool:
    """True when the candidate result ``pred`` counts as correct against ``gold``.

    ``gold_sql`` is needed by ``testsuite`` to decide whether row order matters.
    """
    check_comparison(comparison)
    if not (pred.ok and gold.ok):
        return False
    return rows_match(pred.rows, gold.rows, comparison, gold_sql)


def _row_match(pred_row: tuple, gold_row: tuple) -> tuple[float, float, float]:
    width = len(gold_row)
    matches = sum(1 for v in pred_row if v in gold_row)
    pred_only = len(pred_row) - matches
    gold_only = sum(1 for v in gold_row if v not in pred_row)
    return matches / width, pred_only / width, gold_only / width


def soft_f1(pred_rows: Sequence[tuple], gold_rows: Sequence[tuple]) -> float:
    """Soft-F1 of BIRD mini-dev (``evaluation_f1.py``), in [0, 1].

    Rows are deduplicated keeping first occurrence and paired by position; within a pair,
    cell values count as matched when they occur anywhere in the other row. Extra predicted
    rows are false positives, missing rows false negatives. Two empty results score 1, and so do
    two equal row lists (rows with at least one column, as every SQL result has).

    >>> soft_f1([(1, "a"), (2, "b")], [(1, "a"), (2, "b")])
    1.0
    >>> soft_f1([(1, "a"), (2, "c")], [(1, "a"), (2, "b")])
    0.75
    """
    if not pred_rows and not gold_rows:
        return 1.0
    if len(pred_rows) == len(gold_rows) and all(gold_rows) and list(pred_rows) == list(gold_rows):
        return 1.0  # the common case of scoring, and what the loop below computes for it
    pred = list(dict.fromkeys(pred_rows))
    gold = list(dict.fromkeys(gold_rows))
    tp = fp = fn = 0.0
    for i, gold_row in enumerate(gold):
        if i >= len(pred):
            fn += 1
            continue
        if not gold_row:
            continue
        m, p, g = _row_match(pred[i], gold_row)
        tp, fp, fn = tp + m, fp + p, fn + g
    fp += max(0, len(pred) - len(gold))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0

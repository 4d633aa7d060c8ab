"""SQL issue detectors on a sqlglot AST (dialect ``sqlite``), in a registry users extend.

The built-ins are the eleven of the process-reward GRPO recipe (Qwen3-1.7B) plus ``invalid_sql``.

:func:`detect_issues` parses the SQL once (:func:`parse_query`) and runs every registered
detector on the result. Each detector reports at most one :class:`Issue` (its ``detail`` lists
every place it fired) and owns a severity in ``(0, 1]``, stated once, in its ``@register_detector``
line (:mod:`lfkit.sql.issues.detectors`). The built-ins, in report order:

================================  =====================================================
name                              rule (exact text in each detector's docstring)
================================  =====================================================
``missing_where``                 outermost SELECT reads a table unfiltered and unbounded
``missing_time_range``            the question names a time range, the SQL filters on none
``incorrect_join``                a JOIN's ON does not connect the joined table
``missing_join_condition``        a JOIN with neither ON nor USING (not CROSS/NATURAL)
``inconsistent_alias``            a qualifier that names no table in scope, or one alias twice
``missing_group_by``              aggregates mixed with bare columns and no GROUP BY
``unclosed_parenthesis``          parentheses unbalanced in the token stream
``empty_in_clause``               ``IN ()``
``invalid_date_format``           a date-shaped literal that is not ISO ``YYYY-MM-DD``
``multiple_tables_no_join``       comma-listed tables the WHERE does not link (cartesian)
``order_by_without_limit``        ORDER BY without LIMIT
``invalid_sql``                   lfkit's addition: not one parseable query
================================  =====================================================

That recipe describes ``incorrect_join`` and ``missing_join_condition`` with the same words
("JOIN without ON", all joins vs some joins); lfkit keeps ``missing_join_condition`` for the
absent condition and gives ``incorrect_join`` the other join mistake, a condition that does not
connect the tables. ``invalid_sql`` is added because an unparsable SQL must be an issue: it
fires on an empty SQL, a tokenizer or parser error not already explained by
``unclosed_parenthesis``, several statements, a statement that is not a query, or a SELECT
with an empty select list.

Modules: :mod:`~lfkit.sql.issues.registry` (``register_detector``, ``detect_issues``,
``mentioned_issues``), :mod:`~lfkit.sql.issues.parse` (``parse_query``),
:mod:`~lfkit.sql.issues.helpers` (AST and date helpers), :mod:`~lfkit.sql.issues.detectors`
(the built-ins). This package re-exports the public names.

>>> [i.name for i in detect_issues("SELECT name FROM singer ORDER BY age")]
['missing_where', 'order_by_without_limit']
>>> detect_issues("SELECT COUNT(*) FROM singer WHERE age > 30")
[]
>>> detect_issues("SELECT (name FROM singer")[0]
Issue(name='unclosed_parenthesis', severity=0.8, detail='1 unclosed (')
"""

from __future__ import annotations

from lfkit.sql.issues import detectors as _builtins  # registers the built-ins, in report order
from lfkit.sql.issues.parse import ParsedSQL, parse_query
from lfkit.sql.issues.registry import (
    DETECTORS,
    Detector,
    Issue,
    IssueRegistryError,
    detect_issues,
    mentioned_issues,
    register_detector,
    unregister_detector,
)

LFKIT_ADDITIONS = frozenset({"invalid_sql"})
"""Built-in detectors that are lfkit's own, not the process-reward recipe's."""

SEED_SEVERITIES: dict[str, float] = {
    name: det.severity
    for name, det in DETECTORS.items()
    if det.detect.__module__ == _builtins.__name__ and name not in LFKIT_ADDITIONS
}
"""The process-reward recipe's eleven detectors and their severities, read from the registry at import
(the built-ins less :data:`LFKIT_ADDITIONS`; a detector registered later is not one of them)."""

INVALID_ISSUES = frozenset({"invalid_sql", "unclosed_parenthesis"})
"""Issues that make a SQL invalid (no execution possible), as opposed to merely suspect."""


__all__ = [
    "DETECTORS",
    "INVALID_ISSUES",
    "LFKIT_ADDITIONS",
    "SEED_SEVERITIES",
    "Detector",
    "Issue",
    "IssueRegistryError",
    "ParsedSQL",
    "detect_issues",
    "mentioned_issues",
    "parse_query",
    "register_detector",
    "unregister_detector",
]

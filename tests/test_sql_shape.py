"""lfkit.sql.shape: the WHERE conditions a pair rule and the quality report compare."""

from __future__ import annotations

import doctest

import lfkit.sql.shape
from lfkit.sql.shape import where_conditions


def test_module_doctest() -> None:
    assert doctest.testmod(lfkit.sql.shape).failed == 0


def test_only_the_outermost_where_counts() -> None:
    join = "SELECT T1.a FROM t AS T1 JOIN u AS T2 ON T1.id = T2.id AND T1.y = T2.y WHERE T2.name = 'x'"
    assert where_conditions(join) == 1  # the ON's two conditions are the join's
    nested = "SELECT a FROM t WHERE y = 1 AND w > (SELECT AVG(w) FROM t WHERE y = 1 AND lg = 'AL')"
    assert where_conditions(nested) == 2
    assert where_conditions("SELECT a FROM t WHERE NOT (y = 1 AND x = 2)") == 1
    assert where_conditions("SELECT a FROM t WHERE y = 1 UNION SELECT a FROM u WHERE x = 2 AND z = 3") == 0
    assert where_conditions("") is None and where_conditions(None) is None

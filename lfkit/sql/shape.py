"""Shape features of a query that a pair rule or a report compares across answers.

:func:`where_conditions`, the number of AND-joined conditions in the outermost WHERE.
Why: on ``make quality`` seed 0 the round's closest rejected answer had fewer conditions than the chosen
one in 14 of 50 pairs (more in 5), and 10 of the 13 dev answers DPO broke had gained a condition (README,
"make quality"). The ``hardest_same_where`` pairing and the quality report read this feature.

:func:`skeleton`, the query with its literals as ``?``: the template a question came from. Why: ``make quality``
found a DPO round's sign decided by which templates its questions drew (README, "make quality"); the SFT's
template-stratified sample (:func:`lfkit.data.sft.select_examples`) and the quality report group by it.

>>> where_conditions("SELECT name FROM Teams WHERE yearID = 1998 AND lgID = 'NL' AND W > 90")
3
"""

from __future__ import annotations


def where_conditions(sql: str | None) -> int | None:
    """How many conditions the outermost SELECT's WHERE joins with AND (0: no WHERE, or no plain SELECT at the
    top, as in a UNION; None: the SQL is not exactly one query that parses).

    Conditions inside a subquery, an OR or a JOIN's ON do not count: they are one condition of the
    outer WHERE at most.

    >>> where_conditions("SELECT COUNT(*) FROM (SELECT a FROM t WHERE b = 1 AND c = 2)")
    0
    >>> where_conditions("SELECT a FROM t WHERE (b = 1 OR c = 2) AND d > 3")
    2
    >>> where_conditions("SELECT FROM WHERE") is None, where_conditions("SELECT 'x") is None
    (True, True)
    """
    from sqlglot import exp

    from lfkit.sql.issues import parse_query

    tree = parse_query(sql).tree  # the detectors' parse: never raises on model SQL, None unless one query
    if tree is None:
        return None
    where = tree.args.get("where") if isinstance(tree, exp.Select) else None
    if where is None:
        return 0
    return len(list(where.this.flatten())) if isinstance(where.this, exp.And) else 1


def skeleton(sql: str) -> str:
    """``sql`` with every literal replaced by ``?`` (sqlglot's SQLite rendering); ``sql`` stripped as it is where
    it is not exactly one query that parses, so odd gold SQL is a group of its own, never an error.

    >>> skeleton("SELECT W FROM Teams WHERE name = 'Royals' AND yearID = 1984")
    'SELECT W FROM Teams WHERE name = ? AND yearID = ?'
    >>> skeleton("select w from teams where yearid=1990") == skeleton("SELECT w FROM teams WHERE yearid = 2001")
    True
    >>> skeleton(" SELECT FROM WHERE ")
    'SELECT FROM WHERE'
    """
    from sqlglot import exp

    from lfkit.sql.issues import parse_query

    tree = parse_query(sql).tree
    if tree is None:
        return sql.strip()
    tree = tree.transform(lambda node: exp.Placeholder() if isinstance(node, exp.Literal) else node)
    return tree.sql(dialect="sqlite")

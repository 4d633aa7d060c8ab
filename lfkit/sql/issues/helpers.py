"""AST and temporal helpers shared by the built-in issue detectors (:mod:`lfkit.sql.issues.detectors`).

Qualified columns are resolved by their qualifier; an unqualified column is resolved through
``schema`` when given (the sources whose table has that column) and otherwise may belong to
any source, so join checks give it the benefit of the doubt.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from lfkit.sql.issues.parse import sqlglot_exp


def lname(identifier: Any) -> str:
    return str(identifier or "").lower()


def sources_of(select: Any) -> list[tuple[str, Any, Any]]:
    """``(name, source node, join or None)`` for the FROM source and each join of ``select``."""
    exp = sqlglot_exp()
    out = []
    frm = select.args.get("from_") or select.args.get("from")
    if frm is not None and frm.this is not None:
        out.append((lname(frm.this.alias_or_name), frm.this, None))
    for join in select.args.get("joins") or []:
        if join.this is not None:
            out.append((lname(join.this.alias_or_name), join.this, join))
    return [s for s in out if s[0] or isinstance(s[1], exp.Subquery)]


def selects(tree: Any) -> Iterator[Any]:
    yield from tree.find_all(sqlglot_exp().Select)


def cte_names(tree: Any) -> set[str]:
    return {lname(cte.alias) for cte in tree.find_all(sqlglot_exp().CTE)}


def owner_of(node: Any) -> Any:
    """The nearest SELECT whose own clauses hold ``node`` (None for a set operation's ORDER BY)."""
    exp = sqlglot_exp()
    cur = node.parent
    while cur is not None and not isinstance(cur, exp.Select | exp.SetOperation):
        cur = cur.parent
    return cur if isinstance(cur, exp.Select) else None


def column_sources(col: Any, sources: Sequence[tuple[str, Any, Any]], schema: dict[str, dict[str, str]]) -> set[str]:
    """The source names ``col`` may come from (see this module's docstring)."""
    names = {s[0] for s in sources}
    if col.table:
        return {lname(col.table)}
    exp = sqlglot_exp()
    if schema:
        owners = {
            name
            for name, node, _ in sources
            if isinstance(node, exp.Table) and lname(col.name) in schema.get(lname(node.name), {})
        }
        if owners:
            return owners
    return names


COMPARISONS = ("EQ", "NEQ", "GT", "GTE", "LT", "LTE", "NullSafeEQ", "NullSafeNEQ", "Like", "ILike", "Glob")


def comparisons(node: Any) -> Iterator[Any]:
    exp = sqlglot_exp()
    classes = tuple(getattr(exp, c) for c in COMPARISONS if hasattr(exp, c))
    yield from node.find_all(classes)


def links(condition: Any, sources, schema) -> set[frozenset[str]]:
    """Pairs of distinct sources that a comparison in ``condition`` relates column to column."""
    exp = sqlglot_exp()
    pairs: set[frozenset[str]] = set()
    for cmp in comparisons(condition):
        left = [c for c in cmp.this.find_all(exp.Column)] if cmp.this is not None else []
        right = [c for c in cmp.expression.find_all(exp.Column)] if cmp.expression is not None else []
        lsrc = set().union(*(column_sources(c, sources, schema) for c in left)) if left else set()
        rsrc = set().union(*(column_sources(c, sources, schema) for c in right)) if right else set()
        for a in lsrc:
            for b in rsrc:
                if a != b:
                    pairs.add(frozenset((a, b)))
    return pairs


def components(nodes: Sequence[str], edges: Iterable[tuple[str, ...]]) -> set[str]:
    """Connected components of a graph (union-find): one representative per component."""
    parent = {n: n for n in nodes}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        if a in parent and b in parent:
            parent[find(a)] = find(b)
    return {find(n) for n in nodes}


def is_aggregate(node: Any) -> bool:
    exp = sqlglot_exp()
    if isinstance(node, exp.AggFunc):
        return True
    # sqlglot does not know SQLite's total() as an aggregate
    return isinstance(node, exp.Anonymous) and lname(node.name) == "total"


def in_aggregate_or_window(node: Any, stop: Any) -> bool:
    exp = sqlglot_exp()
    cur = node.parent
    while cur is not None and cur is not stop:
        if is_aggregate(cur) or isinstance(cur, exp.Window):
            return True
        cur = cur.parent
    return False


def own_nodes(select: Any, expression: Any, kind: Any) -> Iterator[Any]:
    """Nodes of type ``kind`` under ``expression`` that belong to ``select`` (not to a subquery)."""
    exp = sqlglot_exp()
    for node in expression.find_all(kind):
        cur = node.parent
        while cur is not None and cur is not select and not isinstance(cur, exp.Select):
            cur = cur.parent
        if cur is select or cur is None:
            yield node


def has_aggregate(select: Any, expressions: Iterable[Any]) -> bool:
    exp = sqlglot_exp()
    for e in expressions:
        for node in own_nodes(select, e, (exp.AggFunc, exp.Anonymous)):
            if is_aggregate(node) and not isinstance(node.parent, exp.Window):
                return True
    return False


def top_selects(tree: Any) -> Iterator[tuple[Any, bool]]:
    """The outermost query's SELECTs, each with whether an enclosing set operation has a LIMIT."""
    exp = sqlglot_exp()
    stack = [(tree, False)]
    while stack:
        node, limited = stack.pop()
        if isinstance(node, exp.SetOperation):
            lim = limited or node.args.get("limit") is not None
            stack.extend([(node.expression, lim), (node.this, lim)])
        elif isinstance(node, exp.Subquery):
            stack.append((node.this, limited))
        elif isinstance(node, exp.Select):
            yield node, limited


# -- temporal helpers --------------------------------------------------------------------------
TIME_WORDS = re.compile(
    r"\b(?:1[89]\d\d|20\d\d)s?\b|\b(?:today|yesterday|tomorrow|tonight|recent(?:ly)?|lately|since|during)\b"
    r"|\b(?:this|last|next|past|previous|current)\s+(?:\d+\s+)?(?:years?|months?|weeks?|days?|quarters?|seasons?|decades?)\b"
    r"|\b(?:january|february|march|april|june|july|august|september|october|november|december)\b"
    r"|\d{2,4}年|\d{1,2}月|\d{1,2}日|今年|去年|前年|明年|本年|今天|昨天|明天|本月|上月|上个月|下个月|本周|上周|下周"
    r"|本季度|上季度|最近|近期|近\d+|过去|期间|以来",
    re.IGNORECASE,
)
TIME_COLUMN = re.compile(
    r"date|time|year|month|week|quarter|season|created|updated|(?:^|_)day|(?:^|_)dt$|_at$|^yr", re.IGNORECASE
)
TIME_FUNCS = {"date", "datetime", "time", "julianday", "unixepoch", "strftime", "timediff"}
DATE_SHAPE = re.compile(
    r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4}|\d{4}[-/]\d{1,2})(?:[ T].*)?$"
    r"|^\d{2,4}年\d{1,2}月(?:\d{1,2}日)?$",
    re.DOTALL,
)
# a date, or a year opening a string (``LIKE '1992%'``, ``'1992'`` against strftime's output)
TIME_LITERAL = re.compile(DATE_SHAPE.pattern + r"|^(?:1[89]|20)\d\d(?!\d)", re.DOTALL)
ISO_DATETIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?$")
ISO_MONTH = re.compile(r"^\d{4}-(?:0[1-9]|1[0-2])$")


def valid_iso(value: str) -> bool:
    if ISO_MONTH.match(value):
        return True
    m = ISO_DATETIME.match(value)
    if not m:
        return False
    y, mo, d, hh, mm, ss = m.groups()
    try:
        _dt.date(int(y), int(mo), int(d))
    except ValueError:
        return False
    return (hh is None or int(hh) < 24) and (mm is None or int(mm) < 60) and (ss is None or int(ss) < 60)


def is_time_function(node: Any) -> bool:
    exp = sqlglot_exp()
    if isinstance(node, exp.Anonymous):
        return lname(node.name) in TIME_FUNCS
    return isinstance(node, exp.Func) and type(node).__module__.endswith(".temporal")


def is_time_column(col: Any, sources, schema) -> bool:
    exp = sqlglot_exp()
    if TIME_COLUMN.search(col.name or ""):
        return True
    for name, node, _ in sources:
        if isinstance(node, exp.Table) and name in column_sources(col, sources, schema):
            declared = schema.get(lname(node.name), {}).get(lname(col.name), "")
            if "DATE" in declared or "TIME" in declared:
                return True
    return False

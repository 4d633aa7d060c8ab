"""Parsing for the issue detectors: one :class:`ParsedSQL` per SQL, never an exception on bad SQL.

sqlglot (dialect ``sqlite``) is imported on first use: :mod:`lfkit.sql` must import without paying for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ParsedSQL:
    """Everything detectors read: the SQL, its tokens, its AST and the question it answers.

    ``tokens`` is None when the tokenizer failed (an unterminated string or quoted identifier);
    ``tree`` is None unless the SQL is exactly one query (SELECT, WITH ... SELECT or a set
    operation) that sqlglot parses; ``error`` then says why. ``paren_problem`` describes
    unbalanced parentheses in the token stream (None when balanced). ``schema`` maps lowercase
    table names to ``{lowercase column: declared type (upper case, "" when unknown)}``.
    """

    sql: str
    question: str | None = None
    schema: dict[str, dict[str, str]] = field(default_factory=dict)
    tokens: list[Any] | None = None
    tree: Any = None
    error: str | None = None
    paren_problem: str | None = None


def sqlglot_exp() -> Any:
    """sqlglot's expression module, imported on first use (not at ``lfkit.sql`` import time)."""
    import sqlglot  # noqa: F401
    from sqlglot import exp

    return exp


def _parse_statements(tokens: Sequence[Any], sql: str) -> list[Any]:
    """Parse with the stock sqlite parser, then restore the join syntax it erases.

    Stock sqlite parsing turns ``FROM a, b`` into a CROSS join and adds ``ON TRUE`` to a JOIN
    written without a condition, which erases exactly what the join detectors judge. The
    parser cannot be subclassed (sqlglotc compiles it with mypyc), so the tree is mended
    instead: a CROSS join without the ``pivots`` argument that only explicit JOIN syntax sets
    is a comma join (``meta["comma"]``), and an invented ``ON TRUE`` is removed. When the text
    itself holds ``ON TRUE`` every such ON is kept (the rare mix of both cannot be told apart;
    ``incorrect_join`` judges a kept one).
    """
    from sqlglot import exp
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.tokens import TokenType

    written_on_true = any(
        a.token_type == TokenType.ON and b.token_type == TokenType.TRUE for a, b in itertools.pairwise(tokens)
    )

    trees = [t for t in Dialect.get_or_raise("sqlite").parser().parse(tokens, sql) if t is not None]
    for tree in trees:
        for join in tree.find_all(exp.Join):
            if join.args.get("kind") == "CROSS" and "pivots" not in join.args:
                join.meta["comma"] = True
            on = join.args.get("on")
            if isinstance(on, exp.Boolean) and on.this is True and not written_on_true:
                join.set("on", None)
    return trees


def _paren_problem(tokens: Sequence[Any]) -> str | None:
    from sqlglot.tokens import TokenType

    depth = unmatched_close = 0
    for tok in tokens:
        if tok.token_type == TokenType.L_PAREN:
            depth += 1
        elif tok.token_type == TokenType.R_PAREN:
            if depth == 0:
                unmatched_close += 1
            else:
                depth -= 1
    parts = []
    if depth:
        parts.append(f"{depth} unclosed (")
    if unmatched_close:
        parts.append(f"{unmatched_close} ) without (")
    return ", ".join(parts) or None


def _normalize_schema(schema: Mapping[str, Any] | None) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for table, columns in (schema or {}).items():
        if isinstance(columns, Mapping):
            out[str(table).lower()] = {str(c).lower(): str(t or "").upper() for c, t in columns.items()}
        else:
            out[str(table).lower()] = {str(c).lower(): "" for c in columns}
    return out


def parse_query(sql: str | None, question: str | None = None, schema: Mapping[str, Any] | None = None) -> ParsedSQL:
    """Tokenize and parse ``sql`` (sqlite dialect) for the detectors; never raises on bad SQL.

    ``schema``: ``{table: {column: type}}`` or ``{table: [column, ...]}``.

    >>> p = parse_query("SELECT a FROM t1, t2")
    >>> p.error, p.tree.args["joins"][0].meta.get("comma")
    (None, True)
    >>> parse_query("DELETE FROM t").error
    'not a query: Delete'
    """
    exp = sqlglot_exp()
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.errors import SqlglotError

    parsed = ParsedSQL(sql=sql or "", question=question, schema=_normalize_schema(schema))
    if not parsed.sql.strip():
        parsed.error = "empty SQL"
        parsed.tokens = []
        return parsed
    try:
        parsed.tokens = Dialect.get_or_raise("sqlite").tokenize(parsed.sql)
    except SqlglotError as e:
        parsed.error = f"tokenizer error: {_first_line(e)}"
        return parsed
    parsed.paren_problem = _paren_problem(parsed.tokens)
    if not parsed.tokens:
        parsed.error = "empty SQL (only comments)"
        return parsed
    try:
        trees = _parse_statements(parsed.tokens, parsed.sql)
    except (SqlglotError, RecursionError) as e:
        parsed.error = f"parse error: {_first_line(e)}"
        return parsed
    if len(trees) != 1:
        parsed.error = f"{len(trees)} statements" if trees else "empty SQL"
        return parsed
    tree = trees[0]
    if not isinstance(tree, exp.Select | exp.SetOperation):
        parsed.error = f"not a query: {type(tree).__name__}"
        return parsed
    empty = next((s for s in tree.find_all(exp.Select) if not s.expressions), None)
    if empty is not None:
        parsed.error = "a SELECT with an empty select list"
        return parsed
    parsed.tree = tree
    return parsed


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


__all__ = ["ParsedSQL", "parse_query", "sqlglot_exp"]

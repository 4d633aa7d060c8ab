"""SQL normalisation for deduplication and result-cache keys.

:func:`normalize_sql` maps spellings of the same query to one string; the string is a
*key*, never executed. It must only merge queries that SQLite runs identically, so every
rewrite here is semantics-preserving in SQLite:

* parse and re-generate with sqlglot (SQLite dialect): whitespace, keyword case, comments,
  ``AS`` and trailing semicolons disappear;
* unquoted ASCII identifiers are lower-cased (SQLite identifiers are case-insensitive;
  string literals and quoted identifiers keep their case — a double-quoted word that matches
  no column is a string literal in SQLite);
* table aliases are renamed ``t1, t2, ...`` in order of appearance when each alias is declared
  once in the whole query (``FROM singer AS T1`` == ``FROM singer AS s``).

When sqlglot cannot parse the text, whitespace outside quotes is collapsed instead.
"""

from __future__ import annotations

import functools
import re

_WS = re.compile(r"\s+")


def _whitespace_normalize(sql: str) -> str:
    """Collapse runs of whitespace outside quotes and drop trailing semicolons."""
    out: list[str] = []
    quote: str | None = None
    pending_space = False
    for ch in sql.strip():
        if quote:
            out.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch.isspace():
            pending_space = True
            continue
        if pending_space and out:
            out.append(" ")
        pending_space = False
        out.append(ch)
        if ch in "'\"`":
            quote = ch
        elif ch == "[":
            quote = "]"
    return "".join(out).rstrip("; ").strip()


def _canonical_aliases(tree) -> None:  # tree: sqlglot.exp.Expression, modified in place
    from sqlglot import exp

    # every declared alias (tables, subqueries, CTE names) must be unique for renaming to be safe
    declared = [a.name.lower() for a in tree.find_all(exp.TableAlias) if a.name]
    if len(set(declared)) != len(declared):
        return  # an alias is reused in nested scopes: renaming could change meaning
    aliases = [t.alias.lower() for t in tree.find_all(exp.Table) if t.alias]
    if not aliases:
        return
    taken = {ident.name.lower() for ident in tree.find_all(exp.Identifier)}
    # order of appearance in the generated text, so the mapping is the same for equal queries
    mapping = {alias: f"t{i}" for i, alias in enumerate(aliases, start=1)}
    if taken & (set(mapping.values()) - set(mapping)):
        return  # a real name would collide with a canonical alias
    for table in tree.find_all(exp.Table):
        alias = table.alias
        if alias:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(mapping[alias.lower()])))
    for column in tree.find_all(exp.Column):
        qualifier = column.table
        if qualifier and qualifier.lower() in mapping and not column.args.get("db"):
            column.set("table", exp.to_identifier(mapping[qualifier.lower()]))


@functools.lru_cache(maxsize=65_536)
def normalize_sql(sql: str) -> str:
    """A canonical string for ``sql``: equal strings mean SQLite runs the same query.

    >>> normalize_sql("select  T1.Name from Singer as T1 where T1.age>3;")
    'SELECT t1.name FROM singer AS t1 WHERE t1.age > 3'
    >>> normalize_sql("SELECT s.name FROM singer s WHERE s.age > 3")
    'SELECT t1.name FROM singer AS t1 WHERE t1.age > 3'
    """
    if not isinstance(sql, str):
        raise TypeError(f"normalize_sql expects a string, got {type(sql).__name__}")
    try:
        import sqlglot
        from sqlglot import exp
        from sqlglot.errors import SqlglotError

        statements = [s for s in sqlglot.parse(sql, read="sqlite") if s is not None]
    except Exception:  # sqlglot raises several error types (and occasionally plain ones) on junk
        return _whitespace_normalize(sql)
    if not statements or any(isinstance(s, exp.Command) for s in statements):
        return _whitespace_normalize(sql)  # sqlglot did not understand the statement
    parts = []
    try:
        for tree in statements:
            for ident in tree.find_all(exp.Identifier):
                if not ident.quoted and ident.name.isascii():
                    ident.set("this", ident.name.lower())
            _canonical_aliases(tree)
            parts.append(tree.sql(dialect="sqlite", comments=False))
    except SqlglotError:
        return _whitespace_normalize(sql)
    return "; ".join(parts)

"""SQL issue detectors on a sqlglot AST (dialect ``sqlite``), in a registry users extend.

The built-ins are the eleven of the process-reward GRPO recipe (Qwen3-1.7B) plus ``invalid_sql``.

:func:`detect_issues` parses the SQL once (:func:`parse_query`) and runs every registered
detector on the result. Each detector reports at most one :class:`Issue` (its ``detail`` lists
every place it fired) and owns a severity in ``(0, 1]``. The built-ins, in report order:

================================  ========  =====================================================
name                              severity  rule (exact text in each detector's docstring)
================================  ========  =====================================================
``missing_where``                 0.3       outermost SELECT reads a table unfiltered and unbounded
``missing_time_range``            0.4       the question names a time range, the SQL filters on none
``incorrect_join``                0.5       a JOIN's ON does not connect the joined table
``missing_join_condition``        0.45      a JOIN with neither ON nor USING (not CROSS/NATURAL)
``inconsistent_alias``            0.25      a qualifier that names no table in scope, or one alias twice
``missing_group_by``              0.35      aggregates mixed with bare columns and no GROUP BY
``unclosed_parenthesis``          0.8       parentheses unbalanced in the token stream
``empty_in_clause``               0.7       ``IN ()``
``invalid_date_format``           0.5       a date-shaped literal that is not ISO ``YYYY-MM-DD``
``multiple_tables_no_join``       0.4       comma-listed tables the WHERE does not link (cartesian)
``order_by_without_limit``        0.2       ORDER BY without LIMIT
``invalid_sql``                   1.0       lfkit's addition: not one parseable query
================================  ========  =====================================================

That recipe describes ``incorrect_join`` and ``missing_join_condition`` with the same words
("JOIN without ON", all joins vs some joins); lfkit keeps ``missing_join_condition`` for the
absent condition and gives ``incorrect_join`` the other join mistake, a condition that does not
connect the tables. ``invalid_sql`` is added because an unparsable SQL must be an issue: it
fires on an empty SQL, a tokenizer or parser error not already explained by
``unclosed_parenthesis``, several statements, a statement that is not a query, or a SELECT
with an empty select list.

Qualified columns are resolved by their qualifier; an unqualified column is resolved through
``schema`` when given (the sources whose table has that column) and otherwise may belong to
any source, so join checks give it the benefit of the doubt.

>>> [i.name for i in detect_issues("SELECT name FROM singer ORDER BY age")]
['missing_where', 'order_by_without_limit']
>>> detect_issues("SELECT COUNT(*) FROM singer WHERE age > 30")
[]
>>> detect_issues("SELECT (name FROM singer")[0]
Issue(name='unclosed_parenthesis', severity=0.8, detail='1 unclosed (')
"""

from __future__ import annotations

import datetime as _dt
import itertools
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lfkit.errors import LfkitError

logger = logging.getLogger(__name__)


class IssueRegistryError(LfkitError):
    """A detector registration was refused (duplicate or malformed name, severity out of range)."""


@dataclass(frozen=True)
class Issue:
    """One detected problem: the detector's ``name`` and ``severity`` and what fired (``detail``)."""

    name: str
    severity: float
    detail: str


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


Detect = Callable[[ParsedSQL], "str | None"]


@dataclass(frozen=True)
class Detector:
    """A registered detector: ``detect(parsed)`` returns a detail string when the issue is present.

    ``needs_tree`` detectors only run when the SQL parsed; ``mentions`` are the phrases that
    name the issue in reasoning text (see :func:`mentioned_issues`). A detector must not modify
    ``parsed`` or its tree: the rewards share one parse between detectors and calls.
    """

    name: str
    severity: float
    detect: Detect
    needs_tree: bool = True
    mentions: tuple[str, ...] = ()


DETECTORS: dict[str, Detector] = {}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def register_detector(
    name: str, severity: float, *, needs_tree: bool = True, mentions: Iterable[str] = ()
) -> Callable[[Detect], Detect]:
    """Decorator registering ``fn(parsed: ParsedSQL) -> str | None`` as detector ``name``.

    Refused with :class:`IssueRegistryError`: a name already registered (unregister it first to
    replace it), a name that is not lowercase ``snake_case``, a severity outside ``(0, 1]``.

    >>> @register_detector("select_star", 0.1, mentions=["select *"])
    ... def _star(parsed):
    ...     '''A projection ``*``.'''
    ...     return "SELECT *" if parsed.tree.is_star else None
    >>> [i.name for i in detect_issues("SELECT * FROM t WHERE a = 1")]
    ['select_star']
    >>> register_detector("select_star", 0.2)(_star)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lfkit.sql.issues.IssueRegistryError: issue detector 'select_star' is already registered; unregister_detector(...
    >>> unregister_detector("select_star")
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise IssueRegistryError(f"issue detector name must be lowercase snake_case, got {name!r}")
    if name in DETECTORS:
        raise IssueRegistryError(
            f"issue detector {name!r} is already registered; unregister_detector({name!r}) first to replace it"
        )
    if isinstance(severity, bool) or not isinstance(severity, int | float) or not 0 < severity <= 1:
        raise IssueRegistryError(f"issue detector {name!r}: severity must be in (0, 1], got {severity!r}")

    def decorate(fn: Detect) -> Detect:
        if name in DETECTORS:  # registered between the call and the decoration
            raise IssueRegistryError(f"issue detector {name!r} is already registered")
        DETECTORS[name] = Detector(name, float(severity), fn, needs_tree, tuple(mentions))
        return fn

    return decorate


def unregister_detector(name: str) -> None:
    """Remove detector ``name``; an unknown name raises :class:`IssueRegistryError`."""
    if name not in DETECTORS:
        raise IssueRegistryError(f"no issue detector named {name!r}; registered: {', '.join(DETECTORS)}")
    del DETECTORS[name]


# -- parsing -----------------------------------------------------------------------------------
def _sqlglot():
    import sqlglot  # noqa: F401  (imported lazily: lfkit.sql must import without paying for sqlglot)
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
    exp = _sqlglot()
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


def detect_issues(
    sql: str | None,
    schema: Mapping[str, Any] | None = None,
    question: str | None = None,
    *,
    parsed: ParsedSQL | None = None,
) -> list[Issue]:
    """Run every registered detector on ``sql``; issues in registration order, one per detector.

    Never raises on bad SQL: an unparsable SQL yields ``unclosed_parenthesis`` or
    ``invalid_sql`` (plus any token-level issue). ``question`` (the natural-language question)
    enables ``missing_time_range``. A detector that raises is skipped for this SQL and logged:
    a reward computed during training must not stop on one odd generation.

    >>> [(i.name, i.detail) for i in detect_issues("SELECT name FROM singer WHERE id IN ()")]
    [('empty_in_clause', 'IN ()')]
    >>> detect_issues("")
    [Issue(name='invalid_sql', severity=1.0, detail='empty SQL')]
    """
    if parsed is None:
        parsed = parse_query(sql, question=question, schema=schema)
    issues = []
    for det in list(DETECTORS.values()):
        if det.needs_tree and parsed.tree is None:
            continue
        try:
            detail = det.detect(parsed)
        except Exception:  # see the docstring: one detector's bug must not kill a training step
            logger.warning("issue detector %r failed on SQL %r", det.name, parsed.sql[:200], exc_info=True)
            continue
        if detail:
            issues.append(Issue(det.name, det.severity, detail))
    return issues


def _squash(text: str) -> str:
    return re.sub(r"[\s_]+", "", text.lower())


def mentioned_issues(text: str | None) -> set[str]:
    """Names of the registered issues that ``text`` (reasoning) names.

    A detector is mentioned when its name or one of its ``mentions`` occurs in the text,
    compared lowercase with whitespace and underscores removed (so ``missing_where``,
    ``missing WHERE`` and ``缺少 WHERE`` all match). Negation is not understood: "no
    missing_where here" mentions ``missing_where``.

    >>> sorted(mentioned_issues("The query has no LIMIT after ORDER BY, and 括号不匹配."))
    ['order_by_without_limit', 'unclosed_parenthesis']
    """
    squashed = _squash(text or "")
    if not squashed:
        return set()
    found = set()
    for det in DETECTORS.values():
        for phrase in (det.name, *det.mentions):
            if _squash(phrase) and _squash(phrase) in squashed:
                found.add(det.name)
                break
    return found


# -- shared AST helpers ------------------------------------------------------------------------
def _name(identifier: Any) -> str:
    return str(identifier or "").lower()


def _sources(select: Any) -> list[tuple[str, Any, Any]]:
    """``(name, source node, join or None)`` for the FROM source and each join of ``select``."""
    exp = _sqlglot()
    out = []
    frm = select.args.get("from_") or select.args.get("from")
    if frm is not None and frm.this is not None:
        out.append((_name(frm.this.alias_or_name), frm.this, None))
    for join in select.args.get("joins") or []:
        if join.this is not None:
            out.append((_name(join.this.alias_or_name), join.this, join))
    return [s for s in out if s[0] or isinstance(s[1], exp.Subquery)]


def _selects(tree: Any) -> Iterator[Any]:
    yield from tree.find_all(_sqlglot().Select)


def _cte_names(tree: Any) -> set[str]:
    return {_name(cte.alias) for cte in tree.find_all(_sqlglot().CTE)}


def _owner(node: Any) -> Any:
    """The nearest SELECT whose own clauses hold ``node`` (None for a set operation's ORDER BY)."""
    exp = _sqlglot()
    cur = node.parent
    while cur is not None and not isinstance(cur, exp.Select | exp.SetOperation):
        cur = cur.parent
    return cur if isinstance(cur, exp.Select) else None


def _column_sources(col: Any, sources: Sequence[tuple[str, Any, Any]], schema: dict[str, dict[str, str]]) -> set[str]:
    """The source names ``col`` may come from (see the module docstring)."""
    names = {s[0] for s in sources}
    if col.table:
        return {_name(col.table)}
    exp = _sqlglot()
    if schema:
        owners = {
            name
            for name, node, _ in sources
            if isinstance(node, exp.Table) and _name(col.name) in schema.get(_name(node.name), {})
        }
        if owners:
            return owners
    return names


_COMPARISONS = ("EQ", "NEQ", "GT", "GTE", "LT", "LTE", "NullSafeEQ", "NullSafeNEQ", "Like", "ILike", "Glob")


def _comparisons(node: Any) -> Iterator[Any]:
    exp = _sqlglot()
    classes = tuple(getattr(exp, c) for c in _COMPARISONS if hasattr(exp, c))
    yield from node.find_all(classes)


def _links(condition: Any, sources, schema) -> set[frozenset[str]]:
    """Pairs of distinct sources that a comparison in ``condition`` relates column to column."""
    exp = _sqlglot()
    pairs: set[frozenset[str]] = set()
    for cmp in _comparisons(condition):
        left = [c for c in cmp.this.find_all(exp.Column)] if cmp.this is not None else []
        right = [c for c in cmp.expression.find_all(exp.Column)] if cmp.expression is not None else []
        lsrc = set().union(*(_column_sources(c, sources, schema) for c in left)) if left else set()
        rsrc = set().union(*(_column_sources(c, sources, schema) for c in right)) if right else set()
        for a in lsrc:
            for b in rsrc:
                if a != b:
                    pairs.add(frozenset((a, b)))
    return pairs


def _components(nodes: Sequence[str], edges: Iterable[tuple[str, ...]]) -> set[str]:
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


def _is_aggregate(node: Any) -> bool:
    exp = _sqlglot()
    if isinstance(node, exp.AggFunc):
        return True
    # sqlglot does not know SQLite's total() as an aggregate
    return isinstance(node, exp.Anonymous) and _name(node.name) == "total"


def _in_aggregate_or_window(node: Any, stop: Any) -> bool:
    exp = _sqlglot()
    cur = node.parent
    while cur is not None and cur is not stop:
        if _is_aggregate(cur) or isinstance(cur, exp.Window):
            return True
        cur = cur.parent
    return False


def _own_nodes(select: Any, expression: Any, kind: Any) -> Iterator[Any]:
    """Nodes of type ``kind`` under ``expression`` that belong to ``select`` (not to a subquery)."""
    exp = _sqlglot()
    for node in expression.find_all(kind):
        cur = node.parent
        while cur is not None and cur is not select and not isinstance(cur, exp.Select):
            cur = cur.parent
        if cur is select or cur is None:
            yield node


def _has_aggregate(select: Any, expressions: Iterable[Any]) -> bool:
    exp = _sqlglot()
    for e in expressions:
        for node in _own_nodes(select, e, (exp.AggFunc, exp.Anonymous)):
            if _is_aggregate(node) and not isinstance(node.parent, exp.Window):
                return True
    return False


def _top_selects(tree: Any) -> Iterator[tuple[Any, bool]]:
    """The outermost query's SELECTs, each with whether an enclosing set operation has a LIMIT."""
    exp = _sqlglot()
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
_TIME_WORDS = re.compile(
    r"\b(?:1[89]\d\d|20\d\d)s?\b|\b(?:today|yesterday|tomorrow|tonight|recent(?:ly)?|lately|since|during)\b"
    r"|\b(?:this|last|next|past|previous|current)\s+(?:\d+\s+)?(?:years?|months?|weeks?|days?|quarters?|seasons?|decades?)\b"
    r"|\b(?:january|february|march|april|june|july|august|september|october|november|december)\b"
    r"|\d{2,4}年|\d{1,2}月|\d{1,2}日|今年|去年|前年|明年|本年|今天|昨天|明天|本月|上月|上个月|下个月|本周|上周|下周"
    r"|本季度|上季度|最近|近期|近\d+|过去|期间|以来",
    re.IGNORECASE,
)
_TIME_COLUMN = re.compile(
    r"date|time|year|month|week|quarter|season|created|updated|(?:^|_)day|(?:^|_)dt$|_at$|^yr", re.IGNORECASE
)
_TIME_FUNCS = {"date", "datetime", "time", "julianday", "unixepoch", "strftime", "timediff"}
_DATE_SHAPE = re.compile(
    r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4}|\d{4}[-/]\d{1,2})(?:[ T].*)?$"
    r"|^\d{2,4}年\d{1,2}月(?:\d{1,2}日)?$",
    re.DOTALL,
)
# a date, or a year opening a string (``LIKE '1992%'``, ``'1992'`` against strftime's output)
_TIME_LITERAL = re.compile(_DATE_SHAPE.pattern + r"|^(?:1[89]|20)\d\d(?!\d)", re.DOTALL)
_ISO_DATETIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?$")
_ISO_MONTH = re.compile(r"^\d{4}-(?:0[1-9]|1[0-2])$")


def _valid_iso(value: str) -> bool:
    if _ISO_MONTH.match(value):
        return True
    m = _ISO_DATETIME.match(value)
    if not m:
        return False
    y, mo, d, hh, mm, ss = m.groups()
    try:
        _dt.date(int(y), int(mo), int(d))
    except ValueError:
        return False
    return (hh is None or int(hh) < 24) and (mm is None or int(mm) < 60) and (ss is None or int(ss) < 60)


def _is_time_function(node: Any) -> bool:
    exp = _sqlglot()
    if isinstance(node, exp.Anonymous):
        return _name(node.name) in _TIME_FUNCS
    return isinstance(node, exp.Func) and type(node).__module__.endswith(".temporal")


def _is_time_column(col: Any, sources, schema) -> bool:
    exp = _sqlglot()
    if _TIME_COLUMN.search(col.name or ""):
        return True
    for name, node, _ in sources:
        if isinstance(node, exp.Table) and name in _column_sources(col, sources, schema):
            declared = schema.get(_name(node.name), {}).get(_name(col.name), "")
            if "DATE" in declared or "TIME" in declared:
                return True
    return False


# -- the recipe's eleven detectors -------------------------------------------------------------
@register_detector(
    "missing_where",
    0.3,
    mentions=[
        "missing where",
        "no where",
        "without where",
        "without a where",
        "缺少where",
        "没有where",
        "缺少过滤条件",
    ],
)
def _missing_where(p: ParsedSQL) -> str | None:
    """The outermost query reads a table without any restriction.

    Fires for a SELECT of the outermost query (each branch of a top-level set operation) that
    reads at least one base table (not a CTE or subquery) and has no WHERE, GROUP BY, HAVING or
    LIMIT (its own or the set operation's) and no aggregate function in its select list:
    ``SELECT name FROM singer`` fires; ``SELECT COUNT(*) FROM singer``,
    ``SELECT name FROM singer ORDER BY age LIMIT 1`` and ``... WHERE ...`` do not.
    """
    exp = _sqlglot()
    ctes = _cte_names(p.tree)
    hits = []
    for select, limited in _top_selects(p.tree):
        tables = [n for n, node, _ in _sources(select) if isinstance(node, exp.Table) and _name(node.name) not in ctes]
        if not tables or limited:
            continue
        if any(select.args.get(k) is not None for k in ("where", "group", "having", "limit")):
            continue
        if _has_aggregate(select, select.expressions):
            continue
        hits.append(", ".join(tables))
    return "; ".join(f"no WHERE on {h}" for h in hits) or None


@register_detector(
    "missing_time_range",
    0.4,
    mentions=[
        "missing time range",
        "no time range",
        "without time range",
        "without a time range",
        "missing date filter",
        "no date filter",
        "without a date filter",
        "缺少时间范围",
        "没有时间范围",
        "缺少时间条件",
        "缺少日期条件",
    ],
)
def _missing_time_range(p: ParsedSQL) -> str | None:
    """The question names a time but the SQL filters on none (needs the question text).

    Not checked without a question. The question names a time range when it contains a year
    1800-2099 (or a decade, ``1990s``), today / yesterday / tomorrow / recent(ly) / lately /
    since / during, this / last / next / past / previous / current [N] year(s) / month(s) /
    week(s) / day(s) / quarter(s) / season(s) / decade(s), a month name other than May, or
    ``2020年``, ``3月``, ``5日``, 今年, 去年, 本月, 上个月, 本周, 本季度, 最近, 近期, 近N, 过去, 期间, 以来 ...;
    asking *for* a date ("on what date", "how many years") is not a time range. The SQL
    filters on a time when a comparison, BETWEEN, IN or LIKE inside a WHERE, HAVING or
    JOIN ... ON has an operand holding a temporal column (its name contains date, time, year,
    month, week, quarter, season, created, updated, starts or follows ``_`` with ``day``, ends
    with ``_at`` or ``_dt``; or its ``schema`` type contains DATE or TIME), a date/time
    function (``date``, ``strftime``, ``julianday``, ``CURRENT_DATE`` ...), a date-shaped
    string literal (see ``invalid_date_format``) or a string literal that starts
    with a year 1800-2099 (``debut LIKE '1992%'``).
    """
    if not p.question:
        return None
    m = _TIME_WORDS.search(p.question)
    if not m:
        return None
    exp = _sqlglot()
    predicates = (exp.Between, exp.In, *(getattr(exp, c) for c in _COMPARISONS if hasattr(exp, c)))
    for select in _selects(p.tree):
        sources = _sources(select)
        clauses = [select.args.get("where"), select.args.get("having")]
        clauses += [j.args.get("on") for j in select.args.get("joins") or []]
        for clause in clauses:
            if clause is None:
                continue
            for pred in clause.find_all(predicates):
                for node in pred.walk():
                    if isinstance(node, exp.Column) and _is_time_column(node, sources, p.schema):
                        return None
                    if _is_time_function(node):
                        return None
                    if isinstance(node, exp.Literal) and node.is_string and _TIME_LITERAL.match(node.this.strip()):
                        return None
    return f"the question mentions {m.group(0)!r} but no date/time filter"


@register_detector(
    "incorrect_join",
    0.5,
    mentions=[
        "incorrect join",
        "wrong join",
        "join condition is wrong",
        "错误的join",
        "join错误",
        "关联条件错误",
        "连接条件错误",
    ],
)
def _incorrect_join(p: ParsedSQL) -> str | None:
    """A JOIN ... ON whose condition does not connect the joined table to the ones before it.

    Fires when no comparison (=, <>, <, <=, >, >=, IS, LIKE, GLOB) in the ON condition has a
    column of the joined source on one side and a column of an earlier source of the same FROM
    on the other: ``ON 1 = 1``, ``ON TRUE``, ``JOIN b ON a.x = a.y``, ``JOIN b ON b.k = 5``.
    Unqualified columns may belong to any source (resolved through ``schema`` when given).
    """
    hits = []
    for select in _selects(p.tree):
        sources = _sources(select)
        for i, (name, _, join) in enumerate(sources):
            if join is None or join.args.get("on") is None:
                continue
            earlier = {s[0] for s in sources[:i]}
            pairs = _links(join.args["on"], sources, p.schema)
            linked = any(name in pair and (pair - {name}) & earlier for pair in pairs)
            if not linked:
                hits.append(f"JOIN {name or 'subquery'} ON {join.args['on'].sql('sqlite')}")
    return "; ".join(hits) or None


@register_detector(
    "missing_join_condition",
    0.45,
    mentions=[
        "missing join condition",
        "no join condition",
        "without join condition",
        "join without on",
        "missing on clause",
        "缺少join条件",
        "缺少on条件",
        "缺少关联条件",
        "缺少连接条件",
    ],
)
def _missing_join_condition(p: ParsedSQL) -> str | None:
    """A JOIN written with the JOIN keyword and neither ON nor USING.

    ``CROSS JOIN``, ``NATURAL JOIN`` and comma-listed tables are excluded (the last are
    ``multiple_tables_no_join``'s concern). SQLite runs such a JOIN as a cartesian product.
    """
    hits = []
    for select in _selects(p.tree):
        for name, _, join in _sources(select):
            if join is None or join.meta.get("comma"):
                continue
            if join.args.get("kind") == "CROSS" or join.args.get("method"):
                continue
            if join.args.get("on") is None and not join.args.get("using"):
                hits.append(f"JOIN {name or 'subquery'} without ON")
    return "; ".join(hits) or None


@register_detector(
    "inconsistent_alias",
    0.25,
    mentions=["inconsistent alias", "alias mismatch", "undefined alias", "wrong alias", "别名不一致", "别名错误"],
)
def _inconsistent_alias(p: ParsedSQL) -> str | None:
    """A column qualifier that names no source in scope, or a name declared twice in one FROM.

    A qualifier is in scope when it is the alias (or, without an alias, the table name) of a
    source of the column's own SELECT or of an enclosing SELECT. ``SELECT s.name FROM singer
    AS t`` and ``SELECT singer.name FROM singer AS s`` fire (SQLite rejects both);
    ``FROM singer AS s JOIN concert AS s`` fires. Columns of a set operation's ORDER BY are
    not checked.
    """
    exp = _sqlglot()
    hits = []
    for select in _selects(p.tree):
        names = [s[0] for s in _sources(select) if s[0]]
        dupes = sorted({n for n in names if names.count(n) > 1})
        hits.extend(f"{d!r} declared twice" for d in dupes)
    for col in p.tree.find_all(exp.Column):
        if not col.table:
            continue
        owner, visible = _owner(col), set()
        scope = owner
        while scope is not None:
            visible.update(s[0] for s in _sources(scope))
            scope = _owner(scope)
        if owner is not None and _name(col.table) not in visible:
            hits.append(f"{col.sql('sqlite')}: no table or alias {col.table!r} in scope")
    return "; ".join(dict.fromkeys(hits)) or None


@register_detector(
    "missing_group_by",
    0.35,
    mentions=[
        "missing group by",
        "no group by",
        "without group by",
        "without a group by",
        "缺少group by",
        "没有group by",
    ],
)
def _missing_group_by(p: ParsedSQL) -> str | None:
    """Aggregates mixed with bare columns in a select list, and no GROUP BY.

    Fires for a SELECT without GROUP BY whose select list holds an aggregate function
    (COUNT, SUM, AVG, MIN, MAX, GROUP_CONCAT, TOTAL ...; not as a window function) and a
    column outside any aggregate or window: ``SELECT country, COUNT(*) FROM singer``.
    SQLite's bare-column idiom ``SELECT name, MAX(age) FROM singer`` fires too.
    """
    exp = _sqlglot()
    hits = []
    for select in _selects(p.tree):
        if select.args.get("group") is not None or not _has_aggregate(select, select.expressions):
            continue
        bare = [
            c.sql("sqlite")
            for e in select.expressions
            for c in _own_nodes(select, e, exp.Column)
            if not _in_aggregate_or_window(c, select)
        ]
        if bare:
            hits.append(f"{', '.join(bare)} beside an aggregate without GROUP BY")
    return "; ".join(hits) or None


@register_detector(
    "unclosed_parenthesis",
    0.8,
    needs_tree=False,
    mentions=[
        "unclosed parenthes",
        "unbalanced parenthes",
        "missing parenthes",
        "missing closing parenthes",
        "括号不匹配",
        "括号未闭合",
        "缺少括号",
    ],
)
def _unclosed_parenthesis(p: ParsedSQL) -> str | None:
    """Parentheses unbalanced in the sqlglot token stream (string literals and comments excluded).

    Fires on a ``(`` never closed or a ``)`` that closes nothing; runs on SQL that does not parse.
    """
    return p.paren_problem


@register_detector(
    "empty_in_clause",
    0.7,
    needs_tree=False,
    mentions=["empty in clause", "empty in list", "in ()", "in子句为空", "空的in"],
)
def _empty_in_clause(p: ParsedSQL) -> str | None:
    """``IN ()`` or ``NOT IN ()``: tokens IN, ``(``, ``)`` in a row; runs on SQL that does not parse."""
    from sqlglot.tokens import TokenType

    toks = p.tokens or []
    n = sum(
        1
        for i in range(len(toks) - 2)
        if toks[i].token_type == TokenType.IN
        and toks[i + 1].token_type == TokenType.L_PAREN
        and toks[i + 2].token_type == TokenType.R_PAREN
    )
    return ("IN ()" if n == 1 else f"{n} x IN ()") if n else None


@register_detector(
    "invalid_date_format",
    0.5,
    mentions=["invalid date format", "wrong date format", "incorrect date format", "日期格式错误", "日期格式不正确"],
)
def _invalid_date_format(p: ParsedSQL) -> str | None:
    """A date-shaped string literal that SQLite's date functions do not understand.

    Date-shaped: ``Y-M-D`` or ``D-M-Y`` with a four-digit year and ``-``, ``/`` or ``.`` as
    separators, ``YYYY-M`` / ``YYYY/M``, each optionally followed by a time; or ``2020年1月(1日)``.
    Valid: ``YYYY-MM-DD`` (a real calendar date, two-digit month and day) optionally followed
    by `` HH:MM[:SS[.fff]]`` or ``T...``, and ``YYYY-MM`` (what ``strftime('%Y-%m', ...)``
    yields). ``'2020/01/05'``, ``'05-01-2020'``, ``'2020-1-5'``, ``'2020-02-30'`` fire;
    LIKE patterns such as ``'2020-01%'`` are not date-shaped.
    """
    exp = _sqlglot()
    bad = [
        lit.this
        for lit in p.tree.find_all(exp.Literal)
        if lit.is_string and _DATE_SHAPE.match(lit.this.strip()) and not _valid_iso(lit.this.strip())
    ]
    return ", ".join(repr(b) for b in dict.fromkeys(bad)) or None


@register_detector(
    "multiple_tables_no_join",
    0.4,
    mentions=[
        "multiple tables without join",
        "multiple tables no join",
        "cartesian product",
        "cross product",
        "笛卡尔积",
        "未使用join",
        "多表但未使用join",
    ],
)
def _multiple_tables_no_join(p: ParsedSQL) -> str | None:
    """Comma-listed tables (``FROM a, b``) that the WHERE does not link: a cartesian product.

    For a SELECT with at least one comma-listed source, every source must be connected to
    the others through column-to-column comparisons in its WHERE (sources joined with JOIN
    count as connected to the ones before them; their conditions are the join detectors'
    concern). Fires when the sources fall into two or more unconnected groups. Unqualified
    columns may belong to any source (resolved through ``schema`` when given).
    """
    hits = []
    for select in _selects(p.tree):
        sources = _sources(select)
        if not any(j is not None and j.meta.get("comma") for _, _, j in sources):
            continue
        edges = [
            (name, sources[i - 1][0])
            for i, (name, _, join) in enumerate(sources)
            if join and not join.meta.get("comma")
        ]
        if select.args.get("where") is not None:
            edges += [tuple(pair) for pair in _links(select.args["where"], sources, p.schema)]
        groups = _components([s[0] for s in sources], edges)
        if len(groups) > 1:
            hits.append(", ".join(s[0] for s in sources) + " not linked by the WHERE")
    return "; ".join(hits) or None


@register_detector(
    "order_by_without_limit",
    0.2,
    mentions=[
        "order by without limit",
        "missing limit",
        "no limit",
        "without limit",
        "without a limit",
        "缺少limit",
        "没有limit",
    ],
)
def _order_by_without_limit(p: ParsedSQL) -> str | None:
    """A SELECT or set operation, at any depth, with ORDER BY and no LIMIT.

    Window and aggregate ``ORDER BY`` (``OVER (ORDER BY ...)``) are not query ORDER BYs.
    """
    exp = _sqlglot()
    n = sum(
        1
        for q in p.tree.find_all(exp.Select, exp.SetOperation)
        if q.args.get("order") is not None and q.args.get("limit") is None
    )
    return ("ORDER BY without LIMIT" if n == 1 else f"{n} x ORDER BY without LIMIT") if n else None


@register_detector(
    "invalid_sql",
    1.0,
    needs_tree=False,
    mentions=["invalid sql", "syntax error", "not valid sql", "语法错误", "无效的sql", "无法解析"],
)
def _invalid_sql(p: ParsedSQL) -> str | None:
    """Not exactly one query sqlglot parses (lfkit's addition to the recipe's eleven).

    Fires on an empty SQL, a tokenizer error, a parse error (unless ``unclosed_parenthesis``
    explains it), several statements, a statement that is not a query (INSERT, DROP ...) and
    a SELECT with an empty select list.
    """
    if p.error and not (p.paren_problem and p.error.startswith("parse error")):
        return p.error
    return None


SEED_SEVERITIES: dict[str, float] = {
    "missing_where": 0.3,
    "missing_time_range": 0.4,
    "incorrect_join": 0.5,
    "missing_join_condition": 0.45,
    "inconsistent_alias": 0.25,
    "missing_group_by": 0.35,
    "unclosed_parenthesis": 0.8,
    "empty_in_clause": 0.7,
    "invalid_date_format": 0.5,
    "multiple_tables_no_join": 0.4,
    "order_by_without_limit": 0.2,
}
"""The process-reward recipe's eleven detectors and their severities (the registry holds these plus ``invalid_sql``)."""

INVALID_ISSUES = frozenset({"invalid_sql", "unclosed_parenthesis"})
"""Issues that make a SQL invalid (no execution possible), as opposed to merely suspect."""


__all__ = [
    "DETECTORS",
    "INVALID_ISSUES",
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

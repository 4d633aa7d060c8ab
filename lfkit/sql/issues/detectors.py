"""The built-in issue detectors: the process-reward recipe's eleven, then lfkit's ``invalid_sql``.

Each detector's severity is stated once, in its ``@register_detector`` line; each rule in its
docstring. They register in the order below, which is the order :func:`detect_issues` reports.
"""

from __future__ import annotations

import lfkit.sql.issues.helpers as h
from lfkit.sql.issues.parse import ParsedSQL, sqlglot_exp
from lfkit.sql.issues.registry import register_detector


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
    exp = sqlglot_exp()
    ctes = h.cte_names(p.tree)
    hits = []
    for select, limited in h.top_selects(p.tree):
        tables = [
            n for n, node, _ in h.sources_of(select) if isinstance(node, exp.Table) and h.lname(node.name) not in ctes
        ]
        if not tables or limited:
            continue
        if any(select.args.get(k) is not None for k in ("where", "group", "having", "limit")):
            continue
        if h.has_aggregate(select, select.expressions):
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
    m = h.TIME_WORDS.search(p.question)
    if not m:
        return None
    exp = sqlglot_exp()
    predicates = (exp.Between, exp.In, *(getattr(exp, c) for c in h.COMPARISONS if hasattr(exp, c)))
    for select in h.selects(p.tree):
        sources = h.sources_of(select)
        clauses = [select.args.get("where"), select.args.get("having")]
        clauses += [j.args.get("on") for j in select.args.get("joins") or []]
        for clause in clauses:
            if clause is None:
                continue
            for pred in clause.find_all(predicates):
                for node in pred.walk():
                    if isinstance(node, exp.Column) and h.is_time_column(node, sources, p.schema):
                        return None
                    if h.is_time_function(node):
                        return None
                    if isinstance(node, exp.Literal) and node.is_string and h.TIME_LITERAL.match(node.this.strip()):
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
    for select in h.selects(p.tree):
        sources = h.sources_of(select)
        for i, (name, _, join) in enumerate(sources):
            if join is None or join.args.get("on") is None:
                continue
            earlier = {s[0] for s in sources[:i]}
            pairs = h.links(join.args["on"], sources, p.schema)
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
    for select in h.selects(p.tree):
        for name, _, join in h.sources_of(select):
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
    exp = sqlglot_exp()
    hits = []
    for select in h.selects(p.tree):
        names = [s[0] for s in h.sources_of(select) if s[0]]
        dupes = sorted({n for n in names if names.count(n) > 1})
        hits.extend(f"{d!r} declared twice" for d in dupes)
    for col in p.tree.find_all(exp.Column):
        if not col.table:
            continue
        owner, visible = h.owner_of(col), set()
        scope = owner
        while scope is not None:
            visible.update(s[0] for s in h.sources_of(scope))
            scope = h.owner_of(scope)
        if owner is not None and h.lname(col.table) not in visible:
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
    exp = sqlglot_exp()
    hits = []
    for select in h.selects(p.tree):
        if select.args.get("group") is not None or not h.has_aggregate(select, select.expressions):
            continue
        bare = [
            c.sql("sqlite")
            for e in select.expressions
            for c in h.own_nodes(select, e, exp.Column)
            if not h.in_aggregate_or_window(c, select)
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
    exp = sqlglot_exp()
    bad = [
        lit.this
        for lit in p.tree.find_all(exp.Literal)
        if lit.is_string and h.DATE_SHAPE.match(lit.this.strip()) and not h.valid_iso(lit.this.strip())
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
    for select in h.selects(p.tree):
        sources = h.sources_of(select)
        if not any(j is not None and j.meta.get("comma") for _, _, j in sources):
            continue
        edges = [
            (name, sources[i - 1][0])
            for i, (name, _, join) in enumerate(sources)
            if join and not join.meta.get("comma")
        ]
        if select.args.get("where") is not None:
            edges += [tuple(pair) for pair in h.links(select.args["where"], sources, p.schema)]
        groups = h.components([s[0] for s in sources], edges)
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
    exp = sqlglot_exp()
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

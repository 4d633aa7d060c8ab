"""The complexity classifier: a SQL is simple (``"sql"``) or multi-step (``"多步推理"``).

Labels are those of the process-reward GRPO recipe's data files: ``"sql"`` for a simple query,
``"多步推理"`` ("multi-step reasoning") for the rest. A SQL is **multi-step** when it has any of

* two or more joins (explicit JOINs and comma-listed tables, counted over the whole query),
* a CTE (``WITH``),
* a set operation (UNION, INTERSECT, EXCEPT),
* a subquery (a SELECT nested in another: in FROM, WHERE, HAVING, the select list, EXISTS;
  a CTE body counts as a CTE only),
* a HAVING clause or a window function (aggregation over groups filtered or ranked in a
  second step);

otherwise it is **simple** (one table or one join, flat filters, plain aggregation).
A SQL that does not parse is judged on its sqlglot tokens (JOIN, WITH, UNION/INTERSECT/EXCEPT,
HAVING, OVER keywords and SELECT keywords beyond the first); one that does not even tokenize
is simple.

>>> classify_complexity("SELECT name FROM singer WHERE age > 30")
'sql'
>>> classify_complexity("SELECT a.x FROM a JOIN b ON a.id = b.id JOIN c ON b.id = c.id")
'多步推理'
>>> complexity_features("SELECT name FROM singer WHERE age > (SELECT AVG(age) FROM singer)").reasons
['1 subquery']
"""

from __future__ import annotations

from dataclasses import dataclass

from lfkit.sql.issues import ParsedSQL, parse_query

SIMPLE = "sql"
MULTI_STEP = "多步推理"
LABELS = (SIMPLE, MULTI_STEP)
ENGLISH = {SIMPLE: "simple", MULTI_STEP: "multi-step"}

LABEL_ALIASES = {
    "sql": SIMPLE,
    "simple": SIMPLE,
    "简单": SIMPLE,
    "简单sql": SIMPLE,
    "多步推理": MULTI_STEP,
    "多步": MULTI_STEP,
    "multi-step": MULTI_STEP,
    "multi_step": MULTI_STEP,
    "multistep": MULTI_STEP,
    "multi step": MULTI_STEP,
    "complex": MULTI_STEP,
}
"""Accepted spellings (compared stripped and lowercase) -> canonical label."""


def normalize_label(label: object) -> str | None:
    """The canonical label for ``label`` (see :data:`LABEL_ALIASES`), None when not a known label.

    >>> normalize_label(" Multi-Step "), normalize_label("SQL"), normalize_label("hard")
    ('多步推理', 'sql', None)
    """
    if not isinstance(label, str):
        return None
    return LABEL_ALIASES.get(" ".join(label.strip().lower().split()))


@dataclass(frozen=True)
class ComplexityFeatures:
    """What the classifier counts; ``parsed`` is False when the counts come from tokens."""

    joins: int = 0
    ctes: int = 0
    set_operations: int = 0
    subqueries: int = 0
    having: int = 0
    windows: int = 0
    parsed: bool = True

    @property
    def reasons(self) -> list[str]:
        """Why the SQL is multi-step (empty when simple)."""
        out = []
        if self.joins >= 2:
            out.append(f"{self.joins} joins")
        for count, word in (
            (self.ctes, "CTE"),
            (self.set_operations, "set operation"),
            (self.subqueries, "subquery"),
            (self.having, "HAVING"),
            (self.windows, "window function"),
        ):
            if count:
                plural = "subqueries" if word == "subquery" else word + "s"
                out.append(f"{count} {word if count == 1 else plural}")
        return out

    @property
    def label(self) -> str:
        return MULTI_STEP if self.reasons else SIMPLE


def complexity_features(sql: str | None, *, parsed: ParsedSQL | None = None) -> ComplexityFeatures:
    """Count the multi-step features of ``sql`` (see the module docstring); never raises.

    ``parsed``: :func:`lfkit.sql.issues.parse_query` of ``sql`` when the caller has it already.
    """
    from sqlglot import exp
    from sqlglot.tokens import TokenType

    if parsed is None:
        parsed = parse_query(sql)
    tree = parsed.tree
    if tree is not None:
        selects = list(tree.find_all(exp.Select))
        return ComplexityFeatures(
            joins=sum(1 for _ in tree.find_all(exp.Join)),
            ctes=sum(1 for _ in tree.find_all(exp.CTE)),
            set_operations=sum(1 for _ in tree.find_all(exp.SetOperation)),
            subqueries=sum(
                1 for s in selects if s.find_ancestor(exp.Select) is not None and not isinstance(s.parent, exp.CTE)
            ),
            having=sum(1 for s in selects if s.args.get("having") is not None),
            windows=sum(1 for _ in tree.find_all(exp.Window)),
        )
    tokens = parsed.tokens or []

    def count(*types: TokenType) -> int:
        return sum(1 for t in tokens if t.token_type in types)

    set_ops = count(TokenType.UNION, TokenType.INTERSECT, TokenType.EXCEPT)
    return ComplexityFeatures(
        joins=count(TokenType.JOIN),
        ctes=min(count(TokenType.WITH), 1),
        set_operations=set_ops,
        subqueries=max(count(TokenType.SELECT) - 1 - set_ops, 0),
        having=count(TokenType.HAVING),
        windows=count(TokenType.OVER),
        parsed=False,
    )


def classify_complexity(sql: str | None, english: bool = False) -> str:
    """``"sql"`` (simple) or ``"多步推理"`` (multi-step); ``english=True``: ``"simple"`` / ``"multi-step"``.

    >>> classify_complexity("WITH t AS (SELECT 1 AS x) SELECT x FROM t", english=True)
    'multi-step'
    >>> classify_complexity("SELECT a FROM t UNION SELECT a FROM u JOIN (")  # unparsable: tokens
    '多步推理'
    """
    label = complexity_features(sql).label
    return ENGLISH[label] if english else label


__all__ = [
    "ENGLISH",
    "LABELS",
    "LABEL_ALIASES",
    "MULTI_STEP",
    "SIMPLE",
    "ComplexityFeatures",
    "classify_complexity",
    "complexity_features",
    "normalize_label",
]

"""The one labelling step: model completion -> SQL -> executed against gold -> label.

Every stage that judges sampled answers (preference data, revision trees, best-of-N, the
GRPO execution reward) calls :func:`label_candidates`; none compares results itself, so
they can never disagree about "correct". Execution and comparison are the
:class:`~lfkit.sql.Verifier`'s: each gold query runs once per call (and is cached), and
candidates with the same normalised SQL on the same database run once.

Labels (:data:`LABELS`), decided in this order:

* ``malformed`` -- the completion fails the caller's form check (e.g. no ``<think>`` reasoning);
* ``no_sql``    -- nothing could be extracted;
* ``correct``   -- its result matches gold's under the Verifier's comparison;
* ``wrong``     -- it ran, the result differs;
* ``timeout``   -- it ran out of time;
* ``error``     -- it failed to run (or returned more rows than the cap).

Only :data:`REJECT_KINDS` labels may become a rejected answer (:data:`REJECTABLE` by default).

>>> import sqlite3, tempfile, pathlib
>>> from lfkit.sql import Verifier
>>> from types import SimpleNamespace
>>> db = pathlib.Path(tempfile.mkdtemp()) / "t.sqlite"
>>> with sqlite3.connect(db) as con:
...     _ = con.execute("CREATE TABLE t (a INTEGER)")
...     _ = con.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
>>> q = SimpleNamespace(db_path=db, gold_sql="SELECT a FROM t WHERE a > 1")
>>> texts = ["```sql\\nSELECT a FROM t WHERE a >= 2\\n```", "```sql\\nSELECT a FROM t\\n```",
...          "```sql\\nSELECT b FROM t\\n```", "I do not know."]
>>> with Verifier(workers=0) as v:
...     [c.label for c in label_candidates([q], [texts], v)[0]]
['correct', 'wrong', 'error', 'no_sql']
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from lfkit.errors import LfkitError
from lfkit.sql.extract import extract_sql

if TYPE_CHECKING:
    from lfkit.sql.verify import Verdict, Verifier

LABELS = ("correct", "wrong", "error", "timeout", "no_sql", "malformed")


class RejectKindError(LfkitError, ValueError):
    """A reject kind that is not one of :data:`REJECT_KINDS`."""


@dataclass(frozen=True)
class RejectKind:
    """A label a rejected answer may have: whether it is rejected by default, and what it means."""

    name: str
    default: bool
    help: str


REJECT_KINDS: dict[str, RejectKind] = {
    k.name: k
    for k in (
        RejectKind("wrong", True, "it ran and the result differs from gold's"),
        RejectKind("error", True, "it failed to run"),
        RejectKind("timeout", True, "it ran out of time"),
        # off by default: such pairs teach the answer format, not SQL
        RejectKind("no_sql", False, "nothing could be extracted; rejected as its raw text"),
    )
}
"""The one list of reject kinds (every other spelling is derived from it): the labels a rejected
answer may have, in this order. ``correct`` and ``malformed`` are never rejected."""

REJECTABLE = frozenset(name for name, kind in REJECT_KINDS.items() if kind.default)
"""The reject kinds used when none are named."""


def parse_reject_kinds(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """``"wrong,error"`` (or a list) -> ``("wrong", "error")``; ``None``/empty -> ``None`` (the default set).

    >>> parse_reject_kinds("wrong, no_sql")
    ('wrong', 'no_sql')
    >>> parse_reject_kinds("wrong,correct")
    Traceback (most recent call last):
    ...
    lfkit.sql.label.RejectKindError: reject kind 'correct' is not one of wrong, error, timeout, no_sql
    """
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    kinds = tuple(dict.fromkeys(k.strip() for k in parts if k.strip()))
    for kind in kinds:
        if kind not in REJECT_KINDS:
            raise RejectKindError(f"reject kind {kind!r} is not one of {', '.join(REJECT_KINDS)}")
    return kinds or None


class GoldQuestion(Protocol):
    """What labelling needs of a question (``lfkit.data.rows.Question`` has it)."""

    @property
    def db_path(self) -> str | os.PathLike[str] | None: ...

    @property
    def gold_sql(self) -> str: ...


@dataclass
class Candidate:
    """One labelled completion.

    ``status`` is the candidate's execution status (``ok | error | timeout | too_many_rows``;
    ``error`` when there was no SQL to run) and ``gold_status`` the gold query's: a question
    whose gold is not ``ok`` cannot be labelled and should be skipped by callers.
    ``rows`` is how many rows the candidate returned (0 unless ``ok``).
    """

    text: str
    sql: str
    label: str
    status: str
    gold_status: str = "ok"
    error: str | None = None
    elapsed: float = 0.0
    rows: int = 0


def label_of(verdict: Verdict, sql: str) -> str:
    """The execution label of a candidate with SQL ``sql`` (``no_sql`` when it is empty)."""
    if not sql:
        return "no_sql"
    if verdict.correct:
        return "correct"
    if verdict.status == "ok":
        return "wrong"
    return "timeout" if verdict.status == "timeout" else "error"


def label_candidates(
    questions: Sequence[GoldQuestion],
    texts: Sequence[Sequence[str]],
    verifier: Verifier,
    extract: Callable[[str], str] = extract_sql,
    *,
    well_formed: Callable[[str], bool] | None = None,
) -> list[list[Candidate]]:
    """Label ``texts[i]`` (the completions for ``questions[i]``) against that question's gold.

    ``extract`` reads the SQL of a completion ("" when none). ``well_formed``, when given,
    labels the completions it rejects ``malformed`` (their SQL is still extracted and run,
    so ``status`` stays informative). All executions of the call go to the verifier at once.
    """
    if len(questions) != len(texts):
        raise ValueError(f"label_candidates: {len(questions)} questions but {len(texts)} lists of completions")
    sqls: list[list[str]] = []
    checks = []
    for q, outs in zip(questions, texts, strict=True):
        if q.db_path is None:
            raise ValueError(f"label_candidates: question with gold {q.gold_sql!r} has no database path")
        sqls.append([extract(t) for t in outs])
        checks += [(q.db_path, q.gold_sql, sql) for sql in sqls[-1]]
    verdicts = iter(verifier.verify(checks))
    out: list[list[Candidate]] = []
    for outs, q_sqls in zip(texts, sqls, strict=True):
        cands = []
        for text, sql in zip(outs, q_sqls, strict=True):
            v = next(verdicts)
            malformed = well_formed is not None and not well_formed(text)
            cands.append(
                Candidate(
                    text=text,
                    sql=sql,
                    label="malformed" if malformed else label_of(v, sql),
                    status=v.status,
                    gold_status=v.gold.status,
                    error=v.pred.error,
                    elapsed=v.pred.elapsed,
                    rows=len(v.pred.rows),
                )
            )
        out.append(cands)
    return out


__all__ = [
    "LABELS",
    "REJECTABLE",
    "REJECT_KINDS",
    "Candidate",
    "GoldQuestion",
    "RejectKind",
    "RejectKindError",
    "label_candidates",
    "label_of",
    "parse_reject_kinds",
]

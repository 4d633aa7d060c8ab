"""The execution reward (SQL-R1 / Arctic-Text2SQL-R1 rule), with TRL's reward-function signature.

Per completion: **1.0** when its SQL's result matches the gold SQL's result under the
Verifier's comparison (``bird`` by default: set equality of rows), **0.1** when it executes
but does not match, **0.0** otherwise: no SQL extracted, an error, a write (denied by the
sandbox, so an error), a timeout (the Verifier's ``timeout``), too many rows, a gold SQL that
does not execute itself, or a dataset row without ``db_path`` / ``gold_sql``.

Labels come from :func:`lfkit.sql.label.label_candidates`, the one labelling step (``correct``
-> 1.0, ``wrong`` -> 0.1, anything else -> 0.0): nothing here compares results itself.
Execution goes through one :class:`lfkit.sql.verify.Verifier` held for the whole run: its
result cache is keyed by (database, normalised SQL), so each question's gold SQL runs once for
the whole training run (while it stays among the cache's most recent entries, 100,000 by
default) and identical candidates among a group's generations run once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lfkit.reward.registry import register_reward
from lfkit.reward.text import answer_sql, completion_text
from lfkit.reward.text import column_values as _column
from lfkit.sql.label import Candidate, label_candidates
from lfkit.sql.verify import Verifier

CORRECT = 1.0
EXECUTES = 0.1
FAILS = 0.0
DEFAULT_REWARD_TIMEOUT = 10.0
"""Seconds a candidate may run before it scores 0 (the Verifier's default is 30 s, too long
to hold up a GRPO step)."""


def execution_score(candidate: Candidate, correct: float = CORRECT, executes: float = EXECUTES) -> float:
    """The reward of one labelled :class:`~lfkit.sql.label.Candidate`: ``correct`` for label
    ``correct``, ``executes`` for ``wrong`` (it ran, the result differs), 0.0 for every other
    label or when gold itself did not run (``gold_status`` not ``ok``).

    >>> from lfkit.sql.label import Candidate
    >>> [execution_score(Candidate("", "SELECT 1", label, "ok")) for label in ("correct", "wrong", "error")]
    [1.0, 0.1, 0.0]
    >>> execution_score(Candidate("", "SELECT 1", "wrong", "ok", gold_status="error"))
    0.0
    """
    if candidate.gold_status != "ok":
        return FAILS
    if candidate.label == "correct":
        return correct
    return executes if candidate.label == "wrong" else FAILS


@dataclass(frozen=True)
class _Gold:
    """One (database, gold SQL) pair: a :class:`~lfkit.sql.label.GoldQuestion`."""

    db_path: str
    gold_sql: str


def _same(text: str) -> str:
    return text  # the SQL is already extracted (cached, shared with the process rewards)


class ExecutionReward:
    """Callable reward ``execution(prompts, completions, db_path=[...], gold_sql=[...]) -> list[float]``.

    ``verifier``: the Verifier to use (the caller keeps ownership); None creates one on first
    call with ``verifier_kwargs`` (``timeout`` defaults to :data:`DEFAULT_REWARD_TIMEOUT`),
    closed by :meth:`close`. ``correct`` / ``executes``: the two non-zero reward values.

    >>> import sqlite3, tempfile, os
    >>> db = os.path.join(tempfile.mkdtemp(), "t.sqlite")
    >>> with sqlite3.connect(db) as c:
    ...     _ = c.execute("CREATE TABLE t (a INTEGER)"); _ = c.execute("INSERT INTO t VALUES (1), (2)")
    >>> reward = ExecutionReward(workers=0)
    >>> delete = "```sql\\nDELETE FROM t\\n```"  # extracted verbatim, denied by the sandbox
    >>> reward(None, ["<answer>SELECT a FROM t</answer>", "SELECT a FROM t WHERE a = 1", delete, ""],
    ...        db_path=[db] * 4, gold_sql=["SELECT a FROM t ORDER BY a"] * 4)
    [1.0, 0.1, 0.0, 0.0]
    >>> reward.verifier.stats["executed"]  # gold once, each distinct candidate once
    4
    >>> reward.close()
    """

    __name__ = "execution"

    def __init__(
        self,
        verifier: Verifier | None = None,
        *,
        correct: float = CORRECT,
        executes: float = EXECUTES,
        **verifier_kwargs: Any,
    ) -> None:
        if verifier is not None and verifier_kwargs:
            raise TypeError(f"pass either a verifier or Verifier arguments, not both: {sorted(verifier_kwargs)}")
        self.__name__ = "execution"
        self.correct = float(correct)
        self.executes = float(executes)
        self._verifier = verifier
        self._owns_verifier = verifier is None
        self._verifier_kwargs = {"timeout": DEFAULT_REWARD_TIMEOUT, **verifier_kwargs}

    @property
    def verifier(self) -> Verifier:
        if self._verifier is None:
            self._verifier = Verifier(**self._verifier_kwargs)
        return self._verifier

    def __call__(self, prompts: Sequence[Any] | None, completions: Sequence[Any], **columns: Any) -> list[float]:
        n = len(completions)
        sqls = [answer_sql(completion_text(c)) for c in completions]
        return self.score(_column(columns, ("db_path",), n), _column(columns, ("gold_sql",), n), sqls)

    def score(self, db_paths: Sequence[Any], gold_sqls: Sequence[Any], sqls: Sequence[str]) -> list[float]:
        """Rewards for extracted SQL ``sqls`` against ``gold_sqls`` on ``db_paths`` (aligned lists).

        Rows missing a database, a gold SQL or a candidate SQL score 0 without running
        anything; the rest are labelled by :func:`lfkit.sql.label.label_candidates` (the one
        labelling step, one Verifier call per batch) and scored by :func:`execution_score`.
        """
        rewards = [FAILS] * len(sqls)
        todo = [
            i
            for i, (db, gold, sql) in enumerate(zip(db_paths, gold_sqls, sqls, strict=True))
            if isinstance(db, str | os.PathLike) and str(db) and isinstance(gold, str) and gold.strip() and sql
        ]
        if not todo:
            return rewards
        # The one labelling step (lfkit.sql.label): completions grouped by their (db, gold) pair,
        # one Verifier call for the batch; the Verifier's cache runs each gold once per run.
        groups: dict[_Gold, list[int]] = {}
        for i in todo:
            groups.setdefault(_Gold(str(db_paths[i]), gold_sqls[i]), []).append(i)
        golds = list(groups)
        labelled = label_candidates(golds, [[sqls[i] for i in groups[g]] for g in golds], self.verifier, _same)
        for g, candidates in zip(golds, labelled, strict=True):
            for i, candidate in zip(groups[g], candidates, strict=True):
                rewards[i] = execution_score(candidate, self.correct, self.executes)
        return rewards

    def close(self) -> None:
        """Close the Verifier this reward created (one passed in is left to its owner)."""
        if self._owns_verifier and self._verifier is not None:
            self._verifier.close()
            self._verifier = None

    def __repr__(self) -> str:
        return f"ExecutionReward(correct={self.correct}, executes={self.executes}, verifier={self._verifier!r})"


execution_reward = register_reward("execution", import_path=f"{__name__}.execution_reward")(ExecutionReward())
"""A module-level instance for configs that name reward functions by import path
(``lfkit.reward.execution.execution_reward``); its Verifier (every core, 10 s timeout) starts
on first call."""

__all__ = ["CORRECT", "DEFAULT_REWARD_TIMEOUT", "EXECUTES", "ExecutionReward", "execution_reward", "execution_score"]

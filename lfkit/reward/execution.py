"""The execution reward (SQL-R1 / Arctic-Text2SQL-R1 rule), with TRL's reward-function signature.

Per completion: **1.0** when its SQL's result matches the gold SQL's result under the
Verifier's comparison (``bird`` by default: set equality of rows), **0.1** when it executes
but does not match, **0.0** otherwise: no SQL extracted, an error, a write (denied by the
sandbox, so an error), a timeout (the Verifier's ``timeout``), too many rows, a gold SQL that
does not execute itself, or a dataset row without ``db_path`` / ``gold_sql``.

Execution goes through one :class:`lfkit.sql.verify.Verifier` held for the whole run: its
result cache is keyed by (database, normalised SQL), so each question's gold SQL runs once for
the whole training run (while it stays among the cache's most recent entries, 100,000 by
default) and identical candidates among a group's generations run once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from lfkit.reward.process import _column, answer_sql, completion_text
from lfkit.sql.verify import Verdict, Verifier

CORRECT = 1.0
EXECUTES = 0.1
FAILS = 0.0
DEFAULT_REWARD_TIMEOUT = 10.0
"""Seconds a candidate may run before it scores 0 (the Verifier's default is 30 s, too long
to hold up a GRPO step)."""


def execution_score(verdict: Verdict, correct: float = CORRECT, executes: float = EXECUTES) -> float:
    """The reward of one :class:`Verdict`: ``correct`` when it matches, ``executes`` when the
    candidate ran (status ``ok``) without matching, 0.0 otherwise or when gold did not run."""
    if not verdict.gold.ok:
        return FAILS
    if verdict.correct:
        return correct
    return executes if verdict.status == "ok" else FAILS


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

        The one place that executes: rows missing a database, a gold SQL or a candidate SQL
        score 0 without running anything; the rest are verified in one batch.
        """
        rewards = [FAILS] * len(sqls)
        todo = [
            i
            for i, (db, gold, sql) in enumerate(zip(db_paths, gold_sqls, sqls, strict=True))
            if isinstance(db, str | os.PathLike) and str(db) and isinstance(gold, str) and gold.strip() and sql
        ]
        if not todo:
            return rewards
        verdicts = self.verifier.verify([(db_paths[i], gold_sqls[i], sqls[i]) for i in todo])
        for i, verdict in zip(todo, verdicts, strict=True):
            rewards[i] = execution_score(verdict, self.correct, self.executes)
        return rewards

    def close(self) -> None:
        """Close the Verifier this reward created (one passed in is left to its owner)."""
        if self._owns_verifier and self._verifier is not None:
            self._verifier.close()
            self._verifier = None

    def __repr__(self) -> str:
        return f"ExecutionReward(correct={self.correct}, executes={self.executes}, verifier={self._verifier!r})"


execution_reward = ExecutionReward()
"""A module-level instance for configs that name reward functions by import path
(``lfkit.reward.execution.execution_reward``); its Verifier (every core, 10 s timeout) starts
on first call."""

__all__ = ["CORRECT", "DEFAULT_REWARD_TIMEOUT", "EXECUTES", "ExecutionReward", "execution_reward", "execution_score"]

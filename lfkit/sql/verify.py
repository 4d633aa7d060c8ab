"""Verifying candidates against gold at scale: process pool + result cache.

:class:`Verifier` is what every labelling stage uses (preference data, rewards, evaluation).
Results are cached by ``(resolved database path, exact SQL text)``: each gold query runs once
however many candidates are compared with it, and a text seen before never runs again.
Normalisation (:func:`~lfkit.sql.normalize.normalize_sql`, a sqlglot parse and generate) costs
more than executing a query on a small database, so it is spent only where it pays: on the
candidates of one question. In :meth:`Verifier.verify` a question is the items that share a
database and a gold text; when a question has two or more distinct candidate texts, its gold and
candidates are normalised too, and those that differ only in whitespace, keyword/identifier
case, comments or table-alias names run once. Scoring (one prediction per question) therefore
normalises nothing.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from lfkit.progress import progress_bar
from lfkit.sql.compare import check_comparison, results_match
from lfkit.sql.execute import DEFAULT_HEAP_LIMIT, DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT, ExecResult
from lfkit.sql.normalize import normalize_sql
from lfkit.sql.pool import ExecPool, _ConnectionCache, default_workers, run_query

DEFAULT_CACHE_ENTRIES = 100_000


@dataclass
class Verdict:
    """One candidate judged against gold: ``correct`` under the Verifier's comparison."""

    correct: bool
    status: str  # the candidate's ExecResult.status
    pred: ExecResult
    gold: ExecResult


class Verifier:
    """Execute and compare SQL through a worker pool with a result cache; a context manager.

    ``workers=None`` uses every available core, ``workers=0`` runs in this process (no pool).
    ``stats`` counts requested, executed and cached executions.

    >>> with Verifier(comparison="bird", timeout=10) as v:              # doctest: +SKIP
    ...     verdicts = v.verify([(db, gold_sql, cand) for cand in candidates])
    ...     [d.correct for d in verdicts]
    """

    def __init__(
        self,
        comparison: str = "bird",
        timeout: float = DEFAULT_TIMEOUT,
        max_rows: int = DEFAULT_MAX_ROWS,
        workers: int | None = None,
        *,
        heap_limit: int | None = DEFAULT_HEAP_LIMIT,
        memory_limit: int | None = None,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
    ) -> None:
        self.comparison = check_comparison(comparison)
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        if workers is not None and workers < 0:
            raise ValueError(f"workers must be >= 0 (0 = in-process), got {workers}")
        self.timeout = float(timeout)
        self.max_rows = int(max_rows)
        self.workers = default_workers() if workers is None else int(workers)
        self.heap_limit = heap_limit
        self.memory_limit = memory_limit
        self.cache_entries = cache_entries
        self._cache: OrderedDict[tuple[str, str], ExecResult] = OrderedDict()  # (db, exact SQL)
        self._norm_cache: OrderedDict[tuple[str, str], ExecResult] = OrderedDict()  # (db, normalised SQL)
        self._pool: ExecPool | None = None
        self._local: _ConnectionCache | None = None
        self.stats = {"requested": 0, "executed": 0, "cache_hits": 0}

    # -- execution -------------------------------------------------------------------------
    def _run(self, tasks: list[tuple[str, str]], advance) -> list[ExecResult]:
        if self.workers == 0:
            if self._local is None:
                from lfkit.sql.execute import set_heap_limit

                set_heap_limit(self.heap_limit)
                self._local = _ConnectionCache()
            out = []
            for db, sql in tasks:
                out.append(run_query(self._local, db, sql, self.timeout, self.max_rows))
                advance()
            return out
        if self._pool is None:
            self._pool = ExecPool(
                self.workers,
                timeout=self.timeout,
                max_rows=self.max_rows,
                heap_limit=self.heap_limit,
                memory_limit=self.memory_limit,
            )
        return self._pool.run(tasks, on_result=lambda i, r: advance())

    def execute_many(
        self,
        items: Sequence[tuple[str | os.PathLike[str], str]],
        progress: bool = False,
        *,
        normalize: bool = False,
    ) -> list[ExecResult]:
        """Execute ``(db_path, sql)`` items; each distinct (database, SQL text) runs at most once.

        With ``normalize=True`` texts that are equal after :func:`normalize_sql` (whitespace,
        case, comments, alias names) also share one execution; worth its cost (a sqlglot parse
        and generate per distinct text) only when many spellings of few queries come together.
        """
        return self._execute(items, [normalize] * len(items), progress)

    def _execute(
        self, items: Sequence[tuple[str | os.PathLike[str], str]], normalize: Sequence[bool], progress: bool
    ) -> list[ExecResult]:
        resolved: dict[object, str] = {}  # Path.resolve() costs syscalls: once per database per batch

        def exact_key(db: str | os.PathLike[str], sql: str) -> tuple[str, str]:
            path = resolved.get(db)
            if path is None:
                path = resolved[db] = str(Path(db).resolve())
            return (path, sql if isinstance(sql, str) else "")

        keys = [exact_key(db, sql) for db, sql in items]
        self.stats["requested"] += len(keys)
        flagged: dict[tuple[str, str], bool] = {}  # distinct exact keys, first appearance first
        for key, norm in zip(keys, normalize, strict=True):
            flagged[key] = flagged.get(key, False) or norm

        found: dict[tuple[str, str], ExecResult] = {}
        todo: dict[tuple[str, str, str], tuple[str, str]] = {}  # ("x"|"n", db, text) -> (db, sql) to run
        waiting: dict[tuple[str, str], tuple[str, str, str]] = {}  # exact key -> its entry in todo
        norm_keys: dict[tuple[str, str], tuple[str, str]] = {}  # exact key -> (db, normalised) to store
        for key, norm in flagged.items():
            db, sql = key
            if not sql.strip():
                found[key] = ExecResult("error", error="empty SQL (nothing was extracted)")
                continue
            nkey = (db, normalize_sql(sql)) if norm else None
            cached = self._cache.get(key)
            if cached is None and nkey is not None:
                cached = self._norm_cache.get(nkey)
            if cached is not None:
                found[key] = cached
                self._store(self._cache, key, cached)
                if nkey is not None:
                    self._store(self._norm_cache, nkey, cached)  # later spellings of it hit too
                continue
            # the first spelling seen is the one executed; other spellings wait for its result
            task = ("n", *nkey) if nkey is not None else ("x", *key)
            todo.setdefault(task, key)
            waiting[key] = task
            if nkey is not None:
                norm_keys[key] = nkey
        self.stats["executed"] += len(todo)
        self.stats["cache_hits"] = self.stats["requested"] - self.stats["executed"]
        if todo:
            # a batch that finishes within a second shows no bar (and does not import rich)
            with progress_bar("executing SQL", len(todo), enabled=progress, delay=1.0, transient=False) as bar:
                results = dict(zip(todo, self._run(list(todo.values()), bar.advance), strict=True))
            for key, task in waiting.items():
                found[key] = results[task]
                self._store(self._cache, key, found[key])
                if key in norm_keys:
                    self._store(self._norm_cache, norm_keys[key], found[key])
        return [found[key] for key in keys]

    def _store(self, cache: OrderedDict, key: tuple[str, str], result: ExecResult) -> None:
        cache[key] = result
        cache.move_to_end(key)
        while len(cache) > self.cache_entries:
            cache.popitem(last=False)

    # -- verification ----------------------------------------------------------------------
    def verify(
        self,
        items: Sequence[tuple[str | os.PathLike[str], str, str]],
        progress: bool = False,
        *,
        normalize: bool | None = None,
    ) -> list[Verdict]:
        """Judge ``(db_path, gold_sql, candidate_sql)`` items; gold and candidates share the cache.

        ``normalize=None``: items with the same database and gold text are one question; a
        question with two or more distinct candidate texts has its gold and candidates normalised
        for dedup (see the module docstring). ``False``: exact texts only (scoring: one prediction
        per question, where equal gold texts belong to different questions); ``True``: every text.
        """
        if normalize is None:
            candidates: dict[tuple[str, str], set[str]] = {}
            for db, gold_sql, cand_sql in items:
                key = (os.fspath(db), str(gold_sql))
                candidates.setdefault(key, set()).add(cand_sql if isinstance(cand_sql, str) else "")
            flags = [len(candidates[os.fspath(db), str(gold_sql)]) > 1 for db, gold_sql, _ in items]
        else:
            flags = [normalize] * len(items)
        flat: list[tuple[str | os.PathLike[str], str]] = []
        for db, gold_sql, cand_sql in items:
            flat += [(db, gold_sql), (db, cand_sql)]
        normalize_flat = [flag for flag in flags for _ in (0, 1)]
        results = self._execute(flat, normalize_flat, progress)
        verdicts = []
        for i, (_, gold_sql, _) in enumerate(items):
            gold, pred = results[2 * i], results[2 * i + 1]
            correct = results_match(pred, gold, self.comparison, gold_sql=gold_sql)
            verdicts.append(Verdict(correct=correct, status=pred.status, pred=pred, gold=gold))
        return verdicts

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._local is not None:
            self._local.close()
            self._local = None

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # best effort: do not leave worker processes behind
        with suppress(Exception):
            self.close()


__all__ = ["Verdict", "Verifier"]

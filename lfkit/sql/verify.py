"""Verifying candidates against gold at scale: process pool + result cache.

:class:`Verifier` is what every labelling stage uses (preference data, rewards, evaluation).
Results are cached by ``(resolved database path, normalize_sql(sql))``: each gold query runs
once however many candidates are compared with it, and candidates that differ only in
whitespace, keyword/identifier case, comments or table-alias names run once.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

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


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator:
    """A rich progress bar on stderr; yields ``advance(n=1)``. Silent when disabled or total is 0."""
    if not enabled or total <= 0:
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


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
        self._cache: OrderedDict[tuple[str, str], ExecResult] = OrderedDict()
        self._pool: ExecPool | None = None
        self._local: _ConnectionCache | None = None
        self.stats = {"requested": 0, "executed": 0, "cache_hits": 0}

    # -- execution -------------------------------------------------------------------------
    @staticmethod
    def cache_key(db_path: str | os.PathLike[str], sql: str) -> tuple[str, str]:
        return (str(Path(db_path).resolve()), normalize_sql(sql) if isinstance(sql, str) else "")

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
        self, items: Sequence[tuple[str | os.PathLike[str], str]], progress: bool = False
    ) -> list[ExecResult]:
        """Execute ``(db_path, sql)`` items; each distinct (db, normalised SQL) runs at most once."""
        keys = [self.cache_key(db, sql) for db, sql in items]
        self.stats["requested"] += len(keys)
        batch: dict[tuple[str, str], ExecResult] = {}
        todo: dict[tuple[str, str], tuple[str, str]] = {}
        for key, (_, sql) in zip(keys, items, strict=True):
            if key in batch or key in todo:
                continue
            cached = self._cache.get(key)
            if cached is not None:
                batch[key] = cached
                self._cache.move_to_end(key)
            elif not isinstance(sql, str) or not sql.strip():
                batch[key] = ExecResult("error", error="empty SQL (nothing was extracted)")
            else:
                todo[key] = (key[0], sql)  # the first spelling seen is the one executed
        self.stats["executed"] += len(todo)
        self.stats["cache_hits"] = self.stats["requested"] - self.stats["executed"]
        if todo:
            with progress_bar(len(todo), "executing SQL", progress) as advance:
                results = self._run(list(todo.values()), advance)
            batch.update(zip(todo, results, strict=True))
        for key in todo:
            self._store(key, batch[key])
        return [batch[key] for key in keys]

    def _store(self, key: tuple[str, str], result: ExecResult) -> None:
        self._cache[key] = result
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_entries:
            self._cache.popitem(last=False)

    # -- verification ----------------------------------------------------------------------
    def verify(self, items: Sequence[tuple[str | os.PathLike[str], str, str]], progress: bool = False) -> list[Verdict]:
        """Judge ``(db_path, gold_sql, candidate_sql)`` items; gold and candidates share the cache."""
        flat: list[tuple[str | os.PathLike[str], str]] = []
        for db, gold_sql, cand_sql in items:
            flat.append((db, gold_sql))
            flat.append((db, cand_sql))
        results = self.execute_many(flat, progress=progress)
        verdicts = []
        for i, (_, gold_sql, _) in enumerate(items):
            gold, pred = results[2 * i], results[2 * i + 1]
            correct = results_match(pred, gold, self.comparison, gold_sql=gold_sql)
            verdicts.append(Verdict(correct=correct, status=pred.status, pred=pred, gold=gold))
        return verdicts

    def clear_cache(self) -> None:
        self._cache.clear()

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


__all__ = ["Verdict", "Verifier", "progress_bar"]

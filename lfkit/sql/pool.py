"""A small process pool for sandboxed SQL that survives dying workers.

``concurrent.futures.ProcessPoolExecutor`` marks the whole pool broken when one worker dies
(a segfault in an extension, the OOM killer, ``RLIMIT_AS``); here a dead worker is replaced,
its query is reported as an error and the batch goes on. Each worker keeps one read-only
connection per database file (reopened when the file changes) and runs one query at a time.

Workers are fresh interpreters (:func:`worker_command`, isolated from the working directory)
talking over a socket pair, not ``multiprocessing`` children: never ``fork`` (callers may have
torch or CUDA loaded), and
unlike ``spawn``/``forkserver`` the caller's ``__main__`` is never re-imported, so the pool works
from scripts without an ``if __name__ == "__main__"`` guard, notebooks and pytest alike.
A worker sets SQLite's heap limit and an ``RLIMIT_AS`` backstop for its own process only.
A query still running well past its timeout
(stuck outside SQLite's progress handler) gets its worker killed and is reported as a timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

from lfkit.sql.execute import (
    DEFAULT_HEAP_LIMIT,
    DEFAULT_MAX_ROWS,
    DEFAULT_TIMEOUT,
    ExecResult,
    SandboxConnection,
    set_heap_limit,
)

# Connections a worker keeps open (least recently used are closed first).
MAX_OPEN_DATABASES = 64
# Tasks sent to one worker ahead of its answers while plenty are pending: the worker starts the
# next query without waiting for a round trip through the parent (on small databases the round
# trip costs as much as the query).
PIPELINE_DEPTH = 2


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS / Windows
        return max(1, os.cpu_count() or 1)


class _ConnectionCache:
    """Per-process read-only connections, one per database file."""

    def __init__(self, limit: int = MAX_OPEN_DATABASES) -> None:
        self.limit = limit
        self.conns: dict[str, SandboxConnection] = {}

    def get(self, db_path: str) -> SandboxConnection:
        conn = self.conns.pop(db_path, None)
        if conn is not None and not conn.is_current():
            conn.close()
            conn = None
        if conn is None:
            conn = SandboxConnection(db_path)
            while len(self.conns) >= self.limit:
                self.conns.pop(next(iter(self.conns))).close()
        self.conns[db_path] = conn  # re-insert: most recently used last
        return conn

    def drop(self, db_path: str) -> None:
        conn = self.conns.pop(db_path, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()
        self.conns.clear()


def run_query(cache: _ConnectionCache, db_path: str, sql: str, timeout: float, max_rows: int) -> ExecResult:
    """Execute on a cached sandbox connection; used by workers and by the in-process mode."""
    start = time.monotonic()
    try:
        conn = cache.get(db_path)
    except Exception as exc:  # FileNotFoundError, sqlite3.Error
        return ExecResult("error", elapsed=time.monotonic() - start, error=f"cannot open database: {exc}")
    result = conn.execute(sql, timeout=timeout, max_rows=max_rows)
    if result.error and "out of memory" in result.error:
        cache.drop(db_path)  # SQLite may leave a connection unusable after NOMEM
    return result


def _worker_main(conn: Connection, timeout: float, max_rows: int, heap_limit: int | None, as_limit: int | None) -> None:
    if as_limit:
        import resource

        try:
            _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            if hard == resource.RLIM_INFINITY or as_limit < hard:
                resource.setrlimit(resource.RLIMIT_AS, (as_limit, hard))
        except (ValueError, OSError):
            pass  # not supported here; SQLite's heap limit still applies
    set_heap_limit(heap_limit)
    cache = _ConnectionCache()
    try:
        while True:
            try:
                task = conn.recv()
            except (EOFError, OSError):
                return  # the parent went away
            if task is None:
                return
            task_id, db_path, sql = task
            try:
                result = run_query(cache, db_path, sql, timeout, max_rows)
            except MemoryError:
                result = ExecResult("error", error="out of memory (worker memory limit reached)")
            try:
                conn.send((task_id, result))
            except MemoryError:
                conn.send((task_id, ExecResult("error", error="out of memory while returning the result")))
    finally:
        cache.close()


def _worker_cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="lfkit SQL worker", description="lfkit SQL worker (internal)")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--max-rows", type=int, required=True)
    parser.add_argument("--heap-limit", type=int, default=0)
    parser.add_argument("--as-limit", type=int, default=0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which closes the pool
    _worker_main(Connection(args.fd), args.timeout, args.max_rows, args.heap_limit or None, args.as_limit or None)
    # Connections are closed and nothing is buffered: skip the interpreter's teardown, which the
    # parent would otherwise wait for in ExecPool.close().
    os._exit(0)


def worker_command() -> list[str]:
    """The interpreter command line of a pool worker (its options follow).

    ``-I``: isolated mode puts neither the working directory nor $PYTHONPATH on the import path,
    so a ``select.py`` or ``inspect.py`` in the folder lfkit runs from cannot replace the
    standard library's in a worker (it did: every query failed and every score read 0).
    ``-S``: no site, hence no .pth files: the worker needs only the standard library and this
    lfkit, and starts tens of milliseconds sooner. The folder that holds this very ``lfkit``
    package (a source checkout, an editable install's project or site-packages) is appended
    after the standard library, so nothing in it can shadow a standard module either, and the
    worker imports the same lfkit as its caller even when that was put on sys.path by hand.
    """
    root = str(Path(__file__).resolve().parents[2])
    code = f"import sys; sys.path.append({root!r}); from lfkit.sql.pool import _worker_cli; _worker_cli()"
    return [sys.executable, "-I", "-S", "-c", code]


@dataclass
class _Worker:
    process: subprocess.Popen
    conn: Connection
    # tasks sent and not answered yet, in order; the first is running, the others wait in the socket
    tasks: deque[tuple[int, str, str]] = field(default_factory=deque)
    started: float = 0.0  # when the first of ``tasks`` started running


class ExecPool:
    """Run ``(db_path, sql)`` tasks over worker processes; see the module docstring.

    >>> with ExecPool(workers=2, timeout=5) as pool:                      # doctest: +SKIP
    ...     pool.run([("db.sqlite", "SELECT 1"), ("db.sqlite", "SELECT 2")])
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_rows: int = DEFAULT_MAX_ROWS,
        heap_limit: int | None = DEFAULT_HEAP_LIMIT,
        memory_limit: int | None = None,
        kill_grace: float | None = None,
    ) -> None:
        self.n_workers = default_workers() if workers is None else int(workers)
        if self.n_workers < 1:
            raise ValueError(f"ExecPool needs at least one worker, got {workers}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.timeout = float(timeout)
        self.max_rows = int(max_rows)
        self.heap_limit = heap_limit
        # Address-space backstop: SQLite's heap plus room for Python, the rows and the libraries.
        if memory_limit is None:
            memory_limit = 2 * (heap_limit or DEFAULT_HEAP_LIMIT) + (1 << 30)
        self.memory_limit = memory_limit
        # A query still running this long after its timeout is stuck outside SQLite: kill the worker.
        self.kill_grace = kill_grace if kill_grace is not None else max(5.0, self.timeout)
        self._workers: list[_Worker] = []
        self.replaced = 0  # workers that died or were killed and were replaced

    def _spawn(self) -> _Worker:
        parent, child = socket.socketpair()
        cmd = [
            *worker_command(),
            f"--fd={child.fileno()}",
            f"--timeout={self.timeout!r}",
            f"--max-rows={self.max_rows}",
            f"--heap-limit={self.heap_limit or 0}",
            f"--as-limit={self.memory_limit or 0}",
        ]
        try:
            process = subprocess.Popen(
                cmd, pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, start_new_session=True
            )
        finally:
            child.close()
        return _Worker(process, Connection(parent.detach()))

    def _ensure_started(self, needed: int) -> None:
        """Start workers up to ``min(needed, n_workers)``: never more processes than tasks."""
        while len(self._workers) < min(needed, self.n_workers):
            self._workers.append(self._spawn())

    def _replace(self, worker: _Worker) -> _Worker:
        self._kill(worker)
        new = self._workers[self._workers.index(worker)] = self._spawn()
        self.replaced += 1
        return new

    @staticmethod
    def _kill(worker: _Worker) -> None:
        if worker.process.poll() is None:
            worker.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(timeout=5)
        worker.conn.close()

    def worker_pids(self) -> dict[int, int | None]:
        """``{pid: running task index or None}`` for the live workers (for monitoring and tests)."""
        return {w.process.pid: (w.tasks[0][0] if w.tasks else None) for w in self._workers}

    def run(
        self,
        tasks: Sequence[tuple[str | os.PathLike[str], str]],
        on_result: Callable[[int, ExecResult], None] | None = None,
    ) -> list[ExecResult]:
        """Execute every task; results come back in task order. ``on_result(i, result)`` as each finishes.

        A worker gets a second task before answering the first only while more tasks are
        pending than there are workers, so the last tasks never queue behind a slow query.
        """
        results: list[ExecResult | None] = [None] * len(tasks)
        if not tasks:
            return []
        self._ensure_started(len(tasks))
        pending = deque((i, os.fspath(db), sql) for i, (db, sql) in enumerate(tasks))
        done = 0

        def finish(worker: _Worker, result: ExecResult) -> None:
            nonlocal done
            index = worker.tasks.popleft()[0]
            worker.started = time.monotonic()  # the next queued task (if any) starts now
            results[index] = result
            done += 1
            if on_result is not None:
                on_result(index, result)

        def lost(worker: _Worker, result: ExecResult) -> None:
            """The worker died or was killed: its running task gets ``result``, the queued ones go back."""
            queued = list(worker.tasks)[1:]
            finish(worker, result)
            worker.tasks.clear()
            pending.extendleft(reversed(queued))
            self._replace(worker)

        def feed(worker: _Worker) -> None:
            if worker.process.poll() is not None:
                if worker.tasks:
                    return  # died with tasks in flight: the wait below sees EOF and reports them
                worker = self._replace(worker)  # died while idle
            task = pending.popleft()
            try:
                worker.conn.send(task)
            except (BrokenPipeError, OSError):
                pending.appendleft(task)
                if not worker.tasks:  # died while idle: replace it, the task goes out again
                    self._replace(worker)
                return
            if not worker.tasks:
                worker.started = time.monotonic()
            worker.tasks.append(task)

        while done < len(tasks):
            for depth in range(1, PIPELINE_DEPTH + 1):
                for worker in list(self._workers):
                    if len(worker.tasks) < depth and pending and (depth == 1 or len(pending) > len(self._workers)):
                        feed(worker)
            busy = [w for w in self._workers if w.tasks]
            if not busy:
                continue
            now = time.monotonic()
            deadline = min(w.started + self.timeout + self.kill_grace for w in busy)
            # a worker that dies closes its end of the socket: its connection turns readable (EOF)
            ready = set(wait([w.conn for w in busy], max(0.0, deadline - now)))
            for worker in busy:
                if worker.conn in ready:
                    try:
                        while True:  # every answer already in the socket
                            _, result = worker.conn.recv()
                            finish(worker, result)
                            if not worker.tasks or not worker.conn.poll():
                                break
                    except (EOFError, OSError):  # died mid-query
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            worker.process.wait(timeout=1)
                        lost(worker, self._death_result(worker, worker.process.poll()))
                elif time.monotonic() > worker.started + self.timeout + self.kill_grace:
                    elapsed = time.monotonic() - worker.started
                    lost(worker, ExecResult("timeout", elapsed=elapsed, error=f"killed after {elapsed:.1f}s"))
        return results  # type: ignore[return-value]

    @staticmethod
    def _death_result(worker: _Worker, exitcode: int | None) -> ExecResult:
        elapsed = time.monotonic() - worker.started
        if exitcode is None:
            how = "connection lost"
        elif exitcode < 0:
            how = f"killed by signal {-exitcode}"
        else:
            how = f"exit code {exitcode}"
        return ExecResult("error", elapsed=elapsed, error=f"SQL worker process died ({how}) while running this query")

    def close(self) -> None:
        for worker in self._workers:
            with contextlib.suppress(BrokenPipeError, OSError):
                worker.conn.send(None)
        for worker in self._workers:
            try:
                worker.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.process.wait(timeout=2)
            worker.conn.close()
        self._workers = []

    def __enter__(self) -> ExecPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

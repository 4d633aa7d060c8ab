"""The SQL execution sandbox: every stage runs model-generated SQL through here.

Model SQL is hostile input. A query runs on a connection that is

* opened read-only (``file:...?mode=ro`` URI, so a missing file is an error, never created),
  with ``PRAGMA query_only`` and an authorizer that allows reading only: writes, schema
  changes, ATTACH/DETACH, transactions, writing pragmas and ``load_extension`` are denied;
* bounded in time by a progress handler that checks a deadline inside SQLite (the query is
  interrupted, no thread is left running), in rows by ``fetchmany`` with a cap
  (status ``too_many_rows``), and in memory by SQLite's heap limit with temp storage in
  memory (a sort or DISTINCT over a cartesian join fails with "out of memory" instead of
  filling RAM or /tmp).

``PRAGMA hard_heap_limit`` is process-wide in SQLite: :func:`execute_sql` lowers it to
``heap_limit`` when it is unset or higher, which caps every SQLite connection of the
process. Pool workers (:mod:`lfkit.sql.pool`) add an ``RLIMIT_AS`` as a backstop.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from lfkit.errors import LfkitError

STATUSES = ("ok", "error", "timeout", "too_many_rows")

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_ROWS = 10_000
DEFAULT_HEAP_LIMIT = 1 << 30  # bytes of SQLite heap per process
# Largest string/blob a query may build (randomblob(1e9), group_concat over a join, ...).
MAX_VALUE_BYTES = 16 << 20
MAX_SQL_CHARS = 1 << 20
# VM instructions between deadline checks: frequent enough for ~1 ms resolution,
# rare enough that the Python callback costs a few percent at most.
PROGRESS_STEPS = 4_000

# Pragmas that only report on the schema; everything else (writable_schema, journal_mode, ...)
# is denied because many pragmas change state even when they look like reads.
READONLY_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "collation_list",
        "function_list",
    }
)
DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"})

_ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, getattr(sqlite3, "SQLITE_RECURSIVE", 33)})


# The first 16 bytes of every SQLite 3 database file (https://www.sqlite.org/fileformat.html).
SQLITE_HEADER = b"SQLite format 3\x00"


class DatabaseFileError(LfkitError, ValueError):
    """A database file is not a usable SQLite database; the message names the file."""


def check_database_file(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` if it is a SQLite 3 file by its header; else raise :class:`DatabaseFileError`.

    SQLite itself opens a 0-byte file as an empty database and says "file is not a database"
    only at the first query, as a traceback deep inside a stage; a corpus database that is
    empty or is something else (a text file, an LFS pointer, HTML from a failed download)
    is refused here, with the file's name, before anything is built from it.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise DatabaseFileError(f"{path}: cannot read the database file: {exc.strerror or exc}") from exc
    if not head:
        raise DatabaseFileError(f"{path}: the database file is empty (0 bytes), not a SQLite database")
    if head != SQLITE_HEADER:
        raise DatabaseFileError(f"{path}: not a SQLite database (the file starts with {head[:16]!r})")
    return path


@dataclass(frozen=True)
class ExecResult:
    """The outcome of one query.

    ``rows`` holds the fetched rows (tuples of int/float/str/bytes/None) and is empty
    unless ``status == "ok"``; ``elapsed`` is seconds spent executing and fetching.
    """

    status: str
    rows: tuple[tuple, ...] = ()
    elapsed: float = 0.0
    error: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"ExecResult.status must be one of {STATUSES}, got {self.status!r}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _authorizer(action: int, arg1: str | None, arg2: str | None, db_name: str | None, source: str | None) -> int:
    if action in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        # arg2 is the function name
        return sqlite3.SQLITE_DENY if (arg2 or "").lower() in DENIED_FUNCTIONS else sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in READONLY_PRAGMAS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def set_heap_limit(limit: int | None) -> None:
    """Lower SQLite's process-wide hard heap limit to ``limit`` bytes (never raise it)."""
    if not limit:
        return
    conn = sqlite3.connect(":memory:")
    try:
        current = conn.execute("PRAGMA hard_heap_limit").fetchone()[0]
        if current == 0 or current > limit:
            conn.execute(f"PRAGMA hard_heap_limit={int(limit)}")
    finally:
        conn.close()


class SandboxConnection:
    """A read-only, bounded connection to one SQLite file; reusable for many queries."""

    def __init__(self, db_path: str | os.PathLike[str]) -> None:
        path = Path(db_path).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"SQLite database not found: {path}")
        self.path = path
        stat = path.stat()
        self.signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        # mode=ro: SQLite never creates or writes the file; as_uri() percent-escapes odd paths.
        self.conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        self._deadline = float("inf")
        conn = self.conn
        if hasattr(conn, "enable_load_extension"):  # absent when Python is built without it
            conn.enable_load_extension(False)
        conn.execute("PRAGMA query_only=1")
        conn.execute("PRAGMA temp_store=MEMORY")  # sorts spill into the capped heap, not /tmp
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_CHARS)
        conn.set_authorizer(_authorizer)
        conn.set_progress_handler(self._progress, PROGRESS_STEPS)

    def _progress(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0

    def is_current(self) -> bool:
        """False when the file was replaced or modified since the connection was opened."""
        try:
            stat = self.path.stat()
        except OSError:
            return False
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns) == self.signature

    def execute(self, sql: str, *, timeout: float = DEFAULT_TIMEOUT, max_rows: int = DEFAULT_MAX_ROWS) -> ExecResult:
        if not isinstance(sql, str) or not sql.strip():
            return ExecResult("error", error="empty SQL")
        start = time.monotonic()
        self._deadline = start + timeout
        cursor = None
        try:
            cursor = self.conn.execute(sql)
            rows = cursor.fetchmany(max_rows + 1)
            elapsed = time.monotonic() - start
            if len(rows) > max_rows:
                return ExecResult("too_many_rows", elapsed=elapsed, error=f"more than {max_rows} rows")
            return ExecResult("ok", tuple(rows), elapsed)
        except MemoryError:
            return ExecResult(
                "error", elapsed=time.monotonic() - start, error="out of memory (SQLite heap limit reached)"
            )
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            # ValueError: "the query contains a null character"; OverflowError: ints beyond 64 bits
            elapsed = time.monotonic() - start
            msg = str(exc)
            if msg == "interrupted" and elapsed >= timeout:
                return ExecResult("timeout", elapsed=elapsed, error=f"timed out after {timeout:g}s")
            if "one statement at a time" in msg:
                msg = "multiple statements are not allowed; submit a single SELECT"
            elif "not authorized" in msg or "authorization denied" in msg or "readonly" in msg:
                msg = f"{msg or 'not authorized'}: the lfkit sandbox allows read-only queries only"
            elif not isinstance(exc, sqlite3.OperationalError):
                msg = f"{type(exc).__name__}: {msg}"
            return ExecResult("error", elapsed=elapsed, error=msg)
        finally:
            self._deadline = float("inf")
            if cursor is not None:
                with contextlib.suppress(sqlite3.Error):
                    cursor.close()

    def close(self) -> None:
        self.conn.close()


def execute_sql(
    db_path: str | os.PathLike[str],
    sql: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_rows: int = DEFAULT_MAX_ROWS,
    heap_limit: int | None = DEFAULT_HEAP_LIMIT,
) -> ExecResult:
    """Run one query in this process, sandboxed and bounded; never raises for bad SQL.

    A missing database file is reported as ``status="error"`` (nothing is created).

    >>> execute_sql("dev_databases/toy/toy.sqlite", "SELECT count(*) FROM t")   # doctest: +SKIP
    ExecResult(status='ok', rows=((3,),), elapsed=0.0001, error=None)
    """
    set_heap_limit(heap_limit)
    start = time.monotonic()
    try:
        conn = SandboxConnection(db_path)
    except (FileNotFoundError, sqlite3.Error) as exc:
        return ExecResult("error", elapsed=time.monotonic() - start, error=f"cannot open database: {exc}")
    try:
        return conn.execute(sql, timeout=timeout, max_rows=max_rows)
    finally:
        conn.close()

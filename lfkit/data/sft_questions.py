"""SFT rows read back as questions: the one reader behind prefs, trees and GRPO data.

An SFT file (``lfkit data sft`` output, alpaca rows with ``question_id``/``db_id``) holds the
prompt a model was trained on and the gold answer; every stage that samples from that model
(verified rejects, revision trees, GRPO rows) starts from these rows read as :class:`Question`:
``index`` = row position, ``instruction``/``input`` = the row's prompt, ``gold_sql`` = the SQL of
its output, ``db_path`` = ``<db_root>/<db_id>/<db_id>.sqlite``, ``question``/``evidence`` read
back from the input (:func:`question_parts`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from lfkit.data.rows import UNKNOWN_DIFFICULTY, Question, question_key
from lfkit.io import DataFileError, read_rows

_QUESTION = re.compile(r"(?:^|\n)Question: (?P<q>.*)\Z", re.S)
_EVIDENCE = re.compile(r"(?:^|\n)Evidence: (?P<e>[^\n]*)\Z")


def question_parts(prompt_input: str) -> tuple[str, str]:
    """``(question, evidence)`` of an SFT row's ``input``, which ``render_input`` ends with
    (``Evidence:`` line, then ``Question:`` to the end); empty strings where absent.

    >>> question_parts("Schema: ...\\nEvidence: AL = American League\\nQuestion: How many teams?")
    ('How many teams?', 'AL = American League')
    >>> question_parts("Question: Which team\\nwon?")
    ('Which team\\nwon?', '')
    >>> question_parts("no question here")
    ('', '')
    """
    m = _QUESTION.search(prompt_input)
    if not m:
        return "", ""
    e = _EVIDENCE.search(prompt_input[: m.start()])
    return m["q"].strip(), e["e"].strip() if e else ""


def load_questions(
    sft_data: str | os.PathLike[str],
    db_root: str | os.PathLike[str],
    max_samples: int = 0,
    difficulties: Mapping[str, str] | None = None,
) -> list[Question]:
    """Read and check the first ``max_samples`` (0 = all) SFT rows as questions.

    ``difficulties`` maps question keys to difficulties (else ``unknown``). A question id that
    repeats, a row without instruction/output/db_id, an output without SQL or a database that
    does not exist is a :class:`lfkit.io.DataFileError` naming the file, row and field.
    """
    from lfkit.data.bird import resolve_db_path
    from lfkit.sql.extract import extract_sql

    path = Path(sft_data)
    rows = read_rows(path)
    if max_samples:
        rows = rows[:max_samples]
    questions: list[Question] = []
    seen: dict[str, int] = {}
    db_paths: dict[str, Path] = {}
    for i, row in enumerate(rows):
        for name in ("instruction", "output", "db_id"):
            if not isinstance(row.get(name), str) or not row[name].strip():
                raise DataFileError(f"{path}: row {i}: field '{name}' must be a non-empty string")
        if not isinstance(row.get("input", ""), str):
            raise DataFileError(f"{path}: row {i}: field 'input' must be a string")
        qid = row.get("question_id", i)  # BIRD train has none: its index in the file
        if not isinstance(qid, int | str) or isinstance(qid, bool):
            raise DataFileError(f"{path}: row {i}: field 'question_id' must be an integer or a string")
        if question_key(qid) in seen:
            raise DataFileError(f"{path}: row {i}: field 'question_id' {qid!r} repeats row {seen[question_key(qid)]}")
        seen[question_key(qid)] = i
        gold = extract_sql(row["output"])
        if not gold:
            raise DataFileError(f"{path}: row {i}: field 'output' holds no SQL")
        db_id = row["db_id"]
        if db_id not in db_paths:
            try:
                db_paths[db_id] = resolve_db_path(db_root, db_id)
            except (FileNotFoundError, ValueError) as exc:
                raise DataFileError(f"{path}: row {i}: field 'db_id' {db_id!r}: {exc}") from exc
        question, evidence = question_parts(row.get("input", ""))
        questions.append(
            Question(
                qid,
                db_id,
                question,
                evidence,
                gold_sql=gold,
                difficulty=(difficulties or {}).get(question_key(qid), UNKNOWN_DIFFICULTY),
                db_path=db_paths[db_id],
                index=i,
                instruction=row["instruction"],
                input=row.get("input", ""),
            )
        )
    return questions


__all__ = ["load_questions", "question_parts"]

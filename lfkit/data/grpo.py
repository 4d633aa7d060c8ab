"""GRPO rows (TRL's conversational prompt + the columns lfkit's rewards read) and the process-reward recipe's files.

A **GRPO row** (:func:`grpo_row`) is::

    {"prompt": [{"role": "user", "content": ...}],   # chat_messages(): the SFT prompt, as LLaMA-Factory feeds it
     "question_id": "12", "db_id": "lahman", "db_path": "/abs/.../lahman.sqlite",
     "gold_sql": "SELECT ...", "difficulty": "simple", "question": "How many ...?",
     "type": "sql" | "多步推理"}                       # classify_complexity(gold_sql)

The prompt is built by :class:`lfkit.data.prompts.SchemaPromptBuilder` (from a BIRD-style
corpus) or taken verbatim from SFT rows (``instruction`` + ``input``, what SFT trained on), so
GRPO samples from the prompt the SFT model learnt. TRL passes every other column to the reward
functions (``db_path``/``gold_sql`` to ``execution``, ``type`` to ``type``, ``question`` to the
issue detectors). ``question_id`` is written as a string: a column of mixed ints and strings
does not load into a ``datasets`` table.

The **process-reward recipe's format** (GRPO with process rewards, Qwen3-1.7B) is ``{"query", "response", "type"}`` with
``response = "<think>\\n...\\n</think>\\n\\n<answer>\\nSQL\\n</answer>"``: :func:`read_seed_rows`,
:func:`write_seed_rows`, :func:`seed_response` and :func:`parse_seed_response` read and write it.

>>> seed_response("two tables", "SELECT 1")
'<think>\\ntwo tables\\n</think>\\n\\n<answer>\\nSELECT 1\\n</answer>'
>>> parse_seed_response(seed_response("two tables", "SELECT 1"))
('two tables', 'SELECT 1')
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lfkit.data.prompts import SchemaPromptBuilder, chat_messages
from lfkit.data.rows import Question
from lfkit.io import DataFileError, read_rows, write_rows
from lfkit.sql.complexity import classify_complexity, complexity_features, normalize_label

GRPO_COLUMNS = ("prompt", "question_id", "db_id", "db_path", "gold_sql", "difficulty", "question", "type")
"""The columns of a GRPO row, in the order they are written."""


def grpo_row(question: Question, instruction: str, input: str) -> dict[str, Any]:
    """The GRPO row of ``question`` with the prompt ``(instruction, input)``; ``type`` is the
    complexity classifier's label of the gold SQL.

    >>> row = grpo_row(Question(3, "shop", "How many?", gold_sql="SELECT COUNT(*) FROM t"), "Write SQL.", "Q?")
    >>> row["prompt"], row["question_id"], row["type"], row["db_path"]
    ([{'role': 'user', 'content': 'Write SQL.\\nQ?'}], '3', 'sql', '')
    """
    return {
        "prompt": chat_messages(instruction, input),
        "question_id": question.key,
        "db_id": question.db_id,
        "db_path": str(Path(question.db_path).resolve()) if question.db_path is not None else "",
        "gold_sql": question.gold_sql,
        "difficulty": question.difficulty,
        "question": question.question,
        "type": classify_complexity(question.gold_sql),
    }


def grpo_rows_from_bird(
    bird_dir: str | os.PathLike[str],
    split: str,
    builder: SchemaPromptBuilder | None = None,
    *,
    limit: int | None = None,
    sample_seed: int | None = None,
) -> list[dict[str, Any]]:
    """GRPO rows for ``<bird_dir>/<split>.json``, prompts from ``builder`` (the SFT prompt builder;
    pass the options the SFT data was built with, e.g. ``n_examples=0`` for the demo)."""
    from lfkit.data.bird import load_bird
    from lfkit.data.sft import select_examples

    builder = builder or SchemaPromptBuilder()
    examples = select_examples(load_bird(bird_dir, split), limit, sample_seed)
    rows = [grpo_row(q, *builder.build(q)) for q in examples]
    builder.warn_if_cut()
    return rows


def grpo_rows_from_sft(
    sft_data: str | os.PathLike[str],
    db_root: str | os.PathLike[str],
    *,
    limit: int | None = None,
    difficulties: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """GRPO rows from SFT rows (``lfkit data sft`` output): the prompt is the row's own
    ``instruction`` + ``input``, the gold SQL its output's SQL, the database
    ``<db_root>/<db_id>/<db_id>.sqlite`` (rows read by :func:`lfkit.data.sft_questions.load_questions`);
    ``difficulties`` maps question ids to difficulties (else ``unknown``). Every error names the
    file, row and field."""
    from lfkit.data.sft_questions import load_questions

    return [
        grpo_row(q, q.instruction, q.input)
        for q in load_questions(sft_data, db_root, limit or 0, difficulties=difficulties)
    ]


def write_grpo_rows(out: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Write GRPO rows (JSONL for ``.jsonl``, else a JSON array); returns counts by type and difficulty."""
    rows = list(rows)
    write_rows(out, rows)
    return {
        "out": str(out),
        "rows": len(rows),
        "by_type": dict(sorted(Counter(r["type"] for r in rows).items())),
        "by_difficulty": dict(sorted(Counter(r["difficulty"] for r in rows).items())),
        "databases": len({r["db_id"] for r in rows}),
    }


def read_grpo_rows(path: str | os.PathLike[str], *, require_gold: bool = False) -> list[dict[str, Any]]:
    """Read and check GRPO rows: ``prompt`` must be a non-empty chat (list of ``{"role", "content"}``
    strings) or a non-empty string; with ``require_gold`` every row needs ``db_path`` and
    ``gold_sql``. Training does not require them (such rows score 0 on ``execution``).
    Raises :class:`lfkit.io.DataFileError` naming the file, row and field."""
    path = Path(path)
    rows = read_rows(path)
    for i, row in enumerate(rows):
        prompt = row.get("prompt")
        ok = isinstance(prompt, str) and prompt.strip()
        if isinstance(prompt, list) and prompt:
            ok = all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in prompt
            )
        if not ok:
            raise DataFileError(f"{path}: row {i}: field 'prompt' must be a non-empty string or list of messages")
        if require_gold:
            for name in ("db_path", "gold_sql"):
                if not isinstance(row.get(name), str) or not row[name].strip():
                    raise DataFileError(f"{path}: row {i}: field '{name}' must be a non-empty string")
    return rows


# -- the process-reward recipe's {"query", "response", "type"} files ---------------------------------------------
_SEED_RESPONSE = re.compile(r"<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>", re.S | re.I)


def seed_response(think: str, sql: str) -> str:
    """The process-reward recipe's response text: ``<think>\\nT\\n</think>\\n\\n<answer>\\nSQL\\n</answer>``."""
    return f"<think>\n{think.strip()}\n</think>\n\n<answer>\n{sql.strip()}\n</answer>"


def parse_seed_response(response: str) -> tuple[str, str] | None:
    """``(think, sql)`` of a seed response (both stripped); None when it lacks either block."""
    m = _SEED_RESPONSE.search(response or "")
    return (m["think"].strip(), m["answer"].strip()) if m else None


@dataclass(frozen=True)
class SeedExample:
    """One row of the process-reward recipe's files: the question (``query``), the reference response and its
    complexity label (``sql`` or ``多步推理``, normalised)."""

    query: str
    response: str
    type: str

    @property
    def think(self) -> str:
        parsed = parse_seed_response(self.response)
        return parsed[0] if parsed else ""

    @property
    def sql(self) -> str:
        parsed = parse_seed_response(self.response)
        return parsed[1] if parsed else ""

    def as_dict(self) -> dict[str, str]:
        return {"query": self.query, "response": self.response, "type": self.type}


def read_seed_rows(path: str | os.PathLike[str]) -> list[SeedExample]:
    """Read a seed file (JSON array or JSONL of ``{"query", "response", "type"}``).

    ``query`` and ``response`` must be non-empty strings and ``response`` must hold a
    ``<think>`` and an ``<answer>`` block; ``type`` must be a known label (``sql``,
    ``多步推理`` or an English alias). Raises :class:`lfkit.io.DataFileError` naming file, row, field.
    """
    path = Path(path)
    out = []
    for i, row in enumerate(read_rows(path)):
        for name in ("query", "response"):
            if not isinstance(row.get(name), str) or not row[name].strip():
                raise DataFileError(f"{path}: row {i}: field '{name}' must be a non-empty string")
        if parse_seed_response(row["response"]) is None:
            raise DataFileError(f"{path}: row {i}: field 'response' needs <think>...</think> and <answer>...</answer>")
        label = normalize_label(row.get("type"))
        if label is None:
            raise DataFileError(f"{path}: row {i}: field 'type' {row.get('type')!r} is not 'sql' or '多步推理'")
        out.append(SeedExample(row["query"], row["response"], label))
    return out


def write_seed_rows(path: str | os.PathLike[str], examples: Iterable[SeedExample]) -> Path:
    """Write seed rows (JSONL for ``.jsonl``, else a JSON array, as the process-reward recipe's ``.json`` files)."""
    return write_rows(path, [e.as_dict() for e in examples])


def seed_example(row: dict[str, Any]) -> SeedExample:
    """The seed-format view of a GRPO row: the question, a response whose reasoning states the
    complexity features of the gold SQL (a cold-start think block), and the row's type."""
    features = complexity_features(row["gold_sql"])
    reasons = ", ".join(features.reasons) or "one table or one join, no subquery"
    think = f"The question asks: {row.get('question') or '(see prompt)'}\nComplexity: {reasons}."
    return SeedExample(row.get("question") or "", seed_response(think, row["gold_sql"]), row["type"])


def seed_to_grpo_rows(
    examples: Sequence[SeedExample], *, db_path: str | os.PathLike[str] | None = None, db_id: str = ""
) -> list[dict[str, Any]]:
    """GRPO rows from seed examples: the prompt is the query as one user turn, ``gold_sql``
    the response's SQL; ``db_path`` (one database for the whole file, as in the process-reward recipe's
    single-warehouse data) enables the execution reward, else it is empty and scores 0."""
    rows = []
    for i, e in enumerate(examples):
        q = Question(i, db_id, e.query, gold_sql=e.sql, db_path=Path(db_path) if db_path else None)
        row = grpo_row(q, "", e.query)
        row["type"] = e.type  # the process-reward recipe's label, not the classifier's
        rows.append(row)
    return rows


def grpo_data(
    out: str | os.PathLike[str],
    *,
    bird_dir: str | os.PathLike[str] | None = None,
    split: str | None = None,
    sft_data: str | os.PathLike[str] | None = None,
    db_root: str | os.PathLike[str] | None = None,
    builder: SchemaPromptBuilder | None = None,
    limit: int | None = None,
    sample_seed: int | None = None,
    seed_format: bool = False,
) -> dict[str, Any]:
    """`lfkit data grpo`: rows from a corpus (``bird_dir`` + ``split``) or SFT rows (``sft_data``
    + ``db_root``, default ``<dir of sft_data>``), written as GRPO rows or, with ``seed_format``,
    as the process-reward recipe's ``{"query", "response", "type"}`` rows."""
    if (bird_dir is None) == (sft_data is None):
        raise ValueError("give either a corpus (bird_dir + split) or SFT rows (sft_data), not both")
    if bird_dir is not None:
        if not split:
            raise ValueError("a corpus needs a split (e.g. train)")
        rows = grpo_rows_from_bird(bird_dir, split, builder, limit=limit, sample_seed=sample_seed)
    else:
        if db_root is None:
            raise ValueError("SFT rows need the database root (--db-root), e.g. corpus/train_databases")
        rows = grpo_rows_from_sft(sft_data, db_root, limit=limit)  # type: ignore[arg-type]
    if seed_format:
        write_seed_rows(out, [seed_example(r) for r in rows])
        return {"out": str(out), "rows": len(rows), "format": "seed"}
    stats = write_grpo_rows(out, rows)
    stats["format"] = "grpo"
    return stats


__all__ = [
    "GRPO_COLUMNS",
    "SeedExample",
    "grpo_data",
    "grpo_row",
    "grpo_rows_from_bird",
    "grpo_rows_from_sft",
    "parse_seed_response",
    "read_grpo_rows",
    "read_seed_rows",
    "seed_example",
    "seed_response",
    "seed_to_grpo_rows",
    "write_grpo_rows",
    "write_seed_rows",
]

"""One question type and the two row shapes every stage writes.

:class:`Question` is a Text-to-SQL question wherever it comes from: a BIRD-style corpus
(:func:`lfkit.data.bird.load_bird`), an SFT file (:func:`lfkit.data.sft_questions.load_questions`)
or a gold file for scoring (:func:`lfkit.eval.formats.read_gold`). Its ``question_id`` is
kept as the source gave it (BIRD: an int; other corpora: a string), but ids are compared
and used as dict keys only through :func:`question_key` (``Question.key``), so ``7`` and
``"7"`` name the same question everywhere.

:func:`sft_row` and :func:`preference_row` build the alpaca rows that LLaMA-Factory reads;
every writer of such rows calls them, so the field order is fixed in one place::

    SFT row:        instruction, input, output, question_id, db_id
    preference row: instruction, input, chosen, rejected, question_id, db_id, source, round[, extra...]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# BIRD's difficulty names, easiest first (report columns use this order).
DIFFICULTIES = ("simple", "moderate", "challenging")
# The difficulty of a question whose source gives none (BIRD train, a bare dev_gold.sql).
UNKNOWN_DIFFICULTY = "unknown"


def question_key(question_id: object) -> str:
    """The one way question ids are compared: their text, without surrounding spaces.

    >>> question_key(7) == question_key("7") == question_key(" 7 ")
    True
    """
    return str(question_id).strip()


@dataclass(frozen=True)
class Question:
    """One Text-to-SQL question.

    ``db_path`` is None when the source does not say where the database is (a gold file read
    without a database root). ``index`` is the position in its source file: prefs derive
    sampling seeds and shards from it. ``instruction``/``input`` are the prompt when the
    question was read from an SFT row (the prompt it was trained on), else empty.
    """

    question_id: int | str
    db_id: str
    question: str = ""
    evidence: str = ""
    gold_sql: str = ""
    difficulty: str = UNKNOWN_DIFFICULTY
    db_path: Path | None = None
    index: int = 0
    instruction: str = ""
    input: str = ""

    @property
    def key(self) -> str:
        """``question_key(question_id)``: use it to compare ids or key dicts."""
        return question_key(self.question_id)


def sft_row(question: Question, instruction: str, input: str, output: str) -> dict[str, Any]:
    """An alpaca SFT row; ``question_id`` as the question's source gave it.

    >>> sft_row(Question(3, "shop"), "Write SQL.", "Q?", "```sql\\nSELECT 1\\n```")
    {'instruction': 'Write SQL.', 'input': 'Q?', 'output': '```sql\\nSELECT 1\\n```', 'question_id': 3, 'db_id': 'shop'}
    """
    return {
        "instruction": instruction,
        "input": input,
        "output": output,
        "question_id": question.question_id,
        "db_id": question.db_id,
    }


def preference_row(
    question: Question,
    instruction: str,
    input: str,
    chosen: str,
    rejected: str,
    source: str,
    round: int,
    **extra: Any,
) -> dict[str, Any]:
    """A preference (DPO/RM) row: ``source`` names the stage that made it, ``round`` the iteration.

    ``extra`` fields follow ``round``; they may not replace a standard field.

    >>> row = preference_row(Question("q1", "shop"), "I", "Q", "good", "bad", "rejects", 1)
    >>> list(row)
    ['instruction', 'input', 'chosen', 'rejected', 'question_id', 'db_id', 'source', 'round']
    """
    row = {
        "instruction": instruction,
        "input": input,
        "chosen": chosen,
        "rejected": rejected,
        "question_id": question.question_id,
        "db_id": question.db_id,
        "source": source,
        "round": round,
    }
    clash = sorted(set(extra) & set(row))
    if clash:
        raise ValueError(f"preference_row: extra field '{clash[0]}' would replace a standard field")
    row.update(extra)
    return row

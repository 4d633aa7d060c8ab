"""GRPO's rows: the training rows of a config, prompts rendered by the LLaMA-Factory template, dev questions."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from lfkit.io import DataFileError
from lfkit.recipes.grpo_config import GRPOConfigError, GRPOSettings, dataset_files

logger = logging.getLogger("lfkit.grpo.train")


def load_rows(settings: GRPOSettings) -> list[dict[str, Any]]:
    """The training rows of the config's local data files, checked (:func:`lfkit.data.grpo.read_grpo_rows`)."""
    from lfkit.data.grpo import read_grpo_rows

    files = dataset_files(settings)
    if not files:
        raise GRPOConfigError(f"{settings.source}: lfkit grpo train reads local GRPO rows: set datasets[].data_files")
    rows: list[dict[str, Any]] = []
    for name in files:
        rows += read_grpo_rows(name)
    if not rows:
        raise DataFileError(f"{', '.join(files)}: no rows")
    missing = sum(1 for r in rows if not r.get("db_path") or not r.get("gold_sql"))
    if missing:
        logger.warning("%d of %d rows have no db_path or gold_sql: their execution reward is 0", missing, len(rows))
    return rows


def chat_of(prompt: Any) -> list[dict[str, str]]:
    """A row's prompt as a chat (a string prompt is one user turn)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


def render_prompts(rows: list[dict[str, Any]], encoder: Any) -> list[dict[str, Any]]:
    """Rows with ``prompt`` rendered as text by the LLaMA-Factory template (``encoder``)."""
    cache: dict[str, str] = {}
    out = []
    for row in rows:
        chat = chat_of(row["prompt"])
        key = json.dumps(chat, ensure_ascii=False)
        if key not in cache:
            cache[key] = encoder.render(chat)
        out.append({**row, "prompt": cache[key]})
    return out


class RowPrompts:
    """``predict_sql``'s builder for questions read from GRPO rows: their own prompt."""

    def build(self, question: Any) -> tuple[str, str]:
        return question.instruction, question.input


def dev_questions(path: str | os.PathLike[str], size: int) -> list[Any]:
    """The first ``size`` rows of a GRPO rows file as Questions (prompt in ``input``); every row
    needs ``db_path`` in BIRD layout and ``gold_sql``."""
    from lfkit.data.grpo import read_grpo_rows
    from lfkit.data.rows import UNKNOWN_DIFFICULTY, Question

    rows = read_grpo_rows(path, require_gold=True)[: size or None]
    out = []
    for i, row in enumerate(rows):
        chat = chat_of(row["prompt"])
        if len(chat) != 1 or chat[0]["role"] != "user":
            raise DataFileError(f"{path}: row {i}: field 'prompt': dev rows need one user turn")
        db_path = Path(row["db_path"])
        db_id = row.get("db_id") or db_path.stem
        if db_path.parent.name != db_id or db_path.stem != db_id:
            raise DataFileError(f"{path}: row {i}: field 'db_path' {db_path} is not <root>/{db_id}/{db_id}.sqlite")
        out.append(
            Question(
                row.get("question_id", str(i)),
                db_id,
                row.get("question", ""),
                gold_sql=row["gold_sql"],
                difficulty=row.get("difficulty") or UNKNOWN_DIFFICULTY,
                db_path=db_path,
                index=i,
                input=chat[0]["content"],
            )
        )
    return out


__all__ = ["RowPrompts", "chat_of", "dev_questions", "load_rows", "render_prompts"]

"""Predict SQL for a split with a model: the prompts training saw, greedy decoding, one extractor.

Evaluation of a model is this plus :func:`lfkit.eval.score_predictions`. The prompt comes
from :class:`lfkit.data.prompts.SchemaPromptBuilder` (the one prompt builder) and the SQL
from :func:`lfkit.sql.extract_sql` (the one extractor), so the numbers measure what the
model does on the data it was trained on, not a second prompt format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lfkit.data.prompts import chat_messages
from lfkit.progress import progress_bar
from lfkit.sql import extract_sql
from lfkit.sql.extract import SQL_FENCE_STOP

if TYPE_CHECKING:
    from lfkit.data.prompts import SchemaPromptBuilder
    from lfkit.data.rows import Question
    from lfkit.generate import GenerationBackend


def predict_sql(
    examples: Sequence[Question],
    backend: GenerationBackend,
    builder: SchemaPromptBuilder,
    *,
    max_new_tokens: int = 128,
    chunk_size: int = 16,
    progress: bool = True,
    description: str = "predicting",
    stop: Sequence[str] = SQL_FENCE_STOP,
) -> dict[int, tuple[str, str]]:
    """Greedy-decode one SQL per example; returns ``{question_id: (sql, db_id)}``.

    ``stop`` ends each answer at the end of its first closed fence (:data:`SQL_FENCE_STOP`),
    instead of letting the model ramble to ``max_new_tokens``; ``()`` decodes to the cap.

    ``chunk_size`` chats go to the backend per call (it batches inside), so the progress
    bar moves while a long split is decoded.
    """
    from lfkit.generate import SamplingConfig

    cfg = SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_new_tokens=max_new_tokens, seed=0, stop=stop)
    chats = [chat_messages(*builder.build(ex)) for ex in examples]
    predictions: dict[int, tuple[str, str]] = {}
    with progress_bar(description, len(chats), enabled=progress) as bar:
        for start in range(0, len(chats), chunk_size):
            outs = backend.generate(chats[start : start + chunk_size], cfg)
            for ex, completions in zip(examples[start : start + chunk_size], outs, strict=True):
                predictions[ex.question_id] = (extract_sql(completions[0]), ex.db_id)
            bar.advance(len(outs))
    return predictions

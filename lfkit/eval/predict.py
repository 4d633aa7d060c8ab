"""Predict SQL for a split with a model: the prompts training saw, greedy decoding, one extractor.

Evaluation of a model is this plus :func:`lfkit.eval.score_predictions`. The prompt comes
from :class:`lfkit.data.prompts.SchemaPromptBuilder` (the one prompt builder) and the SQL
from :func:`lfkit.sql.extract_sql` (the one extractor), so the numbers measure what the
model does on the data it was trained on, not a second prompt format.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lfkit.data.prompts import chat_messages
from lfkit.progress import progress_bar
from lfkit.sql import extract_sql
from lfkit.sql.extract import SQL_FENCE_STOP

if TYPE_CHECKING:
    from lfkit.data.prompts import SchemaPromptBuilder
    from lfkit.data.rows import Question
    from lfkit.generate import GenerationBackend
    from lfkit.sql import Candidate, Verifier


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


def sample_candidates(
    examples: Sequence[Question],
    backend: GenerationBackend,
    builder: SchemaPromptBuilder,
    verifier: Verifier,
    *,
    n: int,
    temperature: float = 0.8,
    top_p: float = 0.95,
    max_new_tokens: int = 128,
    seed: int = 0,
    with_greedy: bool = False,
    chunk_size: int = 16,
    progress: bool = True,
    stop: Sequence[str] = SQL_FENCE_STOP,
) -> list[dict[str, Any]]:
    """``n`` sampled candidates per example, labelled by :func:`lfkit.sql.label_candidates`.

    One record per example, in order: ``question_id, db_id, difficulty, instruction, input,
    gold_status, candidates: [{text, sql, label, status, error}]`` and, with ``with_greedy``,
    ``greedy`` (the same fields for the greedy decode). Example ``i`` samples with seed
    ``seed + example.index * 1000`` (its sample ``j``: ``+ j``), so a subset or a shard of a
    split draws the same candidates as the whole split. ``stop``: as :func:`predict_sql`.
    """
    from lfkit.generate import SEED_STRIDE, SamplingConfig
    from lfkit.sql import label_candidates

    cfg = SamplingConfig(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed, stop=stop)
    greedy_cfg = SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_new_tokens=max_new_tokens, seed=seed, stop=stop)
    prompts = [builder.build(ex) for ex in examples]
    records: list[dict[str, Any]] = []
    with progress_bar(f"sampling {n} per question", len(examples), enabled=progress) as bar:
        for start in range(0, len(examples), chunk_size):
            part = examples[start : start + chunk_size]
            chats = [chat_messages(*p) for p in prompts[start : start + chunk_size]]
            texts = backend.generate(chats, cfg, seeds=[seed + ex.index * SEED_STRIDE for ex in part])
            greedy = backend.generate(chats, greedy_cfg) if with_greedy else None
            labelled = label_candidates(part, texts, verifier)
            greedy_labels = label_candidates(part, greedy, verifier) if greedy is not None else None
            for k, (ex, cands) in enumerate(zip(part, labelled, strict=True)):
                instruction, input_ = prompts[start + k]
                record: dict[str, Any] = {
                    "question_id": ex.question_id,
                    "db_id": ex.db_id,
                    "difficulty": ex.difficulty,
                    "instruction": instruction,
                    "input": input_,
                    "gold_status": cands[0].gold_status if cands else "ok",
                    "candidates": [_candidate_record(c) for c in cands],
                }
                if greedy_labels is not None:
                    record["greedy"] = _candidate_record(greedy_labels[k][0])
                records.append(record)
            bar.advance(len(part))
    return records


def write_candidates(path: str | os.PathLike[str], records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Write :func:`sample_candidates` records as JSONL (atomically); their label counts and pass@n.

    >>> import tempfile, pathlib
    >>> recs = [{"candidates": [{"label": "correct"}, {"label": "error"}]}, {"candidates": [{"label": "wrong"}]}]
    >>> write_candidates(pathlib.Path(tempfile.mkdtemp()) / "c.jsonl", recs)
    {'questions': 2, 'labels': {'correct': 1, 'error': 1, 'wrong': 1}, 'pass_at_n': 50.0}
    """
    from lfkit.io import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    labels = Counter(c["label"] for r in records for c in r["candidates"])
    passed = sum(any(c["label"] == "correct" for c in r["candidates"]) for r in records)
    return {
        "questions": len(records),
        "labels": dict(sorted(labels.items())),
        "pass_at_n": round(100.0 * passed / max(len(records), 1), 2),
    }


def _candidate_record(c: Candidate) -> dict[str, Any]:
    return {"text": c.text, "sql": c.sql, "label": c.label, "status": c.status, "error": c.error}

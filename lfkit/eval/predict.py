"""Predict SQL for a split with a model: the prompts training saw, greedy decoding, one extractor.

Evaluation of a model is this plus :func:`lfkit.eval.score_predictions`. The prompt comes
from :class:`lfkit.data.prompts.SchemaPromptBuilder` (the one prompt builder) and the SQL
from :func:`lfkit.sql.extract_sql` (the one extractor), so the numbers measure what the
model does on the data it was trained on, not a second prompt format.

Both entry points take an optional :class:`lfkit.jobs.Journal` (the one job engine): each
question's record is fsynced as soon as its answer returns, a re-run skips the questions
already there, and a journal written with other settings is refused (``lfkit eval predict``
keeps it at ``<out>.journal.jsonl``; :func:`predict_settings` names what it must match).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lfkit.data.prompts import chat_messages
from lfkit.generate.defaults import SAMPLING
from lfkit.progress import progress_bar
from lfkit.sql import extract_sql
from lfkit.sql.extract import SQL_FENCE_STOP

if TYPE_CHECKING:
    from lfkit.data.prompts import SchemaPromptBuilder
    from lfkit.data.rows import Question
    from lfkit.generate import GenerationBackend
    from lfkit.jobs import Journal
    from lfkit.sql import Candidate, Verifier


def journal_key(record: Mapping[str, Any]) -> str:
    """The question a prediction journal record belongs to."""
    from lfkit.data.rows import question_key

    return question_key(record["question_id"])


def predict_settings(
    bird_dir: str | os.PathLike[str], split: str, identity: Mapping[str, Any], **options: Any
) -> dict[str, Any]:
    """The settings a prediction journal is written under: the split file (path and SHA-256), the
    model identity (backend, model, adapter, template) and the options that decide the answers."""
    from lfkit.jobs import file_sha256, settings_fingerprint

    path = Path(bird_dir) / f"{split}.json"
    out = {"split": split, "split_file": str(path.resolve()), "split_sha256": file_sha256(path)}
    return settings_fingerprint({**out, **identity, **options})


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
    journal: Journal | None = None,
) -> dict[int, tuple[str, str]]:
    """Greedy-decode one SQL per example; returns ``{question_id: (sql, db_id)}``.

    ``stop`` ends each answer at the end of its first closed fence (:data:`SQL_FENCE_STOP`),
    instead of letting the model ramble to ``max_new_tokens``; ``()`` decodes to the cap.

    ``chunk_size`` chats go to the backend per call (it batches inside), so the progress
    bar moves while a long split is decoded.

    ``journal``: every answer is journalled (``{question_id, db_id, sql}``) as its call returns
    and examples already journalled are not asked again (see the module docstring). A backend
    with ``concurrency`` > 1 (one request per chat: the openai backend) is then asked one
    question per call, ``concurrency`` calls at a time, so a failed request costs only its own
    answer.
    """
    from lfkit.generate import SamplingConfig

    cfg = SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_new_tokens=max_new_tokens, seed=0, stop=stop)

    def answer(part: Sequence[Question]) -> list[dict[str, Any]]:
        outs = backend.generate([chat_messages(*builder.build(ex)) for ex in part], cfg)
        return [
            {"question_id": ex.question_id, "db_id": ex.db_id, "sql": extract_sql(completions[0])}
            for ex, completions in zip(part, outs, strict=True)
        ]

    if journal is not None:
        from lfkit.jobs import run_batches

        workers = max(1, int(getattr(backend, "concurrency", 1)))
        run_batches(
            journal, examples, answer, batch_size=1 if workers > 1 else chunk_size, workers=workers,
            progress=progress, description=description,
        )  # fmt: skip
        return {ex.question_id: (journal.records[ex.key]["sql"], ex.db_id) for ex in examples}
    predictions: dict[int, tuple[str, str]] = {}
    with progress_bar(description, len(examples), enabled=progress) as bar:
        for start in range(0, len(examples), chunk_size):
            for rec in answer(examples[start : start + chunk_size]):
                predictions[rec["question_id"]] = (rec["sql"], rec["db_id"])
            bar.advance(len(examples[start : start + chunk_size]))
    return predictions


def sample_candidates(
    examples: Sequence[Question],
    backend: GenerationBackend,
    builder: SchemaPromptBuilder,
    verifier: Verifier,
    *,
    n: int,
    temperature: float = SAMPLING["candidates"].temperature,
    top_p: float = SAMPLING["candidates"].top_p,
    max_new_tokens: int = 128,
    seed: int = SAMPLING["candidates"].seed,
    with_greedy: bool = False,
    chunk_size: int = 16,
    progress: bool = True,
    stop: Sequence[str] = SQL_FENCE_STOP,
    journal: Journal | None = None,
) -> list[dict[str, Any]]:
    """``n`` sampled candidates per example, labelled by :func:`lfkit.sql.label_candidates`.

    One record per example, in order: ``question_id, db_id, difficulty, instruction, input,
    gold_status, candidates: [{text, sql, label, status, error}]`` and, with ``with_greedy``,
    ``greedy`` (the same fields for the greedy decode). Example ``i`` samples with seed
    ``seed + example.index * 1000`` (its sample ``j``: ``+ j``), so a subset or a shard of a
    split draws the same candidates as the whole split. ``stop``: as :func:`predict_sql`.
    ``journal``: each chunk's records are journalled as it finishes and journalled examples
    are skipped (module docstring).
    """
    from lfkit.generate import SEED_STRIDE, SamplingConfig
    from lfkit.sql import label_candidates

    cfg = SamplingConfig(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed, stop=stop)
    greedy_cfg = SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_new_tokens=max_new_tokens, seed=seed, stop=stop)
    description = f"sampling {n} per question"

    def sample(part: Sequence[Question]) -> list[dict[str, Any]]:
        prompts = [builder.build(ex) for ex in part]
        chats = [chat_messages(*p) for p in prompts]
        texts = backend.generate(chats, cfg, seeds=[seed + ex.index * SEED_STRIDE for ex in part])
        greedy = backend.generate(chats, greedy_cfg) if with_greedy else None
        labelled = label_candidates(part, texts, verifier)
        greedy_labels = label_candidates(part, greedy, verifier) if greedy is not None else None
        records = []
        for k, (ex, cands) in enumerate(zip(part, labelled, strict=True)):
            instruction, input_ = prompts[k]
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
        return records

    if journal is not None:
        from lfkit.jobs import run_batches

        # one batch at a time: labelling shares the verifier's worker pool
        run_batches(journal, examples, sample, batch_size=chunk_size, progress=progress, description=description)
        return [journal.records[ex.key] for ex in examples]
    records: list[dict[str, Any]] = []
    with progress_bar(description, len(examples), enabled=progress) as bar:
        for start in range(0, len(examples), chunk_size):
            part = examples[start : start + chunk_size]
            records += sample(part)
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

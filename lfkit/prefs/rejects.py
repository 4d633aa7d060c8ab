"""Execution-verified rejected samples (``lfkit prefs rejects``).

The model being trained answers every SFT question ``num_samples`` times; each answer's
SQL is executed and compared with gold's result (lfkit.sql.Verifier). An answer becomes
``rejected`` only when its result differs from gold's or it errors / times out; answers
that are execution-correct are never rejected -- they are counted, and with
``keep_correct_as_chosen`` become extra ``chosen`` variants. Both sides are written in the
SFT answer format (:func:`lfkit.data.prompts.format_sql_answer`), so DPO compares like
with like.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lfkit.data.rows import Question, preference_row
from lfkit.generate import GenerationBackend
from lfkit.io import write_rows
from lfkit.jobs import Journal
from lfkit.prefs.job import JobConfig, Option, Summary, dedup_options, pair_rng, run_job, select_pairs
from lfkit.sql.label import REJECTABLE

SOURCE = "rejects"


@dataclass
class RejectsConfig(JobConfig):
    """``lfkit prefs rejects`` settings (see :class:`~lfkit.prefs.job.JobConfig` for the shared ones)."""

    keep_correct_as_chosen: bool = field(
        default=False,
        metadata={"help": "Also use execution-correct samples that differ from gold as chosen answers."},
    )
    reject_no_sql: bool = field(
        default=False,
        metadata={
            "help": "Also reject samples with no SQL at all, as their raw text (a format failure is a real "
            "failure of the model: it cannot execute). Off by default: such pairs teach format, not SQL."
        },
    )


def rejects_chat(item: Question) -> list[dict[str, str]]:
    """The sampling prompt: the SFT row's own chat, exactly as training saw it."""
    from lfkit.data.prompts import chat_messages

    return chat_messages(item.instruction, item.input)


def question_pairs(
    cfg: RejectsConfig, item: Question, record: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Preference rows for one journalled question, and counters for the summary."""
    from lfkit.data.prompts import format_sql_answer
    from lfkit.sql import normalize_sql

    gold = Option(format_sql_answer(item.gold_sql), item.gold_sql, "gold")
    gold_key = normalize_sql(item.gold_sql)
    cands = [Option(format_sql_answer(c["sql"]), c["sql"], c["label"]) for c in record["candidates"]]
    rejects = [c for c in cands if c.label in REJECTABLE]
    correct = [c for c in cands if c.label == "correct"]
    dropped = 0
    if cfg.dedup:
        rejects, dropped = dedup_options(rejects)
        correct, _ = dedup_options(correct, exclude={gold_key})
    if cfg.reject_no_sql:
        # the model's own words, deduplicated by text (they have no SQL to normalise)
        texts = dict.fromkeys(c["text"].strip() for c in record["candidates"] if c["label"] == "no_sql")
        rejects += [Option(t, "", "no_sql") for t in texts if t]
    chosen = [gold, *correct] if cfg.keep_correct_as_chosen else [gold]
    pairs = select_pairs(chosen, rejects, cfg.pairing, cfg.pair_cap(), pair_rng(cfg.seed, item))
    rows = [preference_row(item, item.instruction, item.input, c.text, r.text, SOURCE, cfg.round) for c, r in pairs]
    return rows, {"duplicates": dropped, "usable_rejects": len(rejects), "chosen_variants": len(chosen) - 1}


def write_rejects(cfg: RejectsConfig, items: list[Question], journal: Journal) -> Summary:
    """Derive the output from the journal (in SFT order) and write it atomically."""
    summary = Summary(kind="rejects", output=cfg.output, journal=str(journal.path))
    summary.questions, summary.resumed = len(items), journal.resumed
    summary.extra = {"usable_rejects": 0, "chosen_variants": 0}
    rows: list[dict[str, Any]] = []
    for item in items:
        record = journal.records[item.key]
        if not summary.count_record(record):
            summary.questions_without_pair += 1
            continue
        q_rows, counts = question_pairs(cfg, item, record)
        summary.duplicates += counts["duplicates"]
        summary.extra["usable_rejects"] += counts["usable_rejects"]
        summary.extra["chosen_variants"] += counts["chosen_variants"]
        summary.questions_without_pair += not q_rows
        rows += q_rows
    write_rows(cfg.output, rows)
    summary.rows = summary.pairs = len(rows)
    return summary


def build_rejects(cfg: RejectsConfig, backend: GenerationBackend, progress: bool = True) -> Summary:
    """Sample, verify, journal and write execution-verified preference pairs; resumable."""
    items, journal = run_job(cfg, backend, "rejects", rejects_chat, progress=progress)
    try:
        return write_rejects(cfg, items, journal)
    finally:
        journal.close()

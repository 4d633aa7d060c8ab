"""Chain-of-thought data (``lfkit prefs cot``).

A model answers each SFT question with step-by-step reasoning inside ``<think>…</think>``
followed by the SQL. Only traces whose final SQL -- read by the
one extractor, :func:`lfkit.sql.extract_sql` -- executes to gold's result are kept as CoT
SFT rows; correct and wrong traces of the same question make CoT preference pairs.

Rows are written in one normal form: ``<think>\\n{reasoning}\\n</think>\\n\\n`` followed by
the SQL in the SFT answer format (:func:`lfkit.data.prompts.format_sql_answer`), and carry
:data:`COT_INSTRUCTION` as their instruction -- the prompt the traces were sampled from.
With ``reference`` the gold SQL is also shown to the model (rationalisation: the model explains
a known answer); it never appears in a written row, and a trace still counts only if its own
SQL executes to gold's result.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfkit.data.rows import Question, preference_row, sft_row
from lfkit.generate import GenerationBackend
from lfkit.io import write_rows
from lfkit.jobs import Journal
from lfkit.prefs.job import JobConfig, Summary, run_job
from lfkit.prefs.pairing import Option, dedup_options, pair_rng, select_pairs
from lfkit.sql.label import REJECTABLE, Candidate

SOURCE = "cot"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

COT_INSTRUCTION = (
    "You are a SQLite expert. Read the database schema, the evidence and the question. "
    "First think step by step inside <think> </think>: which tables and columns the question needs, "
    "how the tables join, which filters, grouping, ordering and limits it asks for, and check the "
    "query against the question. Then, after </think>, write the final SQLite query inside a ```sql code block."
)
REFERENCE_NOTE = (
    "A correct reference query is given below. Reason your way to a correct query yourself; "
    "do not mention that a reference was given."
)


def cot_chat(item: Question, reference: bool = False) -> list[dict[str, str]]:
    """The sampling prompt for one question (the reference query only with ``reference``)."""
    from lfkit.data.prompts import chat_messages

    text = item.input
    if reference:
        text = f"{text}\n\n{REFERENCE_NOTE}\nReference SQL:\n{item.gold_sql}"
    return chat_messages(COT_INSTRUCTION, text)


def split_trace(text: str) -> tuple[str, str] | None:
    """``(reasoning, answer part)``, or None without a closing ``</think>`` and non-empty reasoning.

    The opening tag may be missing: templates that open the think block in the prompt
    leave only ``…</think>`` in the completion.
    """
    end = text.rfind(THINK_CLOSE)
    if end < 0:
        return None
    head = text[:end]
    start = head.find(THINK_OPEN)
    reasoning = (head[start + len(THINK_OPEN) :] if start >= 0 else head).strip()
    if not reasoning:
        return None
    return reasoning, text[end + len(THINK_CLOSE) :]


def format_trace(reasoning: str, sql: str) -> str:
    """The normal form of a trace written to every row."""
    from lfkit.data.prompts import format_sql_answer

    return f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{format_sql_answer(sql)}"


def is_trace(text: str) -> bool:
    """A completion is a trace when :func:`split_trace` finds its reasoning (else: ``malformed``)."""
    return split_trace(text) is not None


def trace_record(candidate: Candidate) -> dict[str, Any]:
    """A candidate as the cot journal stores it: ``{"sql", "label", "text"[, "reasoning"]}``."""
    record = {"sql": candidate.sql, "label": candidate.label, "text": candidate.text}
    parts = split_trace(candidate.text)
    if parts is not None:
        record["reasoning"] = parts[0]
    return record


def prompt_version() -> str:
    """Changes when the CoT prompt does, so a journal from another prompt is not resumed."""
    return hashlib.sha256((COT_INSTRUCTION + REFERENCE_NOTE).encode()).hexdigest()[:12]


@dataclass
class CotConfig(JobConfig):
    """``lfkit prefs cot`` settings (see :class:`~lfkit.prefs.job.JobConfig` for the shared ones)."""

    pairs_output: str | None = field(
        default=None, metadata={"help": "Also write CoT preference pairs (correct vs wrong trace) here."}
    )
    reference: bool = field(default=False, metadata={"help": "Show the gold SQL to the model as a reference."})
    traces_per_question: int = field(default=1, metadata={"help": "Correct traces kept as SFT rows per question."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.traces_per_question < 1:
            raise ValueError(f"traces_per_question must be >= 1, got {self.traces_per_question}")
        if self.pairs_output:
            self.pairs_output = self.pairs_output.format(shard_id=self.shard_id, num_shards=self.num_shards)
            if Path(self.pairs_output).resolve() in {Path(self.output).resolve(), Path(self.sft_data).resolve()}:
                raise ValueError(f"--pairs-output {self.pairs_output} must differ from --output and --sft-data")


def question_rows(cfg: CotConfig, item: Question, record: dict[str, Any]) -> tuple[list[dict], list[dict], int]:
    """(CoT SFT rows, CoT preference rows, duplicates dropped) for one journalled question."""
    traces = [
        Option(format_trace(c["reasoning"], c["sql"]), c["sql"], c["label"])
        for c in record["candidates"]
        if c["label"] != "malformed" and c["sql"]
    ]
    correct: list[Option] = []
    for o in traces:  # distinct correct traces, first sampled first
        if o.label == "correct" and all(o.text != c.text for c in correct):
            correct.append(o)
    wrong = [o for o in traces if o.label in REJECTABLE]
    dropped = 0
    if cfg.dedup:
        wrong, dropped = dedup_options(wrong)
    sft = [sft_row(item, COT_INSTRUCTION, item.input, o.text) for o in correct[: cfg.traces_per_question]]
    pairs = select_pairs(correct, wrong, cfg.pairing, cfg.pair_cap(), pair_rng(cfg.seed, item))
    prefs = [preference_row(item, COT_INSTRUCTION, item.input, c.text, r.text, SOURCE, cfg.round) for c, r in pairs]
    return sft, prefs, dropped


def write_cot(cfg: CotConfig, items: list[Question], journal: Journal) -> Summary:
    summary = Summary(kind="cot", output=cfg.output, journal=str(journal.path))
    summary.questions, summary.resumed = len(items), journal.resumed
    summary.extra = {"sft_rows": 0, "questions_without_correct_trace": 0}
    sft_rows: list[dict[str, Any]] = []
    pref_rows: list[dict[str, Any]] = []
    for item in items:
        record = journal.records[item.key]
        if not summary.count_record(record):
            summary.questions_without_pair += 1
            summary.extra["questions_without_correct_trace"] += 1
            continue
        sft, prefs, dropped = question_rows(cfg, item, record)
        summary.duplicates += dropped
        summary.extra["questions_without_correct_trace"] += not sft
        summary.questions_without_pair += not prefs
        sft_rows += sft
        pref_rows += prefs
    write_rows(cfg.output, sft_rows)
    if cfg.pairs_output:
        write_rows(cfg.pairs_output, pref_rows)
    summary.rows = summary.extra["sft_rows"] = len(sft_rows)
    summary.pairs = len(pref_rows) if cfg.pairs_output else 0
    return summary


def build_cot(cfg: CotConfig, backend: GenerationBackend, progress: bool = True) -> Summary:
    """Sample reasoning traces, keep the execution-correct ones; resumable like rejects."""
    items, journal = run_job(
        cfg,
        backend,
        "cot",
        lambda it: cot_chat(it, cfg.reference),
        candidate_record=trace_record,
        well_formed=is_trace,
        fingerprint_extra={"reference": cfg.reference, "cot_prompt": prompt_version()},
        progress=progress,
    )
    try:
        return write_cot(cfg, items, journal)
    finally:
        journal.close()

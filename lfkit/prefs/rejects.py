"""Execution-verified rejected samples (``lfkit prefs rejects``).

The model being trained answers every SFT question ``num_samples`` times; each answer's
SQL is executed and compared with gold's result (lfkit.sql.Verifier). An answer becomes
``rejected`` only when its result differs from gold's or it errors / times out; answers
that are execution-correct are never rejected -- they are counted, and with
``keep_correct_as_chosen`` become extra ``chosen`` variants. Both sides are written in the
SFT answer format (:func:`lfkit.data.prompts.format_sql_answer`), so DPO compares like
with like.

``chosen`` picks the chosen side: ``gold`` (the corpus's SQL) or ``on-policy`` (the model's
own execution-correct samples, deduplicated; gold only for a question where the model had
none), so both sides of a pair come from the model's own distribution and DPO moves it less
off it. ``reject_kinds`` picks which failures may be rejected (``wrong`` result, execution
``error``, ``timeout``, ``no_sql``). Every row records ``chosen_source`` (``gold`` or
``on-policy``) and ``reject_kind`` (the rejected sample's label).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfkit.data.rows import Question, preference_row
from lfkit.generate import GenerationBackend
from lfkit.io import iter_jsonl, write_rows
from lfkit.jobs import JobError, Journal, shard
from lfkit.prefs.job import FINGERPRINT_FIELDS, JobConfig, Summary, journal_key, load_questions, run_job
from lfkit.prefs.pairing import Option, dedup_options, pair_rng, select_pairs
from lfkit.prefs.skew import pair_skew, skew_warnings
from lfkit.sql.label import REJECT_KINDS, REJECTABLE, parse_reject_kinds

SOURCE = "rejects"
CHOSEN_SOURCES = ("gold", "on-policy")


@dataclass
class RejectsConfig(JobConfig):
    """``lfkit prefs rejects`` settings (see :class:`~lfkit.prefs.job.JobConfig` for the shared ones)."""

    keep_correct_as_chosen: bool = field(
        default=False,
        metadata={"help": "Also use execution-correct samples that differ from gold as chosen answers."},
    )
    reject_no_sql: bool = field(
        default=False,
        metadata={"help": "Deprecated alias: adds no_sql to reject_kinds (the default kinds when none are named)."},
    )
    chosen: str = field(
        default="gold",
        metadata={
            "help": "Chosen side: gold, or on-policy (the model's own execution-correct samples; gold only "
            "for a question where it had none)."
        },
    )
    reject_kinds: tuple[str, ...] | None = field(
        default=None,
        metadata={"help": "Labels that may be rejected, of lfkit.sql.label.REJECT_KINDS (default: REJECTABLE)."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.chosen not in CHOSEN_SOURCES:
            raise ValueError(f"chosen must be one of {', '.join(CHOSEN_SOURCES)}, got {self.chosen!r}")
        kinds = parse_reject_kinds(self.reject_kinds)
        if self.reject_no_sql:  # the deprecated flag maps onto the one list
            base = kinds or tuple(k for k in REJECT_KINDS if k in REJECTABLE)
            kinds = tuple(dict.fromkeys((*base, "no_sql")))
        self.reject_kinds = kinds

    def rejectable(self) -> frozenset[str]:
        """The labels a rejected sample may have under these settings."""
        return frozenset(self.reject_kinds or REJECTABLE)


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
    kinds = cfg.rejectable()
    cands = [Option(format_sql_answer(c["sql"]), c["sql"], c["label"]) for c in record["candidates"]]
    rejects = [c for c in cands if c.label in kinds and c.label != "no_sql"]
    correct = [c for c in cands if c.label == "correct"]
    dropped = 0
    if cfg.dedup:
        rejects, dropped = dedup_options(rejects)
    if "no_sql" in kinds:
        # the model's own words, deduplicated by text (they have no SQL to normalise)
        texts = dict.fromkeys(c["text"].strip() for c in record["candidates"] if c["label"] == "no_sql")
        rejects += [Option(t, "", "no_sql") for t in texts if t]
    if cfg.chosen == "on-policy":
        # the model's own correct answers, one per distinct query (one that normalises to gold is
        # still the model's own text); gold only when the model never got the question right
        own, _ = dedup_options(correct)
        chosen = own or [gold]
    elif cfg.keep_correct_as_chosen:
        extra, _ = dedup_options(correct, exclude={gold_key}) if cfg.dedup else (correct, 0)
        chosen = [gold, *extra]
    else:
        chosen = [gold]
    pairs = select_pairs(chosen, rejects, cfg.pairing, cfg.pair_cap(), pair_rng(cfg.seed, item))
    rows = [
        preference_row(
            item,
            item.instruction,
            item.input,
            c.text,
            r.text,
            SOURCE,
            cfg.round,
            chosen_source="gold" if c.label == "gold" else "on-policy",
            reject_kind=r.label,
        )
        for c, r in pairs
    ]
    return rows, {
        "duplicates": dropped,
        "usable_rejects": len(rejects),
        "chosen_variants": sum(c.label != "gold" for c in chosen),
    }


def write_rejects(cfg: RejectsConfig, items: list[Question], journal: Journal) -> Summary:
    """Derive the output from the journal (in SFT order) and write it atomically."""
    summary = Summary(kind="rejects", output=cfg.output, journal=str(journal.path))
    summary.questions, summary.resumed = len(items), journal.resumed
    summary.extra = {"usable_rejects": 0, "chosen_variants": 0}
    summary.extra.update({f"chosen_{k.replace('-', '_')}": 0 for k in CHOSEN_SOURCES})
    summary.extra.update({f"rejected_{k}": 0 for k in REJECT_KINDS})
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
        for row in q_rows:
            summary.extra[f"chosen_{row['chosen_source'].replace('-', '_')}"] += 1
            summary.extra[f"rejected_{row['reject_kind']}"] += 1
        rows += q_rows
    write_rows(cfg.output, rows)
    summary.rows = summary.pairs = len(rows)
    skew = pair_skew((r["chosen"], r["rejected"]) for r in rows)
    for feature, n in skew.items():  # surface features DPO could learn instead of the SQL (lfkit.prefs.skew)
        slug = feature.lower().replace(" ", "_")
        summary.extra[f"chosen_more_{slug}"], summary.extra[f"chosen_fewer_{slug}"] = n["more"], n["fewer"]
    summary.warnings += skew_warnings(skew)
    return summary


def build_rejects(cfg: RejectsConfig, backend: GenerationBackend, progress: bool = True) -> Summary:
    """Sample, verify, journal and write execution-verified preference pairs; resumable."""
    items, journal = run_job(cfg, backend, "rejects", rejects_chat, progress=progress)
    try:
        return write_rejects(cfg, items, journal)
    finally:
        journal.close()


def pairs_from_journal(journal: str | Path, output: str | Path, **pairing: Any) -> Summary:
    """Pairs from a finished ``prefs rejects`` journal under other pairing settings, sampling nothing.

    ``pairing``: :class:`RejectsConfig` fields that only pair (``max_pairs_per_question``, ``pairing``,
    ``chosen``, ``reject_kinds``, ...); the sampling settings, questions and model are the journal's own (its
    header; the rows' ``round`` too when the sampling run put it in its model_info, as the pipelines do), and the
    journal's check that its questions file is unchanged still applies. JobError when a
    question of that file has no record yet (the sampling run did not finish).
    """
    journal = Path(journal)
    try:
        header = next(iter_jsonl(journal))["settings"]
    except (OSError, StopIteration, KeyError, ValueError) as exc:
        raise JobError(f"{journal}: not a finished lfkit journal ({exc})") from exc
    sampled = {k: header[k] for k in FINGERPRINT_FIELDS if k in header}
    model_info = {k: v for k, v in header.items() if k not in FINGERPRINT_FIELDS and k not in ("kind", "sft_sha256")}
    cfg = RejectsConfig(
        **sampled,
        output=str(output),
        journal=str(journal),
        model_info=model_info,
        **{"round": model_info.get("round", 1), **pairing},
    )
    items = shard(load_questions(cfg.sft_data, cfg.db_root, cfg.max_samples), cfg.num_shards, cfg.shard_id)
    with Journal(journal, cfg.fingerprint("rejects"), key=journal_key) as records:
        missing = [item.question_id for item in items if item.key not in records.records]
        if missing:
            raise JobError(f"{journal}: {len(missing)} question(s) not sampled yet (first: {missing[0]})")
        return write_rejects(cfg, items, records)

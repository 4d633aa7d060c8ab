"""The sampling job shared by ``prefs rejects`` and ``prefs cot``.

SFT rows in -> candidates sampled per question -> every candidate labelled by
:func:`lfkit.sql.label_candidates` (the one labelling step) -> one journal record per
question (:mod:`lfkit.jobs`, the resumable job engine) -> output rows derived from the journal.

The journal (``<output>.candidates.jsonl``) is the resumable state and the labelled
candidate log: a header naming the settings that decide the samples, then one fsynced
record per finished question. A restarted run with the same settings skips the
questions already there; the output file is rewritten atomically from the journal at
the end, so no row is lost or written twice. Pairing options are applied when the
output is written, so they can change between runs without re-sampling.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lfkit.data.rows import Question, question_key
from lfkit.data.sft_questions import load_questions
from lfkit.generate import GenerationBackend, SamplingConfig
from lfkit.generate.base import SEED_STRIDE
from lfkit.generate.defaults import SAMPLING
from lfkit.jobs import Journal, check_shard, file_sha256, run_batches, settings_fingerprint, shard
from lfkit.prefs.pairing import check_pairing
from lfkit.sql import Verifier
from lfkit.sql.label import LABELS, Candidate, label_candidates


def default_journal(output: str | Path) -> Path:
    """Where a job writing ``output`` keeps its journal unless told otherwise: ``<output>.candidates.jsonl``."""
    return Path(f"{output}.candidates.jsonl")


# The fields that decide which candidates a question gets: a journal's header holds them (see fingerprint).
FINGERPRINT_FIELDS = ("num_samples", "seed", "temperature", "top_p", "max_new_tokens", "max_samples")
FINGERPRINT_FIELDS += ("num_shards", "shard_id", "comparison", "sft_data", "db_root")


@dataclass
class JobConfig:
    """Settings shared by ``prefs rejects`` and ``prefs cot`` (CLI options of the same names)."""

    sft_data: str = field(
        metadata={"help": "SFT rows (JSON array or JSONL): instruction, input, output, db_id[, question_id]."}
    )
    db_root: str = field(metadata={"help": "Folder holding <db_id>/<db_id>.sqlite for every db_id of the SFT rows."})
    output: str = field(metadata={"help": "Output file; .jsonl = one row per line, else a JSON array."})
    num_samples: int = field(default=4, metadata={"help": "Completions sampled per question."})
    seed: int = field(
        default=SAMPLING["prefs"].seed, metadata={"help": "Base seed; question i, sample j uses seed + i*1000 + j."}
    )
    temperature: float = field(
        default=SAMPLING["prefs"].temperature, metadata={"help": "Sampling temperature (0 = greedy)."}
    )
    top_p: float = field(default=SAMPLING["prefs"].top_p, metadata={"help": "Nucleus sampling mass."})
    max_new_tokens: int = field(default=512, metadata={"help": "Generation cap per completion."})
    max_samples: int = field(default=0, metadata={"help": "Use only the first N SFT rows (0 = all)."})
    num_shards: int = field(
        default=1, metadata={"help": "Split the questions into this many shards (row index mod K)."}
    )
    shard_id: int = field(default=0, metadata={"help": "Which shard this run processes, 0..K-1."})
    batch_size: int = field(default=8, metadata={"help": "Questions sampled together and journalled together."})
    comparison: str = field(
        default="bird", metadata={"help": "Execution comparison: bird (set) or testsuite (bag/order)."}
    )
    timeout: float = field(default=30.0, metadata={"help": "Seconds per SQL execution."})
    workers: int | None = field(default=None, metadata={"help": "SQL execution processes (default: CPU count)."})
    dedup: bool = field(
        default=True, metadata={"help": "Drop candidates whose normalised SQL was already seen for the question."}
    )
    pairing: str = field(
        default="all", metadata={"help": "all pairs, one random pair, or the hardest (closest to chosen)."}
    )
    max_pairs_per_question: int = field(
        default=0, metadata={"help": "Cap on pairs per question (0 = all for 'all', 1 otherwise)."}
    )
    round: int = field(default=1, metadata={"help": "Iteration number written to every preference row."})
    journal: str | None = field(default=None, metadata={"help": "Journal path (default <output>.candidates.jsonl)."})
    overwrite: bool = field(default=False, metadata={"help": "Discard an existing journal instead of resuming it."})
    model_info: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Model/backend identity for the journal."}
    )

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        check_shard(self.num_shards, self.shard_id)
        if self.max_samples < 0:
            raise ValueError(f"max_samples must be >= 0, got {self.max_samples}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        check_pairing(self.pairing)
        if self.max_pairs_per_question < 0:
            raise ValueError(f"max_pairs_per_question must be >= 0, got {self.max_pairs_per_question}")
        # "{shard_id}" in a path lets one command line serve every shard.
        self.output = self.output.format(shard_id=self.shard_id, num_shards=self.num_shards)
        if self.journal:
            self.journal = self.journal.format(shard_id=self.shard_id, num_shards=self.num_shards)
        if Path(self.output).resolve() == Path(self.sft_data).resolve():
            raise ValueError(f"--output {self.output} is the input --sft-data file; choose another path")
        self.sampling  # validates temperature, top_p, max_new_tokens  # noqa: B018

    @property
    def sampling(self) -> SamplingConfig:
        return SamplingConfig(
            n=self.num_samples,
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            seed=self.seed,
        )

    @property
    def journal_path(self) -> Path:
        return Path(self.journal) if self.journal else default_journal(self.output)

    def pair_cap(self) -> int:
        if self.max_pairs_per_question:
            return self.max_pairs_per_question
        return check_pairing(self.pairing).default_cap

    def fingerprint(self, kind: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The settings that decide which candidates a question gets (and their labels)."""
        out = {k: getattr(self, k) for k in FINGERPRINT_FIELDS}
        sft = Path(self.sft_data)
        out.update(kind=kind, sft_data=str(sft.resolve()), db_root=str(Path(self.db_root).resolve()))
        out["sft_sha256"] = file_sha256(sft)  # an edited input is not resumed
        out.update(self.model_info)
        out.update(extra or {})
        return settings_fingerprint(out)


# ----------------------------------------------------------------------------- input


def journal_key(record: Mapping[str, Any]) -> str:
    """The question a journal record belongs to."""
    return question_key(record["question_id"])


def default_candidate_record(candidate: Candidate) -> dict[str, Any]:
    """A candidate as the journal stores it: ``{"sql", "label", "text"}``."""
    return {"sql": candidate.sql, "label": candidate.label, "text": candidate.text}


def run_job(
    cfg: JobConfig,
    backend: GenerationBackend,
    kind: str,
    make_chat: Callable[[Question], list[dict[str, str]]],
    candidate_record: Callable[[Candidate], dict[str, Any]] = default_candidate_record,
    well_formed: Callable[[str], bool] | None = None,
    fingerprint_extra: dict[str, Any] | None = None,
    progress: bool = True,
) -> tuple[list[Question], Journal]:
    """Sample, label and journal every question of the shard that the journal lacks.

    Returns the shard's questions and the journal (still locked: the caller writes the
    output from it, then closes it) holding a record for each:
    ``{"question_id", "index", "gold_status", "candidates": [candidate_record(c), ...]}``.
    """
    questions = shard(load_questions(cfg.sft_data, cfg.db_root, cfg.max_samples), cfg.num_shards, cfg.shard_id)
    journal = Journal(
        cfg.journal_path, cfg.fingerprint(kind, fingerprint_extra), key=journal_key, overwrite=cfg.overwrite
    )
    try:
        sampling = cfg.sampling
        with Verifier(comparison=cfg.comparison, timeout=cfg.timeout, workers=cfg.workers) as verifier:

            def process(batch: list[Question]) -> list[dict[str, Any]]:
                seeds = [cfg.seed + q.index * SEED_STRIDE for q in batch]
                texts = backend.generate([make_chat(q) for q in batch], sampling, seeds=seeds)
                labelled = label_candidates(batch, texts, verifier, well_formed=well_formed)
                return [
                    {
                        "question_id": q.question_id,
                        "index": q.index,
                        "gold_status": cands[-1].gold_status if cands else "ok",
                        "candidates": [candidate_record(c) for c in cands],
                    }
                    for q, cands in zip(batch, labelled, strict=True)
                ]

            run_batches(
                journal,
                questions,
                process,
                batch_size=cfg.batch_size,
                progress=progress,
                description=f"{kind}: questions",
            )
    except BaseException:
        journal.close()
        raise
    return questions, journal


# ----------------------------------------------------------------------------- summary


@dataclass
class Summary:
    """What a run did, over the whole shard (resumed questions included)."""

    kind: str
    output: str
    journal: str
    questions: int = 0
    resumed: int = 0
    gold_failed: int = 0
    candidates: int = 0
    labels: Counter = field(default_factory=Counter)
    duplicates: int = 0
    rows: int = 0
    pairs: int = 0
    questions_without_pair: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def count_record(self, record: dict[str, Any]) -> bool:
        """Add a journal record; False when its gold did not execute (question unusable)."""
        if record["gold_status"] != "ok":
            self.gold_failed += 1
            return False
        self.candidates += len(record["candidates"])
        self.labels.update(c["label"] for c in record["candidates"])
        return True

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["labels"] = {k: self.labels.get(k, 0) for k in LABELS}
        return out

    def table_rows(self) -> list[tuple[str, str]]:
        rows = [
            ("questions (this shard)", self.questions),
            ("  resumed from journal", self.resumed),
            ("  gold SQL failed", self.gold_failed),
            ("candidates", self.candidates),
        ]
        rows += [(f"  {k}", self.labels.get(k, 0)) for k in LABELS]
        rows += [("  duplicates dropped", self.duplicates)]
        rows += [(k.replace("_", " "), v) for k, v in self.extra.items()]
        rows += [("pairs written", self.pairs), ("questions with no usable pair", self.questions_without_pair)]
        return [(k, str(v)) for k, v in rows]

    def render(self) -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"lfkit prefs {self.kind}", show_header=False)
        table.add_column("what")
        table.add_column("count", justify="right")
        for k, v in self.table_rows():
            table.add_row(k, v)
        console = Console()
        console.print(table)
        for warning in self.warnings:
            console.print(f"[yellow]warning:[/yellow] {warning}")
        console.print(f"output: {self.output}\njournal: {self.journal}")

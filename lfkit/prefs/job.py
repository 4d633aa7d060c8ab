"""The sampling job shared by ``prefs rejects`` and ``prefs cot``.

SFT rows in -> candidates sampled per question -> every candidate executed and compared
with gold through :class:`lfkit.sql.Verifier` -> one journal record per question ->
output rows derived from the journal.

The journal (``<output>.candidates.jsonl``) is the resumable state and the labelled
candidate log: a header naming the settings that decide the samples, then one fsynced
record per finished question. A restarted run with the same settings skips the
questions already there; the output file is rewritten atomically from the journal at
the end, so no row is lost or written twice. Pairing options are applied when the
output is written, so they can change between runs without re-sampling.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lfkit.generate import GenerationBackend, SamplingConfig
from lfkit.generate.base import SEED_STRIDE
from lfkit.io import DataFileError, append_jsonl, iter_jsonl, read_rows

JOURNAL_VERSION = 1
PAIRINGS = ("all", "random", "hardest")
# Labels of a candidate. Only "wrong", "error" and "timeout" can become a rejected answer;
# "no_sql": nothing extractable, "malformed": unusable form (cot: no <think> reasoning).
LABELS = ("correct", "wrong", "error", "timeout", "no_sql", "malformed")
REJECTABLE = frozenset({"wrong", "error", "timeout"})


class JobError(RuntimeError):
    """A user-facing problem with a prefs run (bad input, a journal from other settings, ...)."""


@dataclass
class Item:
    """One question of the SFT file."""

    index: int  # position in the SFT file: seeds and shards derive from it
    question_id: Any
    db_id: str
    instruction: str
    input: str
    gold_sql: str
    db_path: Path

    @property
    def key(self) -> str:
        return str(self.question_id)


@dataclass
class JobConfig:
    """Settings shared by ``prefs rejects`` and ``prefs cot`` (CLI options of the same names)."""

    sft_data: str = field(
        metadata={"help": "SFT rows (JSON array or JSONL): instruction, input, output, db_id[, question_id]."}
    )
    db_root: str = field(metadata={"help": "Folder holding <db_id>/<db_id>.sqlite for every db_id of the SFT rows."})
    output: str = field(metadata={"help": "Output file; .jsonl = one row per line, else a JSON array."})
    num_samples: int = field(default=4, metadata={"help": "Completions sampled per question."})
    seed: int = field(default=1234, metadata={"help": "Base seed; question i, sample j uses seed + i*1000 + j."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature (0 = greedy)."})
    top_p: float = field(default=0.9, metadata={"help": "Nucleus sampling mass."})
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
        if self.num_shards < 1 or not 0 <= self.shard_id < self.num_shards:
            raise ValueError(
                f"shard_id must be in 0..{self.num_shards - 1} (num_shards={self.num_shards}), got {self.shard_id}"
            )
        if self.max_samples < 0:
            raise ValueError(f"max_samples must be >= 0, got {self.max_samples}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {', '.join(PAIRINGS)}, got {self.pairing!r}")
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
        return Path(self.journal) if self.journal else Path(self.output + ".candidates.jsonl")

    def pair_cap(self) -> int:
        if self.max_pairs_per_question:
            return self.max_pairs_per_question
        return 0 if self.pairing == "all" else 1

    def fingerprint(self, kind: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The settings that decide which candidates a question gets (and their labels)."""
        keys = ("num_samples", "seed", "temperature", "top_p", "max_new_tokens", "max_samples")
        keys += ("num_shards", "shard_id", "comparison")
        out = {k: getattr(self, k) for k in keys}
        sft = Path(self.sft_data)
        out.update(kind=kind, sft_data=str(sft.resolve()), db_root=str(Path(self.db_root).resolve()))
        out["sft_sha256"] = hashlib.sha256(sft.read_bytes()).hexdigest()  # an edited input is not resumed
        out.update(self.model_info)
        out.update(extra or {})
        return json.loads(json.dumps(out))  # as it reads back from the journal


# ----------------------------------------------------------------------------- input


def load_items(sft_data: str | os.PathLike[str], db_root: str | os.PathLike[str], max_samples: int = 0) -> list[Item]:
    """Read and check the SFT rows; every error names the file, the row and the field."""
    from lfkit.data.bird import resolve_db_path
    from lfkit.sql import extract_sql

    path = Path(sft_data)
    rows = read_rows(path)
    if max_samples:
        rows = rows[:max_samples]
    items: list[Item] = []
    seen: dict[str, int] = {}
    db_paths: dict[str, Path] = {}
    for i, row in enumerate(rows):
        for name in ("instruction", "output", "db_id"):
            if not isinstance(row.get(name), str) or not row[name].strip():
                raise DataFileError(f"{path}: row {i}: field '{name}' must be a non-empty string")
        if not isinstance(row.get("input", ""), str):
            raise DataFileError(f"{path}: row {i}: field 'input' must be a string")
        qid = row.get("question_id", i)  # BIRD train has none: its index in the file
        if not isinstance(qid, int | str) or isinstance(qid, bool):
            raise DataFileError(f"{path}: row {i}: field 'question_id' must be an integer or a string")
        if str(qid) in seen:
            raise DataFileError(f"{path}: row {i}: field 'question_id' {qid!r} repeats row {seen[str(qid)]}")
        seen[str(qid)] = i
        gold = extract_sql(row["output"])
        if not gold:
            raise DataFileError(f"{path}: row {i}: field 'output' holds no SQL")
        db_id = row["db_id"]
        if db_id not in db_paths:
            try:
                db_paths[db_id] = resolve_db_path(db_root, db_id)
            except (FileNotFoundError, ValueError) as exc:
                raise DataFileError(f"{path}: row {i}: field 'db_id' {db_id!r}: {exc}") from exc
        items.append(Item(i, qid, db_id, row["instruction"], row.get("input", ""), gold, db_paths[db_id]))
    return items


def shard_items(items: Sequence[Item], num_shards: int, shard_id: int) -> list[Item]:
    return [it for it in items if it.index % num_shards == shard_id]


# ----------------------------------------------------------------------------- journal


class Journal:
    """Header + one record per finished question, appended with fsync; locked while in use."""

    def __init__(self, path: Path, header: dict[str, Any], overwrite: bool = False) -> None:
        self.path = path
        self.header = header
        self.records: dict[str, dict[str, Any]] = {}
        self.resumed = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        # The journal itself carries the lock (append mode creates it, never truncates it).
        self._lock_fh = open(path, "a")  # noqa: SIM115 -- held for the job's lifetime
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock_fh.close()
            raise JobError(f"another run is writing {path}") from exc
        try:
            if path.stat().st_size and not self._is_journal():  # never touch a file that is not ours
                raise JobError(f"{path} exists and is not an lfkit journal; choose another --journal/--output")
            if overwrite:
                os.truncate(path, 0)
            self._load()
        except BaseException:
            self.close()
            raise

    def _load(self) -> None:
        if self.path.stat().st_size:
            self._drop_torn_tail()
            try:
                records = list(iter_jsonl(self.path))
            except json.JSONDecodeError as exc:
                raise JobError(f"journal {self.path} is corrupt ({exc}); delete it or pass --overwrite") from exc
            if records:
                old = records[0].get("settings")
                if records[0].get("lfkit_journal") != JOURNAL_VERSION or old != self.header:
                    raise JobError(self._mismatch(old))
                for rec in records[1:]:
                    self.records[str(rec["question_id"])] = rec
                self.resumed = len(self.records)
                return
        append_jsonl(self.path, [{"lfkit_journal": JOURNAL_VERSION, "settings": self.header}])

    def _is_journal(self) -> bool:
        with self.path.open("rb") as fh:
            first = fh.readline()
        try:
            return isinstance(head := json.loads(first), dict) and "lfkit_journal" in head
        except (json.JSONDecodeError, UnicodeDecodeError):
            return not first.endswith(b"\n") and first.startswith(b'{"lfkit_journal"')  # a torn header

    def _mismatch(self, old: Any) -> str:
        if not isinstance(old, dict):
            return f"{self.path} is not an lfkit journal; delete it or pass --overwrite"
        keys = sorted(set(old) | set(self.header))
        diffs = [f"{k}: {old.get(k)!r} -> {self.header.get(k)!r}" for k in keys if old.get(k) != self.header.get(k)]
        return (
            f"journal {self.path} was written with other settings ({'; '.join(diffs)}). "
            "Resume with the same settings, or pass --overwrite to start again."
        )

    def _drop_torn_tail(self) -> None:
        # A crash can leave half a line; appending after it would glue two records together.
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            with self.path.open("r+b") as fh:
                fh.truncate(end)
                fh.flush()
                os.fsync(fh.fileno())

    def done(self, item: Item) -> bool:
        return item.key in self.records

    def add(self, records: list[dict[str, Any]]) -> None:
        append_jsonl(self.path, records)
        for rec in records:
            self.records[str(rec["question_id"])] = rec

    def close(self) -> None:
        if not self._lock_fh.closed:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()


# ----------------------------------------------------------------------------- labelling


def label_of(verdict: Any, sql: str) -> str:
    if not sql:
        return "no_sql"
    if verdict.correct:
        return "correct"
    if verdict.status == "ok":
        return "wrong"
    return "timeout" if verdict.status == "timeout" else "error"


# Parses one completion into (sql, extra fields for the journal record of the candidate);
# an extra "label" overrides the execution label (e.g. "malformed").
Parser = Callable[[str], tuple[str, dict[str, Any]]]


def run_job(
    cfg: JobConfig,
    backend: GenerationBackend,
    kind: str,
    make_chat: Callable[[Item], list[dict[str, str]]],
    parse: Parser,
    fingerprint_extra: dict[str, Any] | None = None,
    progress: bool = True,
) -> tuple[list[Item], Journal]:
    """Sample, label and journal every question of the shard that the journal lacks.

    Returns the shard's items and the journal (still locked: the caller writes the output
    from it, then closes it) holding a record for each.
    """
    from lfkit.sql import Verifier

    items = shard_items(load_items(cfg.sft_data, cfg.db_root, cfg.max_samples), cfg.num_shards, cfg.shard_id)
    journal = Journal(cfg.journal_path, cfg.fingerprint(kind, fingerprint_extra), overwrite=cfg.overwrite)
    try:
        todo = [it for it in items if not journal.done(it)]
        sampling = cfg.sampling
        with (
            Verifier(comparison=cfg.comparison, timeout=cfg.timeout, workers=cfg.workers) as verifier,
            _bar(len(items), journal.resumed, f"{kind}: questions", progress) as advance,
        ):
            for start in range(0, len(todo), cfg.batch_size):
                chunk = todo[start : start + cfg.batch_size]
                seeds = [cfg.seed + it.index * SEED_STRIDE for it in chunk]
                texts = backend.generate([make_chat(it) for it in chunk], sampling, seeds=seeds)
                parsed = [[parse(t) for t in outs] for outs in texts]
                checks = [(it.db_path, it.gold_sql, sql) for it, ps in zip(chunk, parsed, strict=True) for sql, _ in ps]
                verdicts = iter(verifier.verify(checks))
                records = []
                for it, ps in zip(chunk, parsed, strict=True):
                    cands, gold_status = [], "ok"
                    for sql, extra in ps:
                        v = next(verdicts)
                        gold_status = v.gold.status
                        extra = dict(extra)
                        label = extra.pop("label", None) or label_of(v, sql)
                        cands.append({"sql": sql, "label": label, **extra})
                    records.append(
                        {
                            "question_id": it.question_id,
                            "index": it.index,
                            "gold_status": gold_status,
                            "candidates": cands,
                        }
                    )
                journal.add(records)
                advance(len(chunk))
    except BaseException:
        journal.close()
        raise
    return items, journal


@contextmanager
def _bar(total: int, done: int, description: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    if not enabled or total == 0:
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, TimeRemainingColumn(), console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total, completed=done)
        yield lambda n=1: bar.advance(task, n)


# ----------------------------------------------------------------------------- pairing


def sql_tokens(sql: str) -> list[str]:
    """Tokens of the normalised SQL (sqlglot), for edit distances between queries."""
    import sqlglot

    from lfkit.sql import normalize_sql

    norm = normalize_sql(sql) if sql else ""
    try:
        return [t.text for t in sqlglot.tokenize(norm, read="sqlite")]
    except Exception:  # sqlglot raises TokenError and others on garbage; fall back to words
        return norm.split()


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two token sequences."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        cur = [i]
        for j, y in enumerate(b, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


@dataclass
class Option:
    """A chosen or rejected answer: the text written to the row, and its SQL."""

    text: str
    sql: str
    label: str = ""


def select_pairs(
    chosen: Sequence[Option], rejected: Sequence[Option], pairing: str, cap: int, rng: random.Random
) -> list[tuple[Option, Option]]:
    """Pairs under a strategy: ``all`` (chosen-major order), ``random`` or ``hardest``
    (smallest token edit distance between the two SQL first); at most ``cap`` (0 = no cap)."""
    # A pair needs two different answers (LLaMA-Factory learns nothing from equal ones).
    pairs = [(c, r) for c in chosen for r in rejected if c.text.strip() != r.text.strip()]
    if pairing == "random":
        rng.shuffle(pairs)
    elif pairing == "hardest":
        tokens: dict[str, list[str]] = {}
        for opt in [*chosen, *rejected]:
            if opt.sql not in tokens:
                tokens[opt.sql] = sql_tokens(opt.sql)
        pairs.sort(key=lambda p: edit_distance(tokens[p[0].sql], tokens[p[1].sql]))
    elif pairing != "all":
        raise ValueError(f"unknown pairing {pairing!r}")
    return pairs[:cap] if cap else pairs


def dedup_options(options: Sequence[Option], exclude: set[str] | None = None) -> tuple[list[Option], int]:
    """Keep the first option per normalised SQL (and none whose normalised SQL is in ``exclude``)."""
    from lfkit.sql import normalize_sql

    seen = set(exclude or ())
    kept, dropped = [], 0
    for opt in options:
        key = normalize_sql(opt.sql)
        if key in seen:
            dropped += 1
            continue
        seen.add(key)
        kept.append(opt)
    return kept, dropped


def pair_rng(seed: int, item: Item) -> random.Random:
    return random.Random(seed * 1_000_003 + item.index)


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
        console.print(f"output: {self.output}\njournal: {self.journal}")

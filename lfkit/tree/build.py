"""``lfkit tree build``: revision trees, breadth-first across many questions at once.

For a *wave* of questions (``wave_size`` of them), depth by depth:

1. every frontier node of every tree in the wave is one chat -- the SFT prompt at depth 1,
   a wrong node's revision prompt below (:mod:`lfkit.tree.feedback`) -- and the whole
   frontier is ONE ``backend.generate`` call with ``n = sample_num`` (ReSQLver generates
   one question's few prompts at a time, so a GPU batch is never full);
2. the completions are labelled by :func:`lfkit.sql.label.label_candidates` (the one
   labelling step: extract, execute, compare with gold);
3. each completion becomes a node; a node that is not correct, above ``max_depth``, gets
   the revision prompt built from its SQL and *its own* execution outcome, and joins the
   next frontier.

Then distances are computed (and the tree pruned with ``prune``). The job is resumable
through :mod:`lfkit.jobs`: the trees file ``<output_dir>/trees_<shard_id>.jsonl`` IS the
journal -- a settings header, then one finished tree per line, appended and fsynced wave
by wave. Killed at any point and re-run with the same settings, finished trees are kept,
the wave in flight is rebuilt, no tree is lost or written twice. With one shard,
``all_trees.json`` is written at the end (else: ``lfkit tree merge --kind trees``).

Seeds: completion ``j`` of question ``i`` at depth 1 uses ``seed + i*1000 + j`` (the
convention of ``lfkit prefs``); below, the base seed also depends on the parent node id,
so a rebuilt wave samples exactly what the killed one would have.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfkit.data.rows import Question
from lfkit.generate import GenerationBackend, SamplingConfig
from lfkit.generate.base import SEED_STRIDE
from lfkit.generate.defaults import SAMPLING
from lfkit.jobs import Journal, check_shard, file_sha256, run_batches, settings_fingerprint, shard
from lfkit.sql.extract import SQL_FENCE_STOP
from lfkit.tree.feedback import execution_feedback, question_chat, revision_chat
from lfkit.tree.model import INITIAL, RevisionTree

TREES_FILE = "trees_{shard_id}.jsonl"
ALL_TREES = "all_trees.json"


@dataclass
class TreeBuildConfig:
    """``lfkit tree build`` settings (CLI options of the same names)."""

    sft_data: str = field(metadata={"help": "SFT rows: instruction, input, output, db_id[, question_id]."})
    db_root: str = field(metadata={"help": "Folder holding <db_id>/<db_id>.sqlite."})
    output_dir: str = field(metadata={"help": "Folder for trees_<shard_id>.jsonl (and all_trees.json)."})
    max_depth: int = field(default=5, metadata={"help": "Deepest revision level (depth 1 = first answers)."})
    sample_num: int = field(default=2, metadata={"help": "Children sampled per expanded node (and at depth 1)."})
    temperature: float = field(default=SAMPLING["tree"].temperature, metadata={"help": "Sampling temperature."})
    top_p: float = field(default=SAMPLING["tree"].top_p, metadata={"help": "Nucleus sampling mass (ReSQLver: 1.0)."})
    max_new_tokens: int = field(default=512, metadata={"help": "Generation cap per completion."})
    seed: int = field(default=SAMPLING["tree"].seed, metadata={"help": "Base seed (question i: seed + i*1000)."})
    max_samples: int = field(default=0, metadata={"help": "Use only the first N SFT rows (0 = all)."})
    num_shards: int = field(default=1, metadata={"help": "Split the questions into K shards (row index mod K)."})
    shard_id: int = field(default=0, metadata={"help": "Which shard this run builds, 0..K-1."})
    wave_size: int = field(default=64, metadata={"help": "Questions built together (one generate call per depth)."})
    comparison: str = field(default="bird", metadata={"help": "Execution comparison: bird or testsuite."})
    timeout: float = field(default=30.0, metadata={"help": "Seconds per SQL execution."})
    workers: int | None = field(default=None, metadata={"help": "SQL execution processes (default: CPU count)."})
    gold_row_count: bool = field(
        default=False, metadata={"help": "Feedback also says how many rows gold returns (a count, never rows)."}
    )
    prune: bool = field(default=False, metadata={"help": "Keep only paths to a correct node (ReSQLver's trees)."})
    stop: bool = field(
        default=True, metadata={"help": "End each answer at its first closed ```sql fence (False: decode to the cap)."}
    )
    overwrite: bool = field(default=False, metadata={"help": "Discard an existing trees file instead of resuming."})
    model_info: dict[str, Any] = field(default_factory=dict, metadata={"help": "Model identity for the header."})

    def __post_init__(self) -> None:
        for name in ("max_depth", "sample_num", "wave_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_samples < 0:
            raise ValueError(f"max_samples must be >= 0, got {self.max_samples}")
        check_shard(self.num_shards, self.shard_id)
        self.sampling  # validates temperature, top_p, max_new_tokens  # noqa: B018

    @property
    def sampling(self) -> SamplingConfig:
        return SamplingConfig(
            n=self.sample_num,
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            seed=self.seed,
            stop=SQL_FENCE_STOP if self.stop else (),
        )

    @property
    def trees_path(self) -> Path:
        return Path(self.output_dir) / TREES_FILE.format(shard_id=self.shard_id)

    def fingerprint(self) -> dict[str, Any]:
        """The settings that decide the trees (the header of the trees file; merge compares them)."""
        keys = ("max_depth", "sample_num", "temperature", "top_p", "max_new_tokens", "seed", "max_samples")
        keys += ("num_shards", "shard_id", "comparison", "gold_row_count", "prune", "stop")
        out: dict[str, Any] = {k: getattr(self, k) for k in keys}
        sft = Path(self.sft_data)
        out.update(kind="tree", sft_data=str(sft.resolve()), db_root=str(Path(self.db_root).resolve()))
        out["sft_sha256"] = file_sha256(sft)
        out.update(self.model_info)
        return settings_fingerprint(out)


def node_seed(cfg: TreeBuildConfig, question: Question, parent_id: str) -> int:
    """Base seed of the completions answering ``parent_id``'s prompt (``+ j`` per sample)."""
    base = cfg.seed + question.index * SEED_STRIDE
    if parent_id == INITIAL:
        return base
    return (base + 7919 * (zlib.crc32(parent_id.encode()) + 1)) % (2**31 - 1024)


@dataclass
class _Frontier:
    k: int  # index of the question in the wave
    parent_id: str
    chat: list[dict[str, str]]


class WaveBuilder:
    """Builds the trees of one wave of questions; counts generate calls for the summary."""

    def __init__(self, cfg: TreeBuildConfig, backend: GenerationBackend, verifier: Any) -> None:
        self.cfg, self.backend, self.verifier = cfg, backend, verifier
        self.generate_calls = 0
        self.prompts = 0

    def _gold_rows(self, question: Question) -> int | None:
        # a cache hit: label_candidates already ran gold
        (gold,) = self.verifier.execute_many([(question.db_path, question.gold_sql)])
        return len(gold.rows) if gold.ok else None

    def build(self, questions: list[Question]) -> list[dict[str, Any]]:
        """One tree record (``RevisionTree.to_dict``) per question, in order."""
        from lfkit.sql.label import label_candidates

        cfg = self.cfg
        trees = []
        for q in questions:
            chat = question_chat(q.instruction, q.input)
            trees.append(
                RevisionTree(
                    question_id=q.question_id,
                    db_id=q.db_id,
                    question=q.question,
                    evidence=q.evidence,
                    difficulty=q.difficulty,
                    gold_sql=q.gold_sql,
                    initial_input_seq=chat[-1]["content"],
                    max_depth=cfg.max_depth,
                    sample_num=cfg.sample_num,
                    instruction=q.instruction,
                    input=q.input,
                    sft_index=q.index,
                )
            )
        frontier = [_Frontier(k, INITIAL, question_chat(q.instruction, q.input)) for k, q in enumerate(questions)]
        for depth in range(1, cfg.max_depth + 1):
            if not frontier:
                break
            asked = [questions[f.k] for f in frontier]
            seeds = [node_seed(cfg, questions[f.k], f.parent_id) for f in frontier]
            texts = self.backend.generate([f.chat for f in frontier], cfg.sampling, seeds=seeds)
            self.generate_calls += 1
            self.prompts += len(frontier)
            labelled = label_candidates(asked, texts, self.verifier)
            # each candidate's own result (cache hits: label_candidates just ran them)
            runs = [(questions[f.k].db_path, c.sql) for f, cands in zip(frontier, labelled, strict=True) for c in cands]
            results = iter(self.verifier.execute_many(runs))
            next_frontier = []
            for f, cands in zip(frontier, labelled, strict=True):
                tree, q = trees[f.k], questions[f.k]
                for c in cands:
                    result = next(results)
                    if c.gold_status != "ok":
                        tree.gold_status = c.gold_status
                    gold_rows = self._gold_rows(q) if cfg.gold_row_count and c.label != "correct" else None
                    node = tree.add_node(
                        f.parent_id,
                        depth,
                        generated_sql=c.sql,
                        is_correct=c.label == "correct",
                        label=c.label,
                        execution_status=c.status,
                        execution_feedback=execution_feedback(result if c.sql else None, gold_rows),
                    )
                    if c.label == "correct" or depth == cfg.max_depth or tree.gold_status != "ok":
                        continue
                    chat = revision_chat(q.instruction, q.input, c.sql, node.execution_feedback)
                    node.input_seq = chat[-1]["content"]
                    next_frontier.append(_Frontier(f.k, node.node_id, chat))
            frontier = next_frontier
        for tree in trees:
            tree.compute_distances()
            if cfg.prune:
                tree.prune()
                tree.compute_distances()
        return [t.to_dict() for t in trees]


def tree_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts over finished trees: nodes per depth, correct at depth 1 vs rescued by revision, labels."""
    depth_total: Counter = Counter()
    depth_correct: Counter = Counter()
    labels: Counter = Counter()
    first = rescued = gold_failed = nodes = 0
    for rec in records:
        stats = rec["statistics"]
        nodes += stats["total_nodes"]
        for d, s in stats["depth_statistics"].items():
            depth_total[d] += s["total"]
            depth_correct[d] += s["correct"]
        labels.update({k: v for k, v in stats.get("labels", {}).items() if v})
        first += bool(stats.get("correct_at_depth_1"))
        rescued += bool(stats.get("rescued"))
        gold_failed += rec.get("gold_status", "ok") != "ok"
    return {
        "trees": len(records),
        "nodes": nodes,
        "nodes_per_depth": {d: {"total": depth_total[d], "correct": depth_correct[d]} for d in sorted(depth_total)},
        "correct_at_depth_1": first,
        "rescued_by_revision": rescued,
        "never_correct": len(records) - first - rescued,
        "gold_failed": gold_failed,
        "labels": dict(labels),
    }


def build_trees(cfg: TreeBuildConfig, backend: GenerationBackend, progress: bool = True) -> dict[str, Any]:
    """Build (or resume) this shard's trees; returns a summary (see :func:`tree_summary`)."""
    from lfkit.data.sft_questions import load_questions
    from lfkit.prefs.job import journal_key
    from lfkit.sql import Verifier

    questions = shard(load_questions(cfg.sft_data, cfg.db_root, cfg.max_samples), cfg.num_shards, cfg.shard_id)
    start = time.monotonic()
    with (
        Journal(cfg.trees_path, cfg.fingerprint(), key=journal_key, overwrite=cfg.overwrite) as journal,
        Verifier(comparison=cfg.comparison, timeout=cfg.timeout, workers=cfg.workers) as verifier,
    ):
        resumed = journal.resumed
        builder = WaveBuilder(cfg, backend, verifier)
        built = run_batches(
            journal, questions, builder.build, batch_size=cfg.wave_size, progress=progress, description="tree build"
        )
        records = [journal.records[q.key] for q in questions]
    summary = {
        **tree_summary(records),
        "built": built,
        "resumed": resumed,
        "generate_calls": builder.generate_calls,
        "prompts": builder.prompts,
        "seconds": round(time.monotonic() - start, 2),
        "trees_file": str(cfg.trees_path),
    }
    if cfg.num_shards == 1:
        from lfkit.tree.merge import merge_tree_shards

        all_trees = Path(cfg.output_dir) / ALL_TREES
        merge_tree_shards([cfg.trees_path], all_trees)
        summary["all_trees"] = str(all_trees)
    return summary


__all__ = ["ALL_TREES", "TREES_FILE", "TreeBuildConfig", "WaveBuilder", "build_trees", "node_seed", "tree_summary"]

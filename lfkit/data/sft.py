"""SFT rows (alpaca) from a BIRD-style corpus.

A row is ``{"instruction", "input", "output", "question_id", "db_id"}``: the instruction and
input come from :class:`~lfkit.data.prompts.SchemaPromptBuilder`, the output is the gold SQL
in the answer format of :func:`~lfkit.data.prompts.format_sql_answer`.
"""

from __future__ import annotations

import logging
import os
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lfkit.data.bird import load_bird
from lfkit.data.prompts import SchemaPromptBuilder, format_sql_answer
from lfkit.data.rows import Question, sft_row
from lfkit.io import write_rows

logger = logging.getLogger(__name__)


@dataclass
class SFTOptions:
    """What `lfkit data sft` does besides building prompts."""

    limit: int | None = field(default=None, metadata={"help": "Keep at most this many questions."})
    sample_seed: int | None = field(
        default=None,
        metadata={
            "help": "With limit: a random sample drawn with this seed (kept in file order); else the first rows."
        },
    )
    by_template: bool = field(
        default=False,
        metadata={
            "help": "With limit and sample_seed: draw the sample per gold-SQL template (its literals as ?), each "
            "template in proportion, so the questions kept and those left out both cover every template."
        },
    )
    check_gold: bool = field(
        default=False, metadata={"help": "Execute every gold query; drop rows whose SQL errors or times out."}
    )
    timeout: float = field(default=30.0, metadata={"help": "Seconds per gold query when check_gold is on."})
    workers: int | None = field(default=None, metadata={"help": "Processes executing gold SQL (default: CPU count)."})

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"limit must be positive, got {self.limit}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout}")
        if self.by_template and (self.limit is None or self.sample_seed is None):
            raise ValueError("by_template draws a seeded sample: give it a limit and a sample_seed")


def select_examples(
    examples: Sequence[Question], limit: int | None, sample_seed: int | None, *, by_template: bool = False
) -> list[Question]:
    """The first ``limit`` examples, or a seeded random sample of them kept in file order (``by_template``: a
    sample of each gold-SQL template in proportion, :func:`stratified_sample`)."""
    examples = list(examples)
    if limit is None or limit >= len(examples):
        return examples
    if sample_seed is None:
        return examples[:limit]
    if by_template:
        from lfkit.sql.shape import skeleton

        keep = stratified_sample([skeleton(e.gold_sql) for e in examples], limit, sample_seed)
    else:
        keep = sorted(random.Random(sample_seed).sample(range(len(examples)), limit))
    return [examples[i] for i in keep]


def stratified_sample(groups: Sequence[str], limit: int, seed: int) -> list[int]:
    """``limit`` indices of ``groups`` (one group name per item), sorted, each group's count as close to its
    exact share (``limit`` x its size / ``len(groups)``) as whole items allow: the floor of that share, then
    one more for the largest remainders (ties in a seeded order); the items within a group are a seeded sample.

    Why: a plain sample of 400 of 528 demo questions left every question of one template in the SFT (seed 0),
    so ``--round-questions unseen`` never asked the round about it (README, "make quality").

    >>> groups = ["a"] * 6 + ["b"] * 3 + ["c"]
    >>> keep = stratified_sample(groups, 5, seed=0)
    >>> sorted(groups[i] for i in keep)[:4], len(keep), keep == sorted(keep)
    (['a', 'a', 'a', 'b'], 5, True)
    >>> stratified_sample(groups, 5, seed=0) == keep
    True
    """
    rng = random.Random(seed)
    members: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    for items in members.values():
        rng.shuffle(items)
    exact = {g: limit * len(items) / len(groups) for g, items in members.items()}
    take = {g: int(share) for g, share in exact.items()}
    order = list(members)
    rng.shuffle(order)  # the seeded tie order; sort is stable
    order.sort(key=lambda g: exact[g] - take[g], reverse=True)
    for g in order[: limit - sum(take.values())]:
        take[g] += 1
    return sorted(i for g, items in members.items() for i in items[: take[g]])


def check_gold_sql(
    examples: Sequence[Question], timeout: float = 30.0, workers: int | None = None, progress: bool = False
) -> list[str]:
    """Execution status of every gold query (``ok | error | timeout | too_many_rows``), via lfkit.sql."""
    from lfkit.sql import Verifier

    with Verifier(timeout=timeout, workers=workers) as verifier:
        results = verifier.execute_many([(e.db_path, e.gold_sql) for e in examples], progress=progress)
    return [r.status for r in results]


# A gold answer longer than the row cap still executed: only errors and timeouts drop a row.
GOLD_FAILURES = frozenset({"error", "timeout"})


def build_sft(
    bird_dir: str | os.PathLike[str],
    split: str,
    out: str | os.PathLike[str],
    builder: SchemaPromptBuilder | None = None,
    options: SFTOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    gold_progress: bool = False,
) -> dict[str, Any]:
    """Write SFT rows for ``<bird_dir>/<split>.json`` to ``out`` (JSONL by extension, else a JSON array).

    Returns stats: rows written, rows dropped by gold status, prompts shortened by the budget.
    """
    builder = builder or SchemaPromptBuilder()
    options = options or SFTOptions()
    examples = select_examples(
        load_bird(bird_dir, split), options.limit, options.sample_seed, by_template=options.by_template
    )
    dropped: Counter[str] = Counter()
    if options.check_gold:
        statuses = check_gold_sql(examples, options.timeout, options.workers, progress=gold_progress)
        dropped = Counter(s for s in statuses if s in GOLD_FAILURES)
        failed = [e.question_id for e, s in zip(examples, statuses, strict=True) if s in GOLD_FAILURES]
        if failed:
            logger.warning(
                "dropped %d of %d rows whose gold SQL does not execute (%s); question_ids: %s",
                len(failed),
                len(examples),
                ", ".join(f"{k}: {v}" for k, v in sorted(dropped.items())),
                ", ".join(map(str, failed[:20])) + (", ..." if len(failed) > 20 else ""),
            )
        examples = [e for e, s in zip(examples, statuses, strict=True) if s not in GOLD_FAILURES]
    rows = []
    for i, example in enumerate(examples):
        rows.append(sft_row(example, *builder.build(example), format_sql_answer(example.gold_sql)))
        if progress is not None:
            progress(i + 1, len(examples))
    builder.warn_if_cut()
    write_rows(out, rows)
    return {
        "out": str(out),
        "rows": len(rows),
        "dropped": dict(sorted(dropped.items())),
        "prompts_cut": builder.n_cut,
        "prompts_over_budget": builder.n_over_budget,
        "databases": len({e.db_id for e in examples}),
        "budget_report": builder.report(),
    }

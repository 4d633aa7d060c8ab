"""The stage library beyond DPO: revision trees, the reward model's data and evaluation, best-of-N, GRPO.

Like :mod:`lfkit.pipeline.steps`: functions of a :class:`~lfkit.pipeline.steps.RunContext` and typed
inputs returning typed results; ``lfkit demo --full`` composes them. Training goes through
``steps.stage_train`` (the reward model) or ``lfkit.grpo`` (GRPO), sampling through the run's one
backend factory.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lfkit.generate.defaults import SAMPLING
from lfkit.pipeline.engine import make_backend
from lfkit.pipeline.results import (
    BonSampleResult,
    BonScoreResult,
    BonSelectResult,
    GrpoResult,
    ModelRef,
    RmDataResult,
    RmEvalResult,
    TreesResult,
)
from lfkit.pipeline.steps import SEED_OFFSETS, RunContext, StageFailed, lora_overrides

if TYPE_CHECKING:
    from lfkit.pipeline.config import RoundsSettings

RM_DATASET = "lfkit_full_rm"


def stage_trees(
    run: RunContext, policy: ModelRef, *, questions: int, depth: int, samples: int, temperature: float
) -> TreesResult:
    """``lfkit tree build`` (``policy``, the first ``questions`` train SFT rows) then ``lfkit tree verify``."""
    from lfkit.data.bird import split_db_root
    from lfkit.io import atomic_write_text
    from lfkit.tree.build import TreeBuildConfig, build_trees
    from lfkit.tree.model import load_trees
    from lfkit.tree.verify import verify_trees

    layout = run.layout
    db_root = split_db_root(run.corpus, "train")
    build = TreeBuildConfig(
        sft_data=str(layout.sft_data),
        db_root=str(db_root),
        output_dir=str(layout.trees),
        max_depth=depth,
        sample_num=samples,
        temperature=temperature,
        max_new_tokens=run.max_new_tokens,
        seed=run.seed + SEED_OFFSETS["trees"],
        max_samples=questions,
        overwrite=run.force,
        model_info={"model": policy.base, "adapters": list(policy.adapters)},
    )
    with make_backend(run.gen, policy) as backend:
        summary = build_trees(build, backend, progress=True)
    all_trees = Path(summary["all_trees"])
    report = verify_trees(load_trees([all_trees]), db_root).as_dict()
    verification = layout.trees / "verification_report.json"
    atomic_write_text(verification, json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    if not report["ok"]:
        raise StageFailed(f"revision trees failed verification: see {verification}")
    top = ("trees", "nodes", "correct_at_depth_1", "rescued_by_revision")
    rest = {k: v for k, v in summary.items() if k not in (*top, "seconds", "trees_file", "all_trees")}
    return TreesResult(
        **{k: summary[k] for k in top},
        summary=rest,
        all_trees=layout.rel(all_trees),
        verification=layout.rel(verification),
        verified_ok=report["ok"],
        policy=policy,
    )


def stage_rm_data(
    run: RunContext, round_pairs: list[Path], rounds: RoundsSettings, per_question: int | None
) -> RmDataResult:
    """Tree pairs (every rule, no test split: the RM's held-out pairs are on dev questions) plus the
    rounds' pairs (``round_pairs``, the non-empty ones), merged into one preference dataset and registered.
    With ``per_question`` the rounds' pairs are made again from their journals with up to that many pairs
    per question (``rounds``' chosen side and reject kinds, the rounds' pairing) into ``rm_pairs.jsonl``
    beside them."""
    from lfkit.io import read_rows
    from lfkit.prefs import merge_outputs
    from lfkit.prefs.job import default_journal
    from lfkit.prefs.rejects import pairs_from_journal
    from lfkit.registry import register_dataset
    from lfkit.reward.rm_eval import pair_kind
    from lfkit.tree.build import ALL_TREES
    from lfkit.tree.model import load_trees
    from lfkit.tree.pairs import build_pairs, write_pairs

    layout = run.layout
    result = build_pairs(load_trees([layout.trees / ALL_TREES]), test_fraction=0.0, seed=run.seed)
    write_pairs(result, layout.tree_pairs)
    inputs = [layout.tree_pairs] if result.train else []
    if per_question is not None:
        kinds = tuple(rounds.reject_kinds.split(","))
        pairing = dict(chosen=rounds.chosen, reject_kinds=kinds, pairing=rounds.round_pairing)
        repaired = []
        for pairs in round_pairs:
            journal = default_journal(pairs)
            if journal.is_file():
                pairs = pairs.with_name("rm_pairs.jsonl")
                pairs_from_journal(journal, pairs, max_pairs_per_question=per_question, **pairing)
            repaired.append(pairs)
        round_pairs = repaired
    inputs += [p for p in round_pairs if p.is_file() and p.stat().st_size > 0]
    if not inputs:
        raise StageFailed("no preference pair for the reward model: the trees gave none and no DPO round had one")
    merged = merge_outputs(inputs, layout.rm_train)
    rows = read_rows(layout.rm_train)
    register_dataset(layout.dataset_info, RM_DATASET, layout.rm_train, "preference", force=True)
    by_kind: dict[str, dict[str, int]] = {}
    for r in rows:
        kinds = by_kind.setdefault(r.get("source", "unknown"), {})
        kind = pair_kind(r) + (f" ({r['reject_kind']} rejected)" if r.get("reject_kind") else "")
        kinds[kind] = kinds.get(kind, 0) + 1
    return RmDataResult(
        pairs=len(rows),
        tree_pairs=result.summary(),
        inputs=[layout.rel(p) for p in inputs],
        duplicates_dropped=merged.get("duplicates", 0),
        by_source=dict(Counter(r.get("source", "unknown") for r in rows)),
        by_source_and_kind=by_kind,
        file=layout.rel(layout.rm_train),
    )


def stage_rm_eval(run: RunContext, rm_base: str, rm_adapter: Path) -> RmEvalResult:
    """``lfkit rm eval``: the RM and its base with an untrained head (``none``) on the held-out dev pairs."""
    from lfkit.reward.rm_eval import run_rm_eval

    results = run_rm_eval(
        rm_base,
        [str(rm_adapter), "none"],
        run.layout.rm_test,
        run.layout.rm_eval,
        template=run.preset["template"],
        cutoff_len=_cutoff(run),
        questions=run.corpus / "dev.json",
        device="cpu",
    )
    keys = ("n", "accuracy", "correct", "ties", "avg_margin", "by_difficulty", "by_kind")
    return RmEvalResult(
        models={("rm" if r["name"] != "none" else "none"): {k: r[k] for k in keys} for r in results},
        report=run.layout.rel(run.layout.rm_eval),
    )


def _cutoff(run: RunContext) -> int:
    if run.demo is None:
        raise StageFailed("the reward-model stages run on an embedded preset's demo profile")
    return run.demo.cutoff_len


def stage_bon_sample(
    run: RunContext, policy: ModelRef, *, n: int, questions: int, temperature: float
) -> BonSampleResult:
    """``lfkit eval predict --n N --with-greedy`` on the first ``questions`` dev questions with ``policy``."""
    from lfkit.data.bird import load_bird
    from lfkit.eval.predict import sample_candidates, write_candidates
    from lfkit.sql import Verifier

    examples = load_bird(run.corpus, "dev")[:questions]
    with make_backend(run.gen, policy) as backend, Verifier() as verifier:
        records = sample_candidates(
            examples,
            backend,
            run.builder(),
            verifier,
            n=n,
            temperature=temperature,
            top_p=SAMPLING["candidates"].top_p,
            max_new_tokens=run.max_new_tokens,
            seed=run.seed + SEED_OFFSETS["bon"],
            with_greedy=True,
            chunk_size=max(1, run.batch_size // n),
        )
    path = run.layout.bon / "candidates.jsonl"
    summary = write_candidates(path, records)
    return BonSampleResult(
        questions=summary["questions"],
        labels=summary["labels"],
        pass_at_n=summary["pass_at_n"],
        n=n,
        candidates=run.layout.rel(path),
        policy=policy,
    )


def stage_bon_score(run: RunContext, rm_base: str, rm_adapter: Path) -> BonScoreResult:
    """``lfkit rm score``: one RM score per candidate (the RM on ``rm_base``, the model it was trained on)."""
    from lfkit.reward.rm_eval import run_rm_score

    out = run.layout.bon / "scores.jsonl"
    summary = run_rm_score(
        rm_base,
        str(rm_adapter),
        run.layout.bon / "candidates.jsonl",
        out,
        template=run.preset["template"],
        cutoff_len=_cutoff(run),
        device="cpu",
    )
    return BonScoreResult(
        questions=summary["questions"],
        candidates=summary["candidates"],
        failed_sql=summary["failed_sql"],
        scores=run.layout.rel(out),
    )


def stage_bon_select(run: RunContext) -> BonSelectResult:
    """``lfkit eval select --greedy-candidate``: EX of first / greedy / vote / RM / oracle over the N samples
    and the greedy decode, each from its own predict_dev.json."""
    from lfkit.data.bird import split_db_root
    from lfkit.eval.select import run_select

    layout = run.layout
    report = run_select(
        layout.bon / "candidates.jsonl",
        run.corpus / "dev.json",
        split_db_root(run.corpus, "dev"),
        layout.bon / "select.json",
        scores=layout.bon / "scores.jsonl",
        greedy_candidate=True,  # best-of-N among the samples and the greedy decode (issue 29)
    )
    strategies = {
        name: {**{k: v for k, v in s.items() if k != "predictions"}, "predictions": layout.rel(s["predictions"])}
        for name, s in report["strategies"].items()
    }
    return BonSelectResult(
        questions=report["questions"],
        n_candidates=report["n_candidates"],
        labels=report["labels"],
        strategies=json.loads(json.dumps(strategies, default=str)),
        report=layout.rel(layout.bon / "select.json"),
        plot=layout.rel(report["plot"]) if report.get("plot") else None,
    )


def grpo_overrides(run: RunContext, steps: int, lr: float | None) -> dict[str, Any]:
    """``lfkit render grpo --set`` values of a run: steps, token cap, logging, the profile's LoRA layout."""
    out: dict[str, Any] = {
        "max_steps": steps,
        "max_completion_length": run.max_new_tokens,
        "seed": run.seed,
        "save_steps": 100000,
        "logging_steps": 1,
        "lfkit.dev_every": 0,  # the run's own eval stage evaluates the whole dev split
    }
    if lr is not None:
        out["learning_rate"] = lr
    if run.demo is not None:
        demo = run.demo
        out.update(lora_overrides(run.preset["model_name_or_path"], demo.lora_last_layers, demo.lora_rank))
    return out


def stage_grpo(run: RunContext, policy: ModelRef, *, steps: int, lr: float | None) -> GrpoResult:
    """``lfkit data grpo`` + ``lfkit render grpo --adapter <policy>`` + ``lfkit grpo train``."""
    from lfkit.data.grpo import grpo_data
    from lfkit.grpo.train import LOG_FILE, train_grpo
    from lfkit.io import read_rows
    from lfkit.recipes.grpo import merged_path, render_grpo, write_grpo_config

    if len(policy.adapters) != 1:
        raise StageFailed(f"GRPO starts from one adapter on a base model; the policy is {policy.as_dict()}")
    layout = run.layout
    rows = grpo_data(layout.grpo_data, bird_dir=run.corpus, split="train", builder=run.builder())
    config = render_grpo(
        {**run.preset, "model_name_or_path": policy.base},
        grpo_overrides(run, steps, lr),
        dataset=layout.grpo_data.resolve(),
        output_dir=layout.adapter("grpo").resolve(),
        sft_adapter=policy.adapters[0],
    )
    recipe = write_grpo_config(config, layout.recipes / "grpo.yaml")
    summary = train_grpo(recipe)
    log_file = layout.adapter("grpo") / LOG_FILE
    log = read_rows(log_file) if log_file.is_file() else []
    curve = [[r["step"], r["reward"]] for r in log if r.get("reward") is not None and r.get("step") is not None]
    return GrpoResult(
        steps=summary["steps"],
        rows=rows["rows"],
        reward_curve=curve,
        first_reward=curve[0][1] if curve else None,
        last_reward=curve[-1][1] if curve else None,
        reward_errors=summary["reward_errors"],
        kl_reference=summary["kl_reference"],
        recipe=layout.rel(recipe),
        adapter=layout.rel(layout.adapter("grpo")),
        start_model=str(Path(merged_path(policy.adapters[0]))),
        policy=policy,
        reward_curve_png=layout.rel(summary["reward_curve"]) if summary.get("reward_curve") else None,
    )


__all__ = [
    "RM_DATASET",
    "grpo_overrides",
    "stage_bon_sample",
    "stage_bon_score",
    "stage_bon_select",
    "stage_grpo",
    "stage_rm_data",
    "stage_rm_eval",
    "stage_trees",
]

"""The stage library of the DPO loop: corpus, evaluate, train (LLaMA-Factory), merge, sample + label + pair.

Each stage is a function of a :class:`RunContext` (what every stage of one run shares) and typed
inputs, returning a typed result (``lfkit.pipeline.results``) that the runner caches. ``lfkit demo``,
``lfkit iterate`` and ``lfkit demo --full`` are compositions of these functions (and of
``lfkit.pipeline.steps_full``'s trees, reward model, best-of-N and GRPO); each function calls the
library module that owns its concept. The rules every composition shares live here once: the
prompt builder (:meth:`RunContext.builder`), the LoRA overrides (:func:`lora_overrides`), the
LLaMA-Factory values of a training run (:meth:`RunContext.train_overrides`) and the preference
sampling set-up (:func:`rejects_config`, :data:`PREF_TOP_P`, :func:`prefs_seed`).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lfkit.errors import LfkitError
from lfkit.generate.defaults import SAMPLING
from lfkit.pipeline.config import DemoConfig, SamplingSettings
from lfkit.pipeline.engine import Generation, make_backend
from lfkit.pipeline.layout import RunLayout
from lfkit.pipeline.results import CorpusResult, EvalResult, MergeResult, ModelRef, PrefsResult, TrainResult

if TYPE_CHECKING:
    from lfkit.prefs.rejects import RejectsConfig

SFT_DATASET = "lfkit_demo_sft"
DPO_DATASET = "lfkit_demo_dpo"
ROUND_DATASET = "lfkit_iter_round"  # + k: round k's pairs

# Preference sampling's nucleus mass and each sampler's seed offset, from the one sampling-defaults table
# (a run with seed 0 samples as the command it stands for); held-out RM pairs take a stream of their own.
PREF_TOP_P = SAMPLING["prefs"].top_p
SEED_OFFSETS = {
    "prefs": SAMPLING["prefs"].seed,
    "trees": SAMPLING["tree"].seed,
    "rm_test": 4321,
    "bon": SAMPLING["candidates"].seed,
}


class StageFailed(LfkitError, RuntimeError):
    """A stage cannot go on (a trainer wrote nothing, no pair to train on); the message says which and why."""


def prefs_seed(seed: int, round: int | None = None) -> int:
    """The preference sampler's seed: ``seed + 1234``; DPO round k: ``1000 * seed + 1234 + k``.

    >>> prefs_seed(0), prefs_seed(0, round=2), prefs_seed(1, round=2)
    (1234, 1236, 2236)
    """
    offset = SEED_OFFSETS["prefs"]
    return seed + offset if round is None else 1000 * seed + offset + round


def lora_overrides(model_dir: str | Path, last_layers: int, rank: int) -> dict[str, Any]:
    """A profile's LoRA layout as recipe overrides: the last N layers only, rank (alpha = 2 x rank); 0 = preset's."""
    from lfkit.recipes.render import lora_target_last_layers

    out: dict[str, Any] = {}
    if last_layers:
        out["lora_target"] = lora_target_last_layers(model_dir, last_layers)
    if rank:
        out.update(lora_rank=rank, lora_alpha=2 * rank)
    return out


@dataclass
class RunContext:
    """What every stage of one run shares: where files go, the preset, how it generates, the corpus, sizes."""

    layout: RunLayout
    preset: dict[str, Any]  # a loaded preset (lfkit.models.presets.load_preset)
    gen: Generation
    corpus: Path
    demo_corpus: bool  # the Lahman demo corpus (its own prompt options) or a BIRD folder
    max_new_tokens: int
    seed: int
    force: bool = False
    demo: DemoConfig | None = None  # the demo profile of an embedded preset: sizes, LoRA layout, cutoff

    def builder(self) -> Any:
        """The one prompt builder of the run (the demo corpus has its own prompt options)."""
        from lfkit.data.demo import DEMO_PROMPT_OPTIONS
        from lfkit.data.prompts import SchemaPromptBuilder

        return SchemaPromptBuilder(**DEMO_PROMPT_OPTIONS) if self.demo_corpus else SchemaPromptBuilder()

    @property
    def batch_size(self) -> int:
        return self.gen.batch_size

    def train_overrides(self, values: dict[str, Any]) -> dict[str, Any]:
        """LLaMA-Factory values of a training run: the seed, the demo profile's cutoff, logging and LoRA
        layout (embedded presets), then ``values`` (learning rate, epochs, DPO values ...; None = preset's)."""
        out: dict[str, Any] = {"seed": self.seed}
        demo = self.demo
        if demo is not None:
            # every step logged: the demo's runs are a few dozen steps, and the reports plot the curve
            out.update(cutoff_len=demo.cutoff_len, save_steps=100000, logging_steps=1)
            out.update(lora_overrides(self.preset["model_name_or_path"], demo.lora_last_layers, demo.lora_rank))
        out.update({k: v for k, v in values.items() if v is not None})
        return out


# ----------------------------------------------------------------------------- corpus


def stage_corpus(run: RunContext, cfg: DemoConfig, *, pool: bool = False) -> CorpusResult:
    """The Lahman demo corpus (unless the run has its own), its SFT rows registered, and (``pool``) every
    train question as an SFT row for the DPO rounds."""
    from lfkit.data.sft import SFTOptions, build_sft

    result = CorpusResult()
    layout = run.layout
    if run.demo_corpus:
        from lfkit.data.demo import build_demo_corpus
        from lfkit.registry import register_dataset

        stats = build_demo_corpus(layout.corpus, seed=cfg.seed, n_train=cfg.n_train, n_dev=cfg.n_dev)
        sft = build_sft(
            layout.corpus,
            "train",
            layout.sft_data,
            builder=run.builder(),
            options=SFTOptions(
                limit=cfg.n_sft, sample_seed=cfg.seed, by_template=cfg.sft_sample == "template", check_gold=True
            ),
        )
        register_dataset(layout.dataset_info, SFT_DATASET, layout.sft_data, "sft", force=True)
        result = CorpusResult(cfg.n_train, cfg.n_dev, sft["rows"], json.loads(json.dumps(stats, default=str)))
    if pool:
        for name in ("train.json", "dev.json"):
            if not (run.corpus / name).is_file():
                raise StageFailed(f"--corpus {run.corpus}: no {name} (a BIRD folder has train.json and dev.json)")
        result.pool_questions = build_sft(
            run.corpus, "train", layout.pool, builder=run.builder(), options=SFTOptions()
        )["rows"]
    return result


# ----------------------------------------------------------------------------- evaluate


def stage_eval(run: RunContext, model: ModelRef, path: Path, description: str) -> EvalResult:
    """Greedy dev predictions of ``model`` -> ``path`` (BIRD's predict_dev.json), scored by execution."""
    from lfkit.data.bird import load_bird, split_db_root
    from lfkit.eval import score_predictions, write_bird_predictions
    from lfkit.eval.predict import predict_sql

    examples = load_bird(run.corpus, "dev")
    # hf batches inside the call (its own batch size); an engine schedules what it is given at once
    chunk = {} if run.gen.backend == "hf" else {"chunk_size": run.batch_size}
    with make_backend(run.gen, model) as backend:
        predictions = predict_sql(
            examples, backend, run.builder(), max_new_tokens=run.max_new_tokens, description=description, **chunk
        )
    write_bird_predictions(path, predictions)
    r = score_predictions(predictions, run.corpus / "dev.json", split_db_root(run.corpus, "dev"))
    return EvalResult(
        ex=r["ex"],
        n=r["n"],
        correct=r["correct"],
        soft_f1=r.get("soft_f1"),
        by_difficulty=json.loads(json.dumps(r["by_difficulty"], default=str)),
        errors=r["errors"],
        timeouts=r["timeouts"],
        empty_predictions=sum(1 for sql, _ in predictions.values() if not sql.strip()),
        predictions=run.layout.rel(path),
        model=model,
    )


# ----------------------------------------------------------------------------- train, merge


def train_recipe(
    run: RunContext, recipe_stage: str, dataset: str, values: dict[str, Any], start: ModelRef, output_dir: Path
) -> dict[str, Any]:
    """The ``recipe_stage`` recipe on ``start`` (its base; its adapters merged and a new adapter trained,
    so the DPO reference is ``start``) with the run's training values -> a LoRA adapter in ``output_dir``."""
    from lfkit.recipes import render_recipe

    return render_recipe(
        recipe_stage,
        {**run.preset, "model_name_or_path": start.base},
        run.train_overrides(values),
        dataset=dataset,
        dataset_dir=run.layout.data.resolve(),
        output_dir=output_dir.resolve(),
        adapter_name_or_path=list(start.adapters) or None,
    )


def stage_train(
    run: RunContext,
    recipe_stage: str,
    dataset: str,
    values: dict[str, Any],
    *,
    start: ModelRef,
    output_dir: Path,
    recipe: Path,
    log: Path,
    title: str,
) -> TrainResult:
    """``llamafactory-cli train`` of :func:`train_recipe` (written to ``recipe``, validated first)."""
    from lfkit.recipes import write_recipe
    from lfkit.train import run_llamafactory

    written = write_recipe(train_recipe(run, recipe_stage, dataset, values, start, output_dir), recipe)
    trained = run_llamafactory(written, log, title=title)
    if not (output_dir / "adapter_model.safetensors").is_file():
        raise StageFailed(f"{title}: llamafactory-cli finished but wrote no adapter in {output_dir}")
    losses = trained.losses
    return TrainResult(
        steps=trained.steps,
        first_loss=losses[0][1] if losses else None,
        last_loss=losses[-1][1] if losses else None,
        mean_loss=round(trained.mean_loss, 4) if trained.mean_loss is not None else None,
        reward_accuracy=trained.reward_accuracy,
        loss_curve=[list(p) for p in losses],
        recipe=run.layout.rel(written),
        adapter=run.layout.rel(output_dir),
        policy_start=None if start.adapters else start.base,
    )


def merge_recipe(run: RunContext, start: ModelRef, output_dir: Path) -> dict[str, Any]:
    """``llamafactory-cli export`` of ``start`` (base + adapters) into ``output_dir``."""
    from lfkit.recipes import render_recipe

    preset = {**run.preset, "model_name_or_path": start.base}
    return render_recipe("export", preset, adapter_name_or_path=list(start.adapters), output_dir=str(output_dir))


def stage_merge(run: RunContext, start: ModelRef, output_dir: Path, recipe: Path, log: Path, title: str) -> MergeResult:
    """``start``'s adapters merged into a plain model in ``output_dir`` (``llamafactory-cli export``)."""
    from lfkit.recipes import write_recipe
    from lfkit.train import run_llamafactory

    written = write_recipe(merge_recipe(run, start, output_dir.resolve()), recipe)
    run_llamafactory(written, log, title=title)
    if not (output_dir / "config.json").is_file():
        raise StageFailed(f"{title}: llamafactory-cli export finished but wrote no model in {output_dir.resolve()}")
    return MergeResult(model=str(output_dir.resolve()), recipe=run.layout.rel(written), source=start)


# ----------------------------------------------------------------------------- sample + label + pair


def rejects_config(
    run: RunContext,
    sampling: SamplingSettings,
    *,
    questions: Path,
    db_split: str,
    output: Path,
    seed: int,
    max_questions: int = 0,
    round: int = 1,
    pairing: str | None = None,
    model_info: dict[str, Any] | None = None,
) -> RejectsConfig:
    """The one preference-sampling set-up: ``num_candidates`` answers per question at ``temperature``,
    top_p :data:`PREF_TOP_P`, labelled by execution, the first ``pairs_per_question`` pairs in
    ``sampling.round_pairing``'s order kept (``pairing`` given instead: ``"all"`` with ``pairs_per_question=0`` is
    every pair, as held-out test pairs are made)."""
    from lfkit.data.bird import split_db_root
    from lfkit.prefs.rejects import RejectsConfig

    return RejectsConfig(
        sft_data=str(questions),
        db_root=str(split_db_root(run.corpus, db_split)),
        output=str(output),
        num_samples=sampling.num_candidates,
        seed=seed,
        temperature=sampling.temperature,
        top_p=PREF_TOP_P,
        max_new_tokens=run.max_new_tokens,
        max_samples=max_questions,
        batch_size=max(1, run.batch_size // sampling.num_candidates),
        pairing=pairing or sampling.round_pairing,
        max_pairs_per_question=sampling.pairs_per_question,
        chosen=sampling.chosen,
        reject_kinds=tuple(sampling.reject_kinds.split(",")),
        round=round,
        overwrite=run.force,  # --force redoes the sampling (a journal of other settings is refused)
        model_info=model_info or {},
    )


def stage_sample(run: RunContext, job: RejectsConfig, policy: ModelRef, *, register_as: str | None) -> PrefsResult:
    """Sample, label and pair with ``policy`` (``job``: :func:`rejects_config`); register the pairs as
    ``register_as``. No pair: the result says why in ``empty`` and nothing is registered."""
    from lfkit.io import read_rows
    from lfkit.prefs.rejects import REJECT_KINDS, build_rejects
    from lfkit.registry import register_dataset

    with make_backend(run.gen, policy) as backend:
        summary = build_rejects(job, backend, progress=True)
    for warning in summary.warnings:
        print(f"warning: {job.output}: {warning}", file=sys.stderr)
    output = Path(job.output)
    rows = read_rows(output) if summary.pairs else []
    kinds = Counter(r["reject_kind"] for r in rows)
    sources = Counter(r["chosen_source"] for r in rows)
    labels = summary.as_dict()["labels"]
    result = PrefsResult(
        questions=summary.questions,
        candidates=summary.candidates,
        labels=labels,
        duplicates=summary.duplicates,
        pairs=summary.pairs,
        questions_without_pair=summary.questions_without_pair,
        pairs_by_reject_kind={k: kinds.get(k, 0) for k in REJECT_KINDS},
        pairs_by_chosen_source={"gold": sources.get("gold", 0), "on-policy": sources.get("on-policy", 0)},
        pairs_file=run.layout.rel(output),
        policy=policy,
    )
    if summary.pairs == 0:
        why = (
            "every candidate was correct"
            if labels.get("correct") == summary.candidates
            else (
                "no candidate was correct and gold fallback found no usable reject"
                if not labels.get("correct")
                else "no candidate of an allowed reject kind"
            )
        )
        result.empty = f"no preference pair ({why}; allowed rejects: {','.join(job.reject_kinds or ())})"
    elif register_as is not None:
        register_dataset(run.layout.dataset_info, register_as, output, "preference", force=True)
    return result


__all__ = [
    "DPO_DATASET",
    "PREF_TOP_P",
    "ROUND_DATASET",
    "SEED_OFFSETS",
    "SFT_DATASET",
    "RunContext",
    "StageFailed",
    "lora_overrides",
    "merge_recipe",
    "prefs_seed",
    "rejects_config",
    "stage_corpus",
    "stage_eval",
    "stage_merge",
    "stage_sample",
    "stage_train",
    "train_recipe",
]

"""`lfkit demo`: the whole SFT -> DPO loop on the embedded model and the Lahman database.

Stages (each caches its result under ``OUT/stages/<name>.json`` and is skipped on re-run
unless ``--force``; Ctrl-C and re-run resumes at the first unfinished stage):

1. ``corpus``     Lahman demo corpus in BIRD layout, SFT rows, dataset_info.json entry
2. ``eval_base``  the base model on the dev split (EX by difficulty)
3. ``sft``        LoRA SFT through ``llamafactory-cli train`` with a rendered recipe
4. ``eval_sft``
5. ``prefs``      candidates sampled with the SFT model, execution-verified rejects, registered
6. ``dpo``        DPO continuing from the SFT adapter (reference model = the SFT model)
7. ``eval_dpo``
8. ``report``     report.json / report.md, BIRD-format predictions, recipes, plots

Every stage calls the library module that owns its concept; this file only sequences them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from lfkit.errors import LfkitError
from lfkit.pipeline.config import DemoConfig, DemoLayout, demo_settings
from lfkit.pipeline.report import write_report
from lfkit.pipeline.stages import StageRunner, check_settings

console = Console()

SFT_DATASET = "lfkit_demo_sft"
DPO_DATASET = "lfkit_demo_dpo"


class DemoError(LfkitError, RuntimeError):
    """A demo stage failed; the message says which and where its log is."""


# ----------------------------------------------------------------------------- stages


def stage_corpus(cfg: DemoConfig, layout: DemoLayout) -> dict[str, Any]:
    from lfkit.data.demo import DEMO_PROMPT_OPTIONS, build_demo_corpus
    from lfkit.data.prompts import SchemaPromptBuilder
    from lfkit.data.sft import SFTOptions, build_sft
    from lfkit.registry import register_dataset

    stats = build_demo_corpus(layout.corpus, seed=cfg.seed, n_train=cfg.n_train, n_dev=cfg.n_dev)
    sft = build_sft(
        layout.corpus,
        "train",
        layout.sft_data,
        builder=SchemaPromptBuilder(**DEMO_PROMPT_OPTIONS),
        options=SFTOptions(limit=cfg.n_sft, sample_seed=cfg.seed, check_gold=True),
    )
    register_dataset(layout.dataset_info, SFT_DATASET, layout.sft_data, "sft", force=True)
    return {
        "train_questions": cfg.n_train,
        "dev_questions": cfg.n_dev,
        "sft_rows": sft["rows"],
        "corpus": json.loads(json.dumps(stats, default=str)),
    }


def make_backend(cfg: DemoConfig, adapters: list[Path], base: str | Path | None = None) -> Any:
    """The hf backend on the preset's model (or ``base``, e.g. a merged model) with ``adapters`` on top."""
    from lfkit.generate import get_backend
    from lfkit.models.presets import load_preset

    preset = load_preset(cfg.model)
    return get_backend(
        "hf",
        model=str(base) if base is not None else preset["model_name_or_path"],
        adapter=",".join(str(a) for a in adapters) or None,
        template=preset["template"],
        device="cpu",
        batch_size=cfg.batch_size,
    )


def stage_eval(
    cfg: DemoConfig, layout: DemoLayout, name: str, adapters: list[Path], base: str | Path | None = None
) -> dict[str, Any]:
    from lfkit.data.bird import load_bird, split_db_root
    from lfkit.data.demo import DEMO_PROMPT_OPTIONS
    from lfkit.data.prompts import SchemaPromptBuilder
    from lfkit.eval import score_predictions, write_bird_predictions
    from lfkit.eval.predict import predict_sql

    examples = load_bird(layout.corpus, "dev")
    backend = make_backend(cfg, adapters, base)
    try:
        predictions = predict_sql(
            examples,
            backend,
            SchemaPromptBuilder(**DEMO_PROMPT_OPTIONS),
            max_new_tokens=cfg.max_new_tokens,
            description=f"{name}: dev predictions",
        )
    finally:
        backend.close()
    path = layout.predictions(name.removeprefix("eval_"))
    write_bird_predictions(path, predictions)
    report = score_predictions(predictions, layout.corpus / "dev.json", split_db_root(layout.corpus, "dev"))
    report = json.loads(json.dumps(report, default=str))
    report["predictions"] = str(path.relative_to(layout.root))
    report["empty_predictions"] = sum(1 for sql, _ in predictions.values() if not sql.strip())
    return report


def stage_train(
    cfg: DemoConfig, layout: DemoLayout, stage: str, dataset: str, overrides: dict[str, Any], adapters: list[Path]
) -> dict[str, Any]:
    from lfkit.models.presets import load_preset
    from lfkit.recipes import render_recipe, write_recipe
    from lfkit.recipes.render import lora_target_last_layers
    from lfkit.train import run_llamafactory

    output_dir = layout.adapter(stage)
    if cfg.lora_last_layers:
        model_dir = load_preset(cfg.model)["model_name_or_path"]
        overrides = {"lora_target": lora_target_last_layers(model_dir, cfg.lora_last_layers), **overrides}
    if cfg.lora_rank:
        overrides = {"lora_rank": cfg.lora_rank, "lora_alpha": 2 * cfg.lora_rank, **overrides}
    config = render_recipe(
        stage,
        cfg.model,
        # every step logged: the demo's runs are a few dozen steps, and the report plots the curve
        {"cutoff_len": cfg.cutoff_len, "seed": cfg.seed, "save_steps": 100000, "logging_steps": 1, **overrides},
        dataset=dataset,
        dataset_dir=layout.data.resolve(),
        output_dir=output_dir.resolve(),
        adapter_name_or_path=[str(a.resolve()) for a in adapters] or None,
    )
    recipe = write_recipe(config, layout.recipes / f"{stage}.yaml")
    trained = run_llamafactory(recipe, layout.logs / f"{stage}.log", title=stage.upper())
    if not (output_dir / "adapter_model.safetensors").exists():
        raise DemoError(f"{stage}: llamafactory-cli finished but wrote no adapter in {output_dir}")
    losses = trained.losses
    return {
        "steps": trained.steps,
        "first_loss": losses[0][1] if losses else None,
        "last_loss": losses[-1][1] if losses else None,
        "mean_loss": round(trained.mean_loss, 4) if trained.mean_loss is not None else None,
        "last_accuracy": trained.reward_accuracy,
        "loss_curve": losses,
        "recipe": str(recipe.relative_to(layout.root)),
        "adapter": str(output_dir.relative_to(layout.root)),
    }


def stage_prefs(cfg: DemoConfig, layout: DemoLayout) -> dict[str, Any]:
    from lfkit.data.bird import split_db_root
    from lfkit.prefs.rejects import RejectsConfig, build_rejects
    from lfkit.registry import register_dataset

    job = RejectsConfig(
        sft_data=str(layout.sft_data),
        db_root=str(split_db_root(layout.corpus, "train")),
        output=str(layout.pref_data),
        num_samples=cfg.num_candidates,
        seed=cfg.seed + 1234,
        temperature=cfg.sample_temperature,
        top_p=0.95,
        max_new_tokens=cfg.max_new_tokens,
        max_samples=cfg.n_prefs,
        batch_size=max(1, cfg.batch_size // cfg.num_candidates),
        pairing="hardest",
        chosen=cfg.chosen,
        reject_kinds=tuple(cfg.reject_kinds.split(",")),
        max_pairs_per_question=cfg.pairs_per_question,
        model_info={"model": cfg.model, "adapter": str(layout.adapter("sft"))},
    )
    backend = make_backend(cfg, [layout.adapter("sft")])
    try:
        summary = build_rejects(job, backend, progress=True)
    finally:
        backend.close()
    if summary.pairs == 0:
        raise DemoError(
            "the SFT model produced no execution-verified reject on "
            f"{cfg.n_prefs} questions x {cfg.num_candidates} samples; raise --n-prefs or the temperature"
        )
    register_dataset(layout.dataset_info, DPO_DATASET, layout.pref_data, "preference", force=True)
    out = summary.as_dict()
    return {
        "questions": out["questions"],
        "candidates": out["candidates"],
        "labels": out["labels"],
        "duplicates": out["duplicates"],
        "pairs": out["pairs"],
        "questions_without_pair": out["questions_without_pair"],
    }


# ----------------------------------------------------------------------------- the demo


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """Run (or resume) every stage and write the report; returns report.json's content."""
    layout = DemoLayout(cfg.out)
    layout.root.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]lfkit demo[/bold]: model {cfg.model}, output {layout.root}")
    check_settings(layout, demo_settings(cfg), force=cfg.force)
    runner = StageRunner(layout, cfg.force, console)
    sft, dpo = layout.adapter("sft"), layout.adapter("dpo")
    sft_overrides = {"learning_rate": cfg.sft_lr, "num_train_epochs": cfg.sft_epochs}
    dpo_overrides = {
        "learning_rate": cfg.dpo_lr,
        "num_train_epochs": cfg.dpo_epochs,
        "pref_beta": cfg.pref_beta,
        "pref_loss": cfg.pref_loss,
        "pref_ftx": cfg.pref_ftx,
    }

    runner.run("corpus", "1. demo corpus + SFT data", lambda: stage_corpus(cfg, layout))
    runner.run("eval_base", "2. evaluate the base model", lambda: stage_eval(cfg, layout, "eval_base", []))
    runner.run("sft", "3. SFT", lambda: stage_train(cfg, layout, "sft", SFT_DATASET, sft_overrides, []))
    runner.run("eval_sft", "   evaluate SFT", lambda: stage_eval(cfg, layout, "eval_sft", [sft]))
    runner.run("prefs", "4. sample + verify preference pairs", lambda: stage_prefs(cfg, layout))
    runner.run(
        "dpo", "5. DPO from the SFT adapter", lambda: stage_train(cfg, layout, "dpo", DPO_DATASET, dpo_overrides, [sft])
    )
    runner.run("eval_dpo", "   evaluate DPO", lambda: stage_eval(cfg, layout, "eval_dpo", [sft, dpo]))
    report = write_report(cfg, layout, runner.results)
    console.print(f"\n[bold]{report['verdict']}[/bold]\nreport: {layout.root / 'report.md'}")
    return report


__all__ = ["DPO_DATASET", "SFT_DATASET", "DemoError", "run_demo"]

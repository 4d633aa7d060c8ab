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

A composition of the stage library (``lfkit.pipeline.steps``); ``lfkit demo --full`` runs the same
first four stages through :func:`demo_context` and :func:`run_sft`.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from lfkit.pipeline.config import DemoConfig, demo_settings
from lfkit.pipeline.engine import generation_for, pipeline_engine
from lfkit.pipeline.layout import RunLayout
from lfkit.pipeline.report import write_report
from lfkit.pipeline.results import CorpusResult, EvalResult, ModelRef, PrefsResult, TrainResult
from lfkit.pipeline.stages import StageRunner, check_settings
from lfkit.pipeline.steps import (
    DPO_DATASET,
    SFT_DATASET,
    RunContext,
    StageFailed,
    prefs_seed,
    rejects_config,
    stage_corpus,
    stage_eval,
    stage_sample,
    stage_train,
)

console = Console()


def demo_context(cfg: DemoConfig, layout: RunLayout) -> RunContext:
    """The run context of the demo profile ``cfg``: its preset, its generation backend, the demo corpus."""
    from lfkit.models.presets import load_preset

    preset = load_preset(cfg.model)
    return RunContext(
        layout=layout,
        preset=preset,
        gen=generation_for(preset, cfg.backend, cfg.batch_size),
        corpus=layout.corpus,
        demo_corpus=True,
        max_new_tokens=cfg.max_new_tokens,
        seed=cfg.seed,
        force=cfg.force,
        demo=cfg,
    )


def base_model(run: RunContext) -> ModelRef:
    return ModelRef(run.preset["model_name_or_path"])


def run_sft(run: RunContext, runner: StageRunner, cfg: DemoConfig, *, pool: bool = False) -> ModelRef:
    """Stages 1-4 (corpus, eval_base, sft, eval_sft); returns the SFT model (base + adapter)."""
    layout = run.layout
    base = base_model(run)
    runner.run("corpus", "1. demo corpus + SFT data", lambda: stage_corpus(run, cfg, pool=pool), CorpusResult)
    runner.run(
        "eval_base",
        "2. evaluate the base model",
        lambda: stage_eval(run, base, layout.predictions("base"), "eval_base: dev predictions"),
        EvalResult,
    )
    sft_values = {"learning_rate": cfg.sft_lr, "num_train_epochs": cfg.sft_epochs}
    runner.run(
        "sft",
        "3. SFT",
        lambda: stage_train(
            run,
            "sft",
            SFT_DATASET,
            sft_values,
            start=base,
            output_dir=layout.adapter("sft"),
            recipe=layout.recipes / "sft.yaml",
            log=layout.logs / "sft.log",
            title="SFT",
        ),
        TrainResult,
    )
    sft = ModelRef(base.base, (str(layout.adapter("sft").resolve()),))
    runner.run(
        "eval_sft",
        "   evaluate SFT",
        lambda: stage_eval(run, sft, layout.predictions("sft"), "eval_sft: dev predictions"),
        EvalResult,
    )
    return sft


def demo_prefs(run: RunContext, cfg: DemoConfig, sft: ModelRef) -> PrefsResult:
    """Stage 5: the SFT model's execution-verified pairs on ``n_prefs`` train questions, registered."""
    layout = run.layout
    job = rejects_config(
        run,
        cfg,
        questions=layout.sft_data,
        db_split="train",
        output=layout.pref_data,
        seed=prefs_seed(cfg.seed),
        max_questions=cfg.n_prefs,
        model_info={"model": cfg.model, "adapter": str(layout.adapter("sft"))},
    )
    result = stage_sample(run, job, sft, register_as=DPO_DATASET)
    if result.pairs == 0:
        raise StageFailed(
            "the SFT model produced no execution-verified reject on "
            f"{cfg.n_prefs} questions x {cfg.num_candidates} samples; raise --n-prefs or the temperature"
        )
    return result


def dpo_values(cfg: DemoConfig) -> dict[str, Any]:
    """The DPO run's LLaMA-Factory values from the demo profile."""
    return {
        "learning_rate": cfg.dpo_lr,
        "num_train_epochs": cfg.dpo_epochs,
        "pref_beta": cfg.pref_beta,
        "pref_loss": cfg.pref_loss,
        "pref_ftx": cfg.pref_ftx,
    }


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """Run (or resume) every stage and write the report; returns report.json's content."""
    layout = RunLayout(cfg.out)
    layout.root.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]lfkit demo[/bold]: model {cfg.model}, output {layout.root}")
    cfg.settle_backend()
    check_settings(layout, demo_settings(cfg), force=cfg.force)
    run = demo_context(cfg, layout)
    runner = StageRunner(layout, cfg.force, console)
    with pipeline_engine(run.gen) as gen:  # one engine for every stage that generates (vllm)
        run.gen = gen
        sft = run_sft(run, runner, cfg)
        runner.run("prefs", "4. sample + verify preference pairs", lambda: demo_prefs(run, cfg, sft), PrefsResult)
        runner.run(
            "dpo",
            "5. DPO from the SFT adapter",
            lambda: stage_train(
                run,
                "dpo",
                DPO_DATASET,
                dpo_values(cfg),
                start=sft,
                output_dir=layout.adapter("dpo"),
                recipe=layout.recipes / "dpo.yaml",
                log=layout.logs / "dpo.log",
                title="DPO",
            ),
            TrainResult,
        )
        dpo = ModelRef(sft.base, (*sft.adapters, str(layout.adapter("dpo").resolve())))
        runner.run(
            "eval_dpo",
            "   evaluate DPO",
            lambda: stage_eval(run, dpo, layout.predictions("dpo"), "eval_dpo: dev predictions"),
            EvalResult,
        )
    report = write_report(cfg, layout, runner)
    console.print(f"\n[bold]{report['verdict']}[/bold]\nreport: {layout.root / 'report.md'}")
    return report


__all__ = ["demo_context", "demo_prefs", "dpo_values", "run_demo", "run_sft"]

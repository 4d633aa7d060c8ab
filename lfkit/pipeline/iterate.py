"""`lfkit iterate`: iterative DPO, the loop LLaMA-Factory does not have.

Round 0 is the start model: ``--from`` (a LoRA adapter folder on the preset's base model, or
a plain model folder), or for an embedded preset without ``--from`` the demo's own SFT adapter,
trained here. Round k (1..R), each step a cached stage ``round<k>/<step>`` of the shared
:class:`~lfkit.pipeline.stages.StageRunner` (:func:`round_steps`):

1. ``merge``   round k-1's adapter(s) merged into its base with ``llamafactory-cli export``
               -> ``models/round<k-1>`` (skipped when round k-1 is a plain model folder);
2. ``sample``  candidates for fresh train questions (round k's slice of a seeded shuffle of
               the train split), sampled from the merged round k-1 model, labelled by execution,
               paired (``lfkit prefs rejects``: on-policy chosen by default) and registered;
               a round with no pair is recorded as empty and the loop stops;
3. ``dpo``     a NEW LoRA adapter trained on the merged round k-1 model: the policy starts at
               round k-1 and the reference (the model with its adapter disabled) IS round k-1 --
               never the previous adapter resumed against the raw base (LLaMA-Factory #8974/#8459);
4. ``eval``    greedy dev predictions -> ``report/round<k>/predict_dev.json`` (BIRD's format), EX.

:func:`walk_rounds` walks these steps once for both the real run (each step a cached stage) and
``--dry-run`` (each step prints its command and writes its validated recipe, nothing runs).
``report.md`` / ``report.json`` / ``ex_by_round.png``: :mod:`lfkit.pipeline.report_iterate`.
"""

from __future__ import annotations

import random
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from lfkit.errors import LfkitError
from lfkit.pipeline.config import PROFILES, RoundsSettings, setting, settings_of
from lfkit.pipeline.engine import generation_for, pipeline_engine
from lfkit.pipeline.layout import RunLayout
from lfkit.pipeline.results import CorpusResult, EvalResult, MergeResult, ModelRef, PrefsResult, TrainResult
from lfkit.pipeline.stages import StageResult, StageRunner, check_settings
from lfkit.pipeline.steps import (
    ROUND_DATASET,
    SFT_DATASET,
    RunContext,
    merge_recipe,
    prefs_seed,
    rejects_config,
    stage_corpus,
    stage_eval,
    stage_merge,
    stage_sample,
    stage_train,
    train_recipe,
)

console = Console()


class IterateError(LfkitError, ValueError):
    """An iterate setting, input or output folder cannot be used; the message names it."""


@dataclass
class IterateConfig(RoundsSettings):
    """Settings of one ``lfkit iterate`` run (the CLI options of the same names)."""

    preset: str = setting("smollm2-135m", "Model preset (lfkit render --list).")
    out: Path = setting(Path("iterate_out"), "Output folder.")  # noqa: RUF009 -- a Path is immutable
    from_path: str | None = setting(
        None,
        "Round 0: a LoRA adapter folder (on the preset's model) or a model folder. "
        "Default for an embedded preset: the demo's SFT, trained here.",
    )
    corpus: str | None = setting(None, "BIRD folder (train.json, dev.json, *_databases). Default: the demo corpus.")
    dry_run: bool = setting(
        False, "Print every command and recipe of the run (recipes written, validated); run nothing."
    )

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.check_rounds(IterateError)
        if self.from_path is None and self.preset not in PROFILES and not self.dry_run:
            raise IterateError(
                f"preset {self.preset} has no demo SFT profile: give --from (the SFT adapter or model folder)"
            )
        if self.corpus is None and self.preset not in PROFILES and not self.dry_run:
            raise IterateError(f"preset {self.preset} has no demo profile: give --corpus (a BIRD folder)")
        if self.corpus is not None and self.from_path is None and not self.dry_run:
            raise IterateError("with --corpus give --from: the demo SFT is trained on the demo corpus only")
        self.check_unseen(lambda: None if self.from_path else self.demo_profile(self.preset, self.out), IterateError)

    def settle_backend(self) -> None:
        """``auto`` on an embedded preset is its demo profile's engine (tiny: hf), else what is installed."""
        if self.backend == "auto" and self.preset in PROFILES:
            self.backend = PROFILES[self.preset].get("backend", "auto")
        super().settle_backend()

    def settings(self) -> dict[str, Any]:
        """What :func:`check_settings` compares: every field but out, force and dry_run."""
        return settings_of(self)


def classify_from(path: str | Path) -> str:
    """``adapter`` (adapter_config.json) or ``model`` (config.json); IterateError naming the path otherwise."""
    p = Path(path)
    if not p.is_dir():
        raise IterateError(f"--from {p}: no such folder (give a LoRA adapter folder or a model folder)")
    if (p / "adapter_config.json").is_file():
        return "adapter"
    if (p / "config.json").is_file():
        return "model"
    raise IterateError(
        f"--from {p}: neither a LoRA adapter folder (no adapter_config.json) nor a model folder (no config.json)"
    )


def rounds_context(
    cfg: RoundsSettings, model: str, layout: RunLayout, preset: dict[str, Any], *, corpus: str | None, backend: str
) -> RunContext:
    """The run context of DPO rounds on ``preset``: the demo profile's sizes for an embedded preset."""
    demo = cfg.demo_profile(model, layout.root)
    return RunContext(
        layout=layout,
        preset=preset,
        gen=generation_for(preset, backend, demo.batch_size if demo else 32),
        corpus=Path(corpus) if corpus else layout.corpus,
        demo_corpus=corpus is None,
        max_new_tokens=demo.max_new_tokens if demo else (cfg.max_new_tokens or 512),
        seed=cfg.seed,
        force=cfg.force,
        demo=demo,
    )


# ----------------------------------------------------------------------------- the plan


def unseen_questions(pool: list[dict[str, Any]], trained: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of ``pool`` whose question no row of ``trained`` (the SFT data) has, by ``question_id``.

    Why a rule: the SFT's seeded sample of train and :func:`question_slice`'s shuffle share the run's seed, and
    Python's ``random.sample`` draws like ``shuffle`` does, so the shuffle already puts the SFT's questions last
    (seed 0, 32 of 400: 31 of them) and the rounds drew mostly unseen questions by coincidence, until they ran out.

    >>> unseen_questions([{"question_id": i} for i in range(5)], [{"question_id": 1}, {"question_id": 3}])
    [{'question_id': 0}, {'question_id': 2}, {'question_id': 4}]
    """
    seen = {row["question_id"] for row in trained}
    return [row for row in pool if row["question_id"] not in seen]


def question_slice(pool: list[dict[str, Any]], k: int, per_round: int, seed: int) -> list[dict[str, Any]]:
    """Round k's fresh questions: rows ``[(k-1)*n, k*n)`` of the pool shuffled with ``seed``.

    No question is sampled in two rounds; IterateError when the pool runs out.

    >>> pool = [{"question_id": i} for i in range(10)]
    >>> [[r["question_id"] for r in question_slice(pool, k, 3, 0)] for k in (1, 2, 3)]
    [[7, 8, 1], [5, 3, 4], [2, 0, 9]]
    """
    order = list(range(len(pool)))
    random.Random(seed).shuffle(order)
    picked = order[(k - 1) * per_round : k * per_round]
    if len(picked) < per_round:
        raise IterateError(
            f"round {k} needs {per_round} fresh train questions but the train split has {len(pool)} "
            f"({(k - 1) * per_round} used by earlier rounds): lower --questions-per-round or --rounds"
        )
    return [pool[i] for i in picked]


@dataclass
class Step:
    """One stage of a round: how to run it, and what the dry run prints (and writes) instead."""

    name: str
    title: str
    run: Callable[[], StageResult]
    result_type: type[StageResult]
    show: Callable[[], list[str]] = field(default=lambda: [])


@dataclass
class RoundsDone:
    """What :func:`walk_rounds` leaves: the best round (0 = the start model), its model, why the loop stopped."""

    best_round: int
    best_ex: float
    best_model: ModelRef
    last_round: int
    stopped: str | None = None


def dpo_values(cfg: RoundsSettings, run: RunContext) -> dict[str, Any]:
    """A round's DPO values: given ones, else the demo profile's (embedded preset), else the preset's (None)."""
    source: Any = run.demo if run.demo is not None else cfg
    return {
        "learning_rate": source.dpo_lr,
        "num_train_epochs": source.dpo_epochs,
        "pref_beta": source.pref_beta,
        "pref_loss": source.pref_loss,
        "pref_ftx": source.pref_ftx,
    }


def show_recipe(config: dict[str, Any], path: Path, command: str) -> list[str]:
    """Dry run: write the validated recipe and return its command line and text."""
    from lfkit.recipes import write_recipe
    from lfkit.recipes.render import dump_recipe
    from lfkit.train import describe_env, llamafactory_env

    write_recipe(config, path)
    env = describe_env(llamafactory_env(config.get("model_name_or_path")))  # as run_llamafactory runs it
    return [f"# environment: {env}", f"{command} {path}", f"# --- {path}", dump_recipe(config).rstrip(), "# ---"]


def round_steps(
    cfg: RoundsSettings, run: RunContext, k: int, start: ModelRef, backend: str, title: str = ""
) -> tuple[list[Step], ModelRef]:
    """Round k's steps from ``start`` (round k-1), and round k's model (the merged start + the new adapter)."""
    from lfkit.io import read_rows, write_rows

    layout = run.layout
    steps: list[Step] = []
    if start.adapters:
        merged, merge_yaml = layout.merged(k - 1), layout.round_recipes(k) / "merge.yaml"
        steps.append(
            Step(
                f"round{k}/merge",
                f"{title}round {k}: merge round {k - 1}",
                lambda: stage_merge(
                    run, start, merged, merge_yaml, layout.logs / f"round{k}_merge.log", f"round {k}: merge"
                ),
                MergeResult,
                lambda: show_recipe(merge_recipe(run, start, merged.resolve()), merge_yaml, "llamafactory-cli export"),
            )
        )
        policy = ModelRef(str(merged.resolve()))
    else:
        policy = ModelRef(start.base)
    rdir = layout.round_dir(k)
    job = rejects_config(
        run,
        cfg,
        questions=rdir / "questions.json",
        db_split="train",
        output=rdir / "pairs.jsonl",
        seed=prefs_seed(cfg.seed, round=k),
        round=k,
        model_info={"model": policy.base, "round": k},
    )

    def sample() -> PrefsResult:
        pool = read_rows(layout.pool)
        if cfg.round_questions == "unseen":
            pool = unseen_questions(pool, read_rows(layout.sft_data))
        write_rows(rdir / "questions.json", question_slice(pool, k, cfg.questions_per_round, cfg.seed))
        return stage_sample(run, job, policy, register_as=f"{ROUND_DATASET}{k}")

    def show_sample() -> list[str]:
        unseen = " the SFT did not train on" if cfg.round_questions == "unseen" else ""
        rejects = [
            "lfkit", "prefs", "rejects", "--backend", backend, "--base-model", policy.base,
            "--template", run.preset["template"], "--sft-data", job.sft_data, "--db-root", job.db_root,
            "--output", job.output, "--num-rejects", str(job.num_samples), "--seed", str(job.seed),
            "--temperature", str(job.temperature), "--top-p", str(job.top_p), "--max-new-tokens",
            str(job.max_new_tokens), "--pairing", job.pairing, "--max-pairs-per-question",
            str(job.max_pairs_per_question), "--chosen", job.chosen, "--reject-kinds", ",".join(job.reject_kinds),
            "--round", str(k),
        ]  # fmt: skip
        register = ["lfkit", "register", "--dataset-info", str(layout.dataset_info), "--name", f"{ROUND_DATASET}{k}"]
        register += ["--file", job.output, "--kind", "preference", "--force"]
        return [
            f"# questions: round {k}'s {cfg.questions_per_round} fresh train questions{unseen} -> {job.sft_data}",
            shlex.join(rejects),
            shlex.join(register),
        ]

    steps.append(Step(f"round{k}/sample", f"{title}round {k}: sample + verify pairs", sample, PrefsResult, show_sample))
    adapter, dpo_yaml = layout.round_adapter(k), layout.round_recipes(k) / "dpo.yaml"
    values = dpo_values(cfg, run)
    steps.append(
        Step(
            f"round{k}/dpo",
            f"{title}round {k}: DPO from round {k - 1} (reference = round {k - 1})",
            lambda: stage_train(
                run,
                "dpo_round",
                f"{ROUND_DATASET}{k}",
                values,
                start=policy,
                output_dir=adapter,
                recipe=dpo_yaml,
                log=layout.logs / f"round{k}_dpo.log",
                title=f"round {k}: DPO",
            ),
            TrainResult,
            lambda: show_recipe(
                train_recipe(run, "dpo_round", f"{ROUND_DATASET}{k}", values, policy, adapter),
                dpo_yaml,
                "llamafactory-cli train",
            ),
        )
    )
    model = ModelRef(policy.base, (str(adapter.resolve()),))
    predictions = layout.round_predictions(k)
    score = ["lfkit", "eval", "score", "-p", str(predictions), "-g", str(run.corpus / "dev.json")]
    score += ["--db-root", str(run.corpus / "dev_databases")]
    steps.append(
        Step(
            f"round{k}/eval",
            f"{title}round {k}: evaluate",
            lambda: stage_eval(run, model, predictions, f"round {k}: dev"),
            EvalResult,
            lambda: [
                f"# evaluate: greedy dev predictions with {policy.base} + {adapter} -> {predictions}, then",
                shlex.join(score),
            ],
        )
    )
    return steps, model


def walk_rounds(
    cfg: RoundsSettings,
    run: RunContext,
    start: ModelRef,
    start_ex: float | None,
    do: Callable[[Step], StageResult | None],
    *,
    backend: str = "hf",
    title: str = "",
) -> RoundsDone:
    """Rounds 1..R from ``start`` (round 0, dev EX ``start_ex``), each step handed to ``do``: the real run
    runs it as a cached stage and returns its result; the dry run shows it and returns None."""
    model = start
    done = RoundsDone(best_round=0, best_ex=start_ex or 0.0, best_model=start, last_round=0)
    for k in range(1, cfg.rounds + 1):
        steps, next_model = round_steps(cfg, run, k, model, backend, title)
        ex = None
        for step in steps:
            result = do(step)
            if isinstance(result, PrefsResult) and result.empty:
                done.stopped = f"round {k} is empty: {result.empty}; the loop stops without training on nothing"
                console.print(f"[yellow]{done.stopped}[/yellow]")
                return done
            if isinstance(result, EvalResult):
                ex = result.ex
        model, done.last_round = next_model, k
        if ex is None:  # the dry run: nothing was evaluated
            continue
        if ex > done.best_ex:
            done.best_ex, done.best_round, done.best_model = ex, k, model
        elif cfg.stop_when_worse and ex < done.best_ex:
            done.stopped = f"round {k} lowered dev EX ({ex:.1f} < {done.best_ex:.1f}, round {done.best_round}): stopped"
            console.print(f"[yellow]{done.stopped}[/yellow]")
            break
    return done


def runner_do(runner: StageRunner) -> Callable[[Step], StageResult]:
    """The real run's ``do``: each step a cached stage of ``runner``."""
    return lambda step: runner.run(step.name, step.title, step.run, step.result_type)


# ----------------------------------------------------------------------------- the run


def start_model(cfg: IterateConfig, run: RunContext, runner: StageRunner | None) -> ModelRef:
    """Round 0: ``--from`` (adapter on the preset's base, or a model folder), else the demo SFT (trained by
    ``runner`` as stage ``round0/sft``; the dry run names it)."""
    base = run.preset["model_name_or_path"]
    if cfg.from_path is not None:
        path = Path(cfg.from_path)
        if cfg.dry_run and not path.exists():
            return ModelRef(base, (str(path),))  # a GPU user's path: assume the SFT adapter
        kind = classify_from(path)
        return ModelRef(base, (str(path.resolve()),)) if kind == "adapter" else ModelRef(str(path.resolve()))
    if run.demo is None:  # dry run of a GPU preset: the flow's SFT output (recipes/<preset>/sft.yaml)
        return ModelRef(base, (f"saves/{cfg.preset}/{run.preset['finetuning_type']}/sft",))
    sft = run.layout.adapter("sft")
    if runner is not None:
        demo = run.demo
        values = {"learning_rate": demo.sft_lr, "num_train_epochs": demo.sft_epochs}
        runner.run(
            "round0/sft",
            "round 0: SFT (the demo's)",
            lambda: stage_train(
                run,
                "sft",
                SFT_DATASET,
                values,
                start=ModelRef(base),
                output_dir=sft,
                recipe=run.layout.recipes / "sft.yaml",
                log=run.layout.logs / "sft.log",
                title="SFT",
            ),
            TrainResult,
        )
    return ModelRef(base, (str(sft.resolve()),))


def run_iterate(cfg: IterateConfig) -> dict[str, Any]:
    """Run (or resume) every round and write the report; returns report.json's content."""
    from lfkit.models.presets import load_preset
    from lfkit.pipeline.report_iterate import write_report

    if cfg.dry_run:
        return dry_run(cfg)
    layout = RunLayout(cfg.out)
    if cfg.from_path is not None:
        classify_from(cfg.from_path)  # before anything is written
    layout.root.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]lfkit iterate[/bold]: preset {cfg.preset}, {cfg.rounds} rounds, output {layout.root}")
    cfg.settle_backend()
    check_settings(layout, cfg.settings(), force=cfg.force)
    preset = load_preset(cfg.preset)
    run = rounds_context(cfg, cfg.preset, layout, preset, corpus=cfg.corpus, backend=cfg.backend)
    runner = StageRunner(layout, cfg.force, console)
    with pipeline_engine(run.gen) as gen:
        run.gen = gen
        runner.run(
            "data", "data: corpus + train question pool", lambda: stage_corpus(run, run.demo, pool=True), CorpusResult
        )
        model = start_model(cfg, run, runner)
        first = runner.run(
            "round0/eval",
            "round 0: evaluate the start model",
            lambda: stage_eval(run, model, layout.round_predictions(0), "round 0: dev"),
            EvalResult,
        )
        done = walk_rounds(cfg, run, model, first.ex, runner_do(runner), backend=cfg.backend)
    report = write_report(cfg, run, runner, stopped=done.stopped, best_round=done.best_round)
    console.print(f"\n[bold]{report['verdict']}[/bold]\nreport: {layout.root / 'report.md'}")
    return report


def dry_run(cfg: IterateConfig) -> dict[str, Any]:
    """Print (and write under OUT/recipes/) every recipe and command of the run; train nothing.

    It walks the same steps as the real run (:func:`walk_rounds`), showing each instead of running it.
    """
    from lfkit.models.presets import load_preset

    layout = RunLayout(cfg.out)
    cfg.settle_backend()
    preset = load_preset(cfg.preset, resolve=False)
    if preset.get("embedded"):
        preset = load_preset(cfg.preset)
    run = rounds_context(cfg, cfg.preset, layout, preset, corpus=cfg.corpus, backend=cfg.backend)
    lines: list[str] = [f"# lfkit iterate --dry-run: preset {cfg.preset}, {cfg.rounds} rounds, output {layout.root}"]
    model = start_model(cfg, run, None)
    if cfg.from_path is None and run.demo is not None:
        lines.append(f"# round 0: the demo SFT adapter {layout.adapter('sft')} (lfkit demo's sft stage)")
    elif cfg.from_path is None:
        lines.append("# round 0: the SFT adapter of recipes/<preset>/sft.yaml (give --from for another)")
    lines.append(
        f"# round 0 model: {model.base}" + (f" + adapter(s) {', '.join(model.adapters)}" if model.adapters else "")
    )

    shown: set[int] = set()

    def show(step: Step) -> None:
        k = int(step.name.split("/")[0].removeprefix("round"))
        if k not in shown:
            shown.add(k)
            lines.append(
                f"\n# ===== round {k}: sample with round {k - 1}, DPO with round {k - 1} as start and reference"
            )
        lines.extend(step.show())
        return None

    walk_rounds(cfg, run, model, None, show, backend=cfg.backend)
    text = "\n".join(lines) + "\n"
    print(text)
    recipes = [line.split(" ", 2)[2] for line in lines if line.startswith("llamafactory-cli ")]
    return {"dry_run": True, "recipes": recipes, "text": text}


__all__ = [
    "IterateConfig",
    "IterateError",
    "RoundsDone",
    "Step",
    "classify_from",
    "dry_run",
    "question_slice",
    "round_steps",
    "rounds_context",
    "run_iterate",
    "unseen_questions",
    "walk_rounds",
]

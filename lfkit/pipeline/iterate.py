"""`lfkit iterate`: iterative DPO, the loop LLaMA-Factory does not have.

Round 0 is the start model: ``--from`` (a LoRA adapter folder on the preset's base model, or
a plain model folder), or for an embedded preset without ``--from`` the demo's own SFT adapter,
trained here. Round k (1..R), each step a cached stage ``round<k>/<step>`` of the shared
:class:`~lfkit.pipeline.stages.StageRunner`:

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

``report.md`` / ``report.json`` / ``ex_by_round.png`` are written from the stage files, and the
EX columns are re-scored from the prediction files. A folder is resumed only with the same
settings (:func:`~lfkit.pipeline.stages.check_settings`); a killed stage runs again, a finished one
never (no round counted twice). ``dry_run`` renders and validates every recipe and prints every
command of the run without running any.
"""

from __future__ import annotations

import json
import random
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from lfkit.errors import LfkitError
from lfkit.pipeline.config import PROFILES, DemoConfig, DemoLayout, demo_config
from lfkit.pipeline.stages import StageRunner, check_settings

console = Console()

REJECT_KINDS_DEFAULT = "wrong,error,timeout,no_sql"
DATASET_PREFIX = "lfkit_iter_round"


class IterateError(LfkitError, ValueError):
    """An iterate setting, input or output folder cannot be used; the message names it."""


@dataclass
class IterateConfig:
    """Settings of one ``lfkit iterate`` run (the CLI options of the same names)."""

    preset: str = field(default="smollm2-135m", metadata={"help": "Model preset (lfkit render --list)."})
    out: Path = field(default=Path("iterate_out"), metadata={"help": "Output folder."})
    from_path: str | None = field(
        default=None,
        metadata={
            "help": "Round 0: a LoRA adapter folder (on the preset's model) or a model folder. "
            "Default for an embedded preset: the demo's SFT, trained here."
        },
    )
    corpus: str | None = field(
        default=None, metadata={"help": "BIRD folder (train.json, dev.json, *_databases); default: the demo corpus."}
    )
    rounds: int = field(default=3, metadata={"help": "DPO rounds after round 0."})
    questions_per_round: int = field(default=24, metadata={"help": "Fresh train questions sampled per round."})
    num_candidates: int = field(default=4, metadata={"help": "Candidates sampled per question."})
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature."})
    chosen: str = field(default="on-policy", metadata={"help": "Chosen side: on-policy (gold fallback) or gold."})
    reject_kinds: str = field(default=REJECT_KINDS_DEFAULT, metadata={"help": "Labels that may be rejected."})
    pairs_per_question: int = field(default=1, metadata={"help": "Pairs per question (hardest first)."})
    dpo_lr: float | None = field(default=None, metadata={"help": "DPO learning rate (default: the demo's)."})
    dpo_epochs: float | None = field(default=None, metadata={"help": "DPO epochs (default: the demo's)."})
    pref_beta: float | None = field(default=None, metadata={"help": "DPO beta (default: the demo's)."})
    pref_loss: str | None = field(default=None, metadata={"help": "sigmoid | ipo | orpo | simpo (default: preset)."})
    pref_ftx: float | None = field(default=None, metadata={"help": "SFT term on chosen (default: the demo's)."})
    seed: int = field(default=0, metadata={"help": "Seed for the corpus, question slices, sampling and training."})
    stop_when_worse: bool = field(default=False, metadata={"help": "Stop after a round whose EX falls."})
    backend: str = field(default="hf", metadata={"help": "Sampling/eval backend: hf or vllm."})
    n_dev: int | None = field(default=None, metadata={"help": "Dev questions (demo corpus only; default: the demo's)."})
    max_new_tokens: int | None = field(default=None, metadata={"help": "Generation cap (default: the demo's)."})
    force: bool = field(default=False, metadata={"help": "Redo every stage."})
    dry_run: bool = field(default=False, metadata={"help": "Print every command and recipe; run nothing."})

    def __post_init__(self) -> None:
        from lfkit.prefs.rejects import CHOSEN_SOURCES, parse_reject_kinds

        self.out = Path(self.out)
        if self.rounds < 1:
            raise IterateError(f"--rounds must be >= 1, got {self.rounds}: round 0 is the start model, 1.. are DPO")
        for name in ("questions_per_round", "num_candidates", "pairs_per_question"):
            if getattr(self, name) < 1:
                raise IterateError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.chosen not in CHOSEN_SOURCES:
            raise IterateError(f"--chosen must be one of {', '.join(CHOSEN_SOURCES)}, got {self.chosen!r}")
        try:
            self.reject_kinds = ",".join(parse_reject_kinds(self.reject_kinds) or ())
        except ValueError as exc:
            raise IterateError(f"--reject-kinds: {exc}") from exc
        if not self.reject_kinds:
            raise IterateError("--reject-kinds is empty: name at least one of wrong, error, timeout, no_sql")
        if self.backend not in ("hf", "vllm"):
            raise IterateError(f"--backend must be hf or vllm, got {self.backend!r}")
        if self.from_path is None and self.preset not in PROFILES and not self.dry_run:
            raise IterateError(
                f"preset {self.preset} has no demo SFT profile: give --from (the SFT adapter or model folder)"
            )
        if self.corpus is not None and self.from_path is None and not self.dry_run:
            raise IterateError("with --corpus give --from: the demo SFT is trained on the demo corpus only")

    @property
    def demo(self) -> DemoConfig | None:
        """The demo profile (sizes, LoRA layout, DPO defaults) of an embedded preset; None otherwise."""
        if self.preset not in PROFILES:
            return None
        return demo_config(
            self.preset,
            out=self.out,
            seed=self.seed,
            n_dev=self.n_dev,
            max_new_tokens=self.max_new_tokens,
            dpo_lr=self.dpo_lr,
            dpo_epochs=self.dpo_epochs,
            pref_beta=self.pref_beta,
        )

    def settings(self) -> dict[str, Any]:
        """What :func:`check_settings` compares: every field but out, force and dry_run."""
        values = {k: v for k, v in asdict(self).items() if k not in ("out", "force", "dry_run")}
        return json.loads(json.dumps(values, default=str))


class IterateLayout(DemoLayout):
    """The demo's layout (corpus, data, saves, logs, recipes, report) plus per-round folders."""

    @property
    def pool(self) -> Path:
        return self.data / "train_pool.json"

    def round_dir(self, k: int) -> Path:
        return self.root / "rounds" / f"round{k}"

    def merged(self, k: int) -> Path:
        return self.root / "models" / f"round{k}"

    def round_adapter(self, k: int) -> Path:
        return self.saves / f"round{k}"

    def round_recipes(self, k: int) -> Path:
        return self.recipes / f"round{k}"

    def round_predictions(self, k: int) -> Path:
        return self.report / f"round{k}" / "predict_dev.json"


@dataclass(frozen=True)
class ModelRef:
    """A model as the next round sees it: a base (hub id or folder) plus LoRA adapters on it, in order."""

    base: str
    adapters: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"base": self.base, "adapters": list(self.adapters)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelRef:
        return cls(data["base"], tuple(data["adapters"]))


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


# ----------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    """Paths, presets and recipes of a run, shared by the real run and the dry run."""

    cfg: IterateConfig
    layout: IterateLayout
    preset: dict[str, Any]

    @property
    def corpus(self) -> Path:
        return Path(self.cfg.corpus) if self.cfg.corpus else self.layout.corpus

    @property
    def demo_corpus(self) -> bool:
        return self.cfg.corpus is None

    def prompt_builder(self) -> Any:
        from lfkit.data.demo import DEMO_PROMPT_OPTIONS
        from lfkit.data.prompts import SchemaPromptBuilder

        return SchemaPromptBuilder(**DEMO_PROMPT_OPTIONS) if self.demo_corpus else SchemaPromptBuilder()

    def train_overrides(self) -> dict[str, Any]:
        """LLaMA-Factory values every DPO round gets (the demo profile's LoRA layout for an embedded preset)."""
        from lfkit.recipes.render import lora_target_last_layers

        cfg, demo = self.cfg, self.cfg.demo
        out: dict[str, Any] = {"seed": cfg.seed}
        if demo is not None:
            out.update(cutoff_len=demo.cutoff_len, save_steps=100000, logging_steps=1)
            out.update(learning_rate=demo.dpo_lr, num_train_epochs=demo.dpo_epochs, pref_beta=demo.pref_beta)
            if demo.lora_last_layers:
                out["lora_target"] = lora_target_last_layers(self.preset["model_name_or_path"], demo.lora_last_layers)
            if demo.lora_rank:
                out.update(lora_rank=demo.lora_rank, lora_alpha=2 * demo.lora_rank)
            out.update(pref_loss=demo.pref_loss, pref_ftx=demo.pref_ftx)
        for key, value in (
            ("learning_rate", cfg.dpo_lr),
            ("num_train_epochs", cfg.dpo_epochs),
            ("pref_beta", cfg.pref_beta),
            ("pref_loss", cfg.pref_loss),
            ("pref_ftx", cfg.pref_ftx),
        ):
            if value is not None:
                out[key] = value
        return out

    def merge_recipe(self, k: int, start: ModelRef) -> dict[str, Any]:
        """Round k's first step: ``llamafactory-cli export`` of round k-1 (base + adapters) -> models/round<k-1>."""
        from lfkit.recipes import render_recipe

        preset = {**self.preset, "model_name_or_path": start.base}
        return render_recipe(
            "export",
            preset,
            adapter_name_or_path=list(start.adapters),
            output_dir=str(self.layout.merged(k - 1).resolve()),
        )

    def dpo_recipe(self, k: int, policy: str) -> dict[str, Any]:
        """Round k's DPO: a new LoRA adapter on ``policy`` (round k-1 merged), which is also the reference."""
        from lfkit.recipes import render_recipe

        preset = {**self.preset, "model_name_or_path": policy}
        return render_recipe(
            "dpo_round",
            preset,
            self.train_overrides(),
            dataset=f"{DATASET_PREFIX}{k}",
            dataset_dir=str(self.layout.data.resolve()),
            output_dir=str(self.layout.round_adapter(k).resolve()),
        )

    def rejects_config(self, k: int, policy: str) -> Any:
        from lfkit.data.bird import split_db_root
        from lfkit.prefs.rejects import RejectsConfig

        demo = self.cfg.demo
        max_new = demo.max_new_tokens if demo else (self.cfg.max_new_tokens or 512)
        batch = demo.batch_size if demo else 32
        rdir = self.layout.round_dir(k)
        return RejectsConfig(
            sft_data=str(rdir / "questions.json"),
            db_root=str(split_db_root(self.corpus, "train")),
            output=str(rdir / "pairs.jsonl"),
            num_samples=self.cfg.num_candidates,
            seed=self.cfg.seed * 1000 + 1234 + k,
            temperature=self.cfg.temperature,
            top_p=0.95,
            max_new_tokens=max_new,
            batch_size=max(1, batch // self.cfg.num_candidates),
            pairing="hardest",
            max_pairs_per_question=self.cfg.pairs_per_question,
            chosen=self.cfg.chosen,
            reject_kinds=tuple(self.cfg.reject_kinds.split(",")),
            round=k,
            overwrite=self.cfg.force,  # --force redoes the sampling (a journal of other settings is refused)
            model_info={"model": policy, "round": k},
        )

    def rejects_command(self, k: int, policy: str) -> str:
        """The ``lfkit prefs rejects`` command line equivalent to round k's sampling (for --dry-run)."""
        rc = self.rejects_config(k, policy)
        args = [
            "lfkit", "prefs", "rejects", "--backend", self.cfg.backend, "--base-model", policy,
            "--template", self.preset["template"], "--sft-data", rc.sft_data, "--db-root", rc.db_root,
            "--output", rc.output, "--num-rejects", str(rc.num_samples), "--seed", str(rc.seed),
            "--temperature", str(rc.temperature), "--top-p", str(rc.top_p), "--max-new-tokens", str(rc.max_new_tokens),
            "--pairing", rc.pairing, "--max-pairs-per-question", str(rc.max_pairs_per_question),
            "--chosen", rc.chosen, "--reject-kinds", ",".join(rc.reject_kinds), "--round", str(k),
        ]  # fmt: skip
        return shlex.join(args)

    def backend(self, model: str, adapters: tuple[str, ...] = ()) -> Any:
        from lfkit.generate import get_backend

        demo = self.cfg.demo
        options: dict[str, Any] = {"model": model, "adapter": ",".join(adapters) or None}
        options["template"] = self.preset["template"]
        if self.cfg.backend == "hf":
            options["batch_size"] = demo.batch_size if demo else 16
            if self.preset.get("embedded"):
                options["device"] = "cpu"
        return get_backend(self.cfg.backend, **options)


# ----------------------------------------------------------------------------- stages


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


def stage_data(plan: Plan) -> dict[str, Any]:
    """The corpus (demo corpus unless --corpus) and the pool of train questions as SFT rows."""
    from lfkit.data.sft import SFTOptions, build_sft
    from lfkit.pipeline.demo import stage_corpus

    layout = plan.layout
    out: dict[str, Any] = {}
    if plan.demo_corpus:  # the demo's own corpus stage: corpus, its SFT rows, their dataset entry
        out.update(stage_corpus(plan.cfg.demo, layout))
    for name in ("train.json", "dev.json"):
        if not (plan.corpus / name).is_file():
            raise IterateError(f"--corpus {plan.corpus}: no {name} (a BIRD folder has train.json and dev.json)")
    pool = build_sft(plan.corpus, "train", layout.pool, builder=plan.prompt_builder(), options=SFTOptions())
    out["pool_questions"] = pool["rows"]
    return out


def stage_demo_sft(plan: Plan) -> dict[str, Any]:
    """Round 0 without --from: the demo's SFT (its corpus stage and training stage, unchanged)."""
    from lfkit.pipeline.demo import SFT_DATASET, stage_train

    demo = plan.cfg.demo
    overrides = {"learning_rate": demo.sft_lr, "num_train_epochs": demo.sft_epochs}
    return stage_train(demo, plan.layout, "sft", SFT_DATASET, overrides, [])


def stage_eval(plan: Plan, k: int, model: ModelRef) -> dict[str, Any]:
    from lfkit.data.bird import load_bird, split_db_root
    from lfkit.eval import score_predictions, write_bird_predictions
    from lfkit.eval.predict import predict_sql

    demo = plan.cfg.demo
    max_new = demo.max_new_tokens if demo else (plan.cfg.max_new_tokens or 512)
    examples = load_bird(plan.corpus, "dev")
    backend = plan.backend(model.base, model.adapters)
    try:
        predictions = predict_sql(
            examples, backend, plan.prompt_builder(), max_new_tokens=max_new, description=f"round {k}: dev"
        )
    finally:
        backend.close()
    path = plan.layout.round_predictions(k)
    write_bird_predictions(path, predictions)
    report = score_predictions(predictions, plan.corpus / "dev.json", split_db_root(plan.corpus, "dev"))
    report = json.loads(json.dumps(report, default=str))
    report.pop("results", None)  # per-question detail: the prediction file holds what is needed to re-score
    report["predictions"] = str(path.relative_to(plan.layout.root))
    report["model"] = model.as_dict()
    return report


def stage_merge(plan: Plan, k: int, start: ModelRef) -> dict[str, Any]:
    from lfkit.recipes import write_recipe
    from lfkit.train import run_llamafactory

    recipe = write_recipe(plan.merge_recipe(k, start), plan.layout.round_recipes(k) / "merge.yaml")
    run_llamafactory(recipe, plan.layout.logs / f"round{k}_merge.log", title=f"round {k}: merge")
    merged = plan.layout.merged(k - 1).resolve()
    if not (merged / "config.json").is_file():
        raise IterateError(f"round {k}: llamafactory-cli export finished but wrote no model in {merged}")
    return {"model": str(merged), "recipe": str(recipe.relative_to(plan.layout.root)), "from": start.as_dict()}


def stage_sample(plan: Plan, k: int, policy: str) -> dict[str, Any]:
    from lfkit.io import read_rows, write_rows
    from lfkit.prefs.rejects import build_rejects
    from lfkit.registry import register_dataset

    rdir = plan.layout.round_dir(k)
    questions = question_slice(read_rows(plan.layout.pool), k, plan.cfg.questions_per_round, plan.cfg.seed)
    write_rows(rdir / "questions.json", questions)
    job = plan.rejects_config(k, policy)
    backend = plan.backend(policy)
    try:
        summary = build_rejects(job, backend, progress=True).as_dict()
    finally:
        backend.close()
    extra = summary["extra"]
    result = {
        "questions": summary["questions"],
        "candidates": summary["candidates"],
        "labels": summary["labels"],
        "duplicates": summary["duplicates"],
        "pairs": summary["pairs"],
        "pairs_by_reject_kind": {
            k2.removeprefix("rejected_"): v for k2, v in extra.items() if k2.startswith("rejected_")
        },
        "pairs_by_chosen_source": {"gold": extra.get("chosen_gold", 0), "on-policy": extra.get("chosen_on_policy", 0)},
        "questions_without_pair": summary["questions_without_pair"],
        "pairs_file": str(Path(job.output).relative_to(plan.layout.root)),
    }
    if summary["pairs"] == 0:
        labels = summary["labels"]
        why = (
            "every candidate was correct"
            if labels.get("correct") == summary["candidates"]
            else (
                "no candidate was correct and gold fallback found no usable reject"
                if not labels.get("correct")
                else "no candidate of an allowed reject kind"
            )
        )
        result["empty"] = f"no preference pair ({why}; allowed rejects: {plan.cfg.reject_kinds})"
        return result
    register_dataset(plan.layout.dataset_info, f"{DATASET_PREFIX}{k}", Path(job.output), "preference", force=True)
    return result


def stage_dpo(plan: Plan, k: int, policy: str) -> dict[str, Any]:
    from lfkit.recipes import write_recipe
    from lfkit.train import run_llamafactory

    out_dir = plan.layout.round_adapter(k)
    recipe = write_recipe(plan.dpo_recipe(k, policy), plan.layout.round_recipes(k) / "dpo.yaml")
    trained = run_llamafactory(recipe, plan.layout.logs / f"round{k}_dpo.log", title=f"round {k}: DPO")
    if not (out_dir / "adapter_model.safetensors").is_file():
        raise IterateError(f"round {k}: llamafactory-cli finished but wrote no adapter in {out_dir}")
    losses = trained.losses
    return {
        "steps": trained.steps,
        "first_loss": losses[0][1] if losses else None,
        "last_loss": losses[-1][1] if losses else None,
        "mean_loss": round(trained.mean_loss, 4) if trained.mean_loss is not None else None,
        "reward_accuracy": trained.reward_accuracy,
        "loss_curve": losses,
        "recipe": str(recipe.relative_to(plan.layout.root)),
        "policy_start": policy,
        "reference": policy,
        "adapter": str(out_dir.relative_to(plan.layout.root)),
    }


# ----------------------------------------------------------------------------- the loop


def start_model(plan: Plan, runner: StageRunner | None) -> ModelRef:
    """Round 0: ``--from`` (adapter on the preset's base, or a model folder), else the demo SFT."""
    cfg = plan.cfg
    base = plan.preset["model_name_or_path"]
    if cfg.from_path is not None:
        path = Path(cfg.from_path)
        if cfg.dry_run and not path.exists():
            return ModelRef(base, (str(path),))  # a GPU user's path: assume the SFT adapter
        kind = classify_from(path)
        return ModelRef(base, (str(path.resolve()),)) if kind == "adapter" else ModelRef(str(path.resolve()))
    if cfg.preset not in PROFILES:  # dry run of a GPU preset: the flow's SFT output (recipes/<preset>/sft.yaml)
        return ModelRef(base, (f"saves/{cfg.preset}/{plan.preset['finetuning_type']}/sft",))
    sft = plan.layout.adapter("sft")
    if runner is not None:
        runner.run("round0/sft", "round 0: SFT (the demo's)", lambda: stage_demo_sft(plan))
    return ModelRef(base, (str(sft.resolve()),))


@dataclass
class RoundsDone:
    """What :func:`run_rounds` leaves: the best round (0 = the start model), its model, why the loop stopped."""

    best_round: int
    best_ex: float
    best_model: ModelRef
    last_round: int
    stopped: str | None = None


def run_rounds(plan: Plan, runner: StageRunner, start: ModelRef, start_ex: float, *, title: str = "") -> RoundsDone:
    """Rounds 1..R from ``start`` (round 0, whose dev EX is ``start_ex``) as stages ``round<k>/*`` of ``runner``.

    ``lfkit iterate`` and ``lfkit demo --full`` both run their DPO rounds through this.
    """
    cfg, layout = plan.cfg, plan.layout
    model = start
    done = RoundsDone(best_round=0, best_ex=start_ex, best_model=start, last_round=0)
    for k in range(1, cfg.rounds + 1):
        start = model
        if start.adapters:
            merged = runner.run(
                f"round{k}/merge",
                f"{title}round {k}: merge round {k - 1}",
                lambda k=k, s=start: stage_merge(plan, k, s),
            )
            policy = merged["model"]
        else:
            policy = start.base
        sample = runner.run(
            f"round{k}/sample",
            f"{title}round {k}: sample + verify pairs",
            lambda k=k, p=policy: stage_sample(plan, k, p),
        )
        if sample.get("empty"):
            done.stopped = f"round {k} is empty: {sample['empty']}; the loop stops without training on nothing"
            console.print(f"[yellow]{done.stopped}[/yellow]")
            break
        runner.run(
            f"round{k}/dpo",
            f"{title}round {k}: DPO from round {k - 1} (reference = round {k - 1})",
            lambda k=k, p=policy: stage_dpo(plan, k, p),
        )
        model = ModelRef(policy, (str(layout.round_adapter(k).resolve()),))
        result = runner.run(
            f"round{k}/eval", f"{title}round {k}: evaluate", lambda k=k, m=model: stage_eval(plan, k, m)
        )
        done.last_round = k
        if result["ex"] > done.best_ex:
            done.best_ex, done.best_round, done.best_model = result["ex"], k, model
        elif cfg.stop_when_worse and result["ex"] < done.best_ex:
            done.stopped = (
                f"round {k} lowered dev EX ({result['ex']:.1f} < {done.best_ex:.1f}, round {done.best_round}): stopped"
            )
            console.print(f"[yellow]{done.stopped}[/yellow]")
            break
    return done


def run_iterate(cfg: IterateConfig) -> dict[str, Any]:
    """Run (or resume) every round and write the report; returns report.json's content."""
    from lfkit.models.presets import load_preset

    if cfg.dry_run:
        return dry_run(cfg)
    layout = IterateLayout(cfg.out)
    if cfg.from_path is not None:
        classify_from(cfg.from_path)  # before anything is written
    layout.root.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]lfkit iterate[/bold]: preset {cfg.preset}, {cfg.rounds} rounds, output {layout.root}")
    check_settings(layout, cfg.settings(), force=cfg.force)
    plan = Plan(cfg, layout, load_preset(cfg.preset))
    runner = StageRunner(layout, cfg.force, console)
    runner.run("data", "data: corpus + train question pool", lambda: stage_data(plan))
    model = start_model(plan, runner)
    first = runner.run("round0/eval", "round 0: evaluate the start model", lambda: stage_eval(plan, 0, model))
    done = run_rounds(plan, runner, model, first["ex"])
    report = write_report(plan, runner.results, stopped=done.stopped, best_round=done.best_round)
    console.print(f"\n[bold]{report['verdict']}[/bold]\nreport: {layout.root / 'report.md'}")
    return report


def dry_run(cfg: IterateConfig) -> dict[str, Any]:
    """Print (and write under OUT/recipes/) every recipe and command of the run; train nothing."""
    from lfkit.models.presets import load_preset
    from lfkit.recipes import write_recipe
    from lfkit.recipes.render import dump_recipe
    from lfkit.train import describe_env, llamafactory_env

    layout = IterateLayout(cfg.out)
    plan = Plan(cfg, layout, load_preset(cfg.preset, resolve=False))
    if plan.preset.get("embedded"):
        plan.preset = load_preset(cfg.preset)
    lines: list[str] = [f"# lfkit iterate --dry-run: preset {cfg.preset}, {cfg.rounds} rounds, output {layout.root}"]
    model = start_model(plan, None)
    if cfg.from_path is None and cfg.preset in PROFILES:
        lines.append(f"# round 0: the demo SFT adapter {layout.adapter('sft')} (lfkit demo's sft stage)")
    elif cfg.from_path is None:
        lines.append("# round 0: the SFT adapter of recipes/<preset>/sft.yaml (give --from for another)")
    lines.append(
        f"# round 0 model: {model.base}" + (f" + adapter(s) {', '.join(model.adapters)}" if model.adapters else "")
    )
    recipes: list[str] = []

    def show(config: dict[str, Any], path: Path, command: str) -> None:
        write_recipe(config, path)
        recipes.append(str(path))
        env = describe_env(llamafactory_env(config.get("model_name_or_path")))  # as run_llamafactory runs it
        lines.extend([f"# environment: {env}", f"{command} {path}", f"# --- {path}", dump_recipe(config).rstrip()])
        lines.append("# ---")

    for k in range(1, cfg.rounds + 1):
        lines.append(f"\n# ===== round {k}: sample with round {k - 1}, DPO with round {k - 1} as start and reference")
        if model.adapters:
            show(plan.merge_recipe(k, model), layout.round_recipes(k) / "merge.yaml", "llamafactory-cli export")
            policy = str(layout.merged(k - 1).resolve())
        else:
            policy = model.base
        lines.append(
            f"# questions: round {k}'s {cfg.questions_per_round} fresh train questions -> "
            f"{layout.round_dir(k) / 'questions.json'}"
        )
        lines.append(plan.rejects_command(k, policy))
        lines.append(
            shlex.join(
                [
                    "lfkit",
                    "register",
                    "--dataset-info",
                    str(layout.dataset_info),
                    "--name",
                    f"{DATASET_PREFIX}{k}",
                    "--file",
                    str(layout.round_dir(k) / "pairs.jsonl"),
                    "--kind",
                    "preference",
                    "--force",
                ]
            )
        )
        show(plan.dpo_recipe(k, policy), layout.round_recipes(k) / "dpo.yaml", "llamafactory-cli train")
        model = ModelRef(policy, (str(layout.round_adapter(k).resolve()),))
        lines.append(
            f"# evaluate: greedy dev predictions with {policy} + {layout.round_adapter(k)} -> "
            f"{layout.round_predictions(k)}, then"
        )
        lines.append(
            shlex.join(
                [
                    "lfkit",
                    "eval",
                    "score",
                    "-p",
                    str(layout.round_predictions(k)),
                    "-g",
                    str(plan.corpus / "dev.json"),
                    "--db-root",
                    str(plan.corpus / "dev_databases"),
                ]
            )
        )
    text = "\n".join(lines) + "\n"
    print(text)
    return {"dry_run": True, "recipes": recipes, "text": text}


# ----------------------------------------------------------------------------- report


def rescore_rounds(root: str | Path, corpus: str | Path | None = None) -> list[dict[str, Any]]:
    """EX by round re-scored from ``report/round<k>/predict_dev.json`` (BIRD's format) alone.

    ``corpus`` defaults to ``root/corpus``; rows are in round order, one per prediction file.
    """
    from lfkit.data.bird import split_db_root
    from lfkit.eval import score_predictions

    layout = IterateLayout(Path(root))
    corpus = Path(corpus) if corpus is not None else layout.corpus
    rows = []
    files = sorted(layout.report.glob("round*/predict_dev.json"), key=lambda f: int(f.parent.name[5:]))
    for path in files:
        r = score_predictions(path, corpus / "dev.json", split_db_root(corpus, "dev"))
        rows.append(
            {
                "round": int(path.parent.name[5:]),
                "ex": r["ex"],
                "n": r["n"],
                "by_difficulty": r["by_difficulty"],
                "errors": r["errors"],
                "predictions": str(path.relative_to(layout.root)),
            }
        )
    return rows


def round_rows(plan: Plan, results: dict[str, dict[str, Any]], best_round: int) -> list[dict[str, Any]]:
    """One row per round (0 = the start model): EX re-scored from the prediction files, pairs, DPO, times."""
    scored = {r["round"]: r for r in rescore_rounds(plan.layout.root, plan.corpus)}
    rows = []
    for k in range(0, plan.cfg.rounds + 1):
        stages = {name.split("/", 1)[1]: r for name, r in results.items() if name.startswith(f"round{k}/")}
        if not stages:
            break
        row: dict[str, Any] = {"round": k, "best": k == best_round}
        if k in scored:
            row.update({key: scored[k][key] for key in ("ex", "n", "by_difficulty", "errors", "predictions")})
        sample, dpo = stages.get("sample"), stages.get("dpo")
        if sample is not None:
            row["pairs"] = sample["pairs"]
            row["pairs_by_reject_kind"] = sample["pairs_by_reject_kind"]
            row["pairs_by_chosen_source"] = sample["pairs_by_chosen_source"]
            row["labels"] = sample["labels"]
            if sample.get("empty"):
                row["empty"] = sample["empty"]
        if dpo is not None:
            for key in ("steps", "first_loss", "last_loss", "mean_loss", "reward_accuracy", "recipe"):
                row[f"dpo_{key}"] = dpo[key]
            row["policy_start"] = row["reference"] = dpo["policy_start"]
        if "merge" in stages:
            row["merge_recipe"] = stages["merge"]["recipe"]
        row["seconds"] = {name: r.get("seconds") for name, r in stages.items()}
        rows.append(row)
    return rows


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def markdown(report: dict[str, Any]) -> str:
    from lfkit.data.rows import DIFFICULTIES
    from lfkit.pipeline.report import run_line

    head = (
        "| round | EX % | "
        + " | ".join(f"{d} %" for d in DIFFICULTIES)
        + " | errors | pairs (wrong/error/timeout/no_sql) "
    )
    head += "| on-policy chosen | DPO loss first -> last | reward acc | steps | minutes |"
    lines = [f"# lfkit iterate report ({report['preset']})", "", head, "|" + "---|" * (len(DIFFICULTIES) + 9)]
    for r in report["rounds"]:
        diffs = [
            f"{r['by_difficulty'][d]['ex']:.1f} ({r['by_difficulty'][d]['n']})"
            if d in r.get("by_difficulty", {})
            else "-"
            for d in DIFFICULTIES
        ]
        kinds = r.get("pairs_by_reject_kind")
        pairs = (
            f"{r['pairs']} ({'/'.join(str(kinds.get(k, 0)) for k in ('wrong', 'error', 'timeout', 'no_sql'))})"
            if kinds
            else "-"
        )
        loss = (
            f"{_fmt(r.get('dpo_first_loss'), '.4f')} -> {_fmt(r.get('dpo_last_loss'), '.4f')}"
            if "dpo_steps" in r
            else "-"
        )
        minutes = sum(v or 0 for v in r["seconds"].values()) / 60
        name = f"{r['round']}{' (best)' if r['best'] else ''}{' (empty)' if r.get('empty') else ''}"
        lines.append(
            f"| {name} | {_fmt(r.get('ex'))} | " + " | ".join(diffs) + f" | {r.get('errors', '-')} | {pairs} | "
            f"{r.get('pairs_by_chosen_source', {}).get('on-policy', '-')} | {loss} | "
            f"{_fmt(r.get('dpo_reward_accuracy'), '.2f')} | {r.get('dpo_steps', '-')} | {minutes:.1f} |"
        )
    lines += ["", report["verdict"], ""]
    if report.get("stopped"):
        lines += [f"Stopped: {report['stopped']}", ""]
    lines += [
        "Round 0 is the start model; round k trains a new LoRA adapter on round k-1 merged "
        "(llamafactory-cli export), which is also its DPO reference.",
        "",
        "## Files",
        "- predictions (BIRD predict_dev.json): "
        + ", ".join(f"`{r['predictions']}`" for r in report["rounds"] if "predictions" in r),
        "  (the EX columns above are re-scored from these files: "
        "`lfkit eval score -p FILE -g corpus/dev.json --db-root corpus/dev_databases`)",
        "- recipes: " + ", ".join(f"`{p}`" for p in report["recipes"]),
        "- plot: `ex_by_round.png`",
        "",
        "## Time per stage (seconds)",
    ]
    lines += [f"- {name}: {secs}" for name, secs in report["stage_seconds"].items()]
    lines += [
        "",
        run_line(report),
        "",
    ]
    return "\n".join(lines)


def plot_rounds(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lfkit.data.rows import DIFFICULTIES

    scored = [r for r in rows if "ex" in r]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = [r["round"] for r in scored]
    ax.plot(xs, [r["ex"] for r in scored], marker="o", linewidth=2, label="all")
    for d in DIFFICULTIES:
        ax.plot(xs, [r["by_difficulty"].get(d, {}).get("ex", 0.0) for r in scored], marker=".", linestyle="--", label=d)
    ax.set_xticks(xs)
    ax.set_xlabel("round (0 = start model)")
    ax.set_ylabel("dev EX (%)")
    ax.set_title("Execution accuracy by DPO round")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    plan: Plan, results: dict[str, dict[str, Any]], *, stopped: str | None = None, best_round: int = 0
) -> dict[str, Any]:
    from lfkit.io import atomic_write_text
    from lfkit.pipeline.report import run_record

    layout = plan.layout
    rows = round_rows(plan, results, best_round)
    scored = [r for r in rows if "ex" in r]
    first, best = scored[0], next(r for r in scored if r["round"] == best_round)
    trained = [r for r in rows if "dpo_steps" in r]
    verdict = (
        f"{len(trained)} DPO round(s): dev EX {first['ex']:.1f} at round 0 -> {scored[-1]['ex']:.1f} at round "
        f"{scored[-1]['round']}; best round {best_round} ({best['ex']:.1f})."
    )
    report = {
        "preset": plan.cfg.preset,
        "settings": plan.cfg.settings(),
        "rounds": rows,
        "best_round": best_round,
        "best_model": best.get("model") or results.get(f"round{best_round}/eval", {}).get("model"),
        "stopped": stopped,
        "verdict": verdict,
        **run_record(layout, results),
    }
    plot_rounds(rows, layout.root / "ex_by_round.png")
    atomic_write_text(layout.root / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(layout.root / "report.md", markdown(report))
    return report


__all__ = [
    "IterateConfig",
    "IterateError",
    "IterateLayout",
    "ModelRef",
    "Plan",
    "RoundsDone",
    "classify_from",
    "dry_run",
    "question_slice",
    "rescore_rounds",
    "run_iterate",
    "run_rounds",
]

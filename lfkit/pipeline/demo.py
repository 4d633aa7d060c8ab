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
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lfkit.io import atomic_write_text, iter_jsonl

console = Console()

SFT_DATASET = "lfkit_demo_sft"
DPO_DATASET = "lfkit_demo_dpo"


class DemoError(RuntimeError):
    """A demo stage failed; the message says which and where its log is."""


@dataclass
class DemoConfig:
    """Sizes and settings of one demo run (``PROFILES`` holds the defaults per model)."""

    model: str = field(default="smollm2-135m", metadata={"help": "Embedded model preset: smollm2-135m or tiny."})
    out: Path = field(default=Path("demo_out"), metadata={"help": "Output folder."})
    force: bool = field(default=False, metadata={"help": "Re-run every stage even when cached."})
    seed: int = field(default=0, metadata={"help": "Seed for the corpus, sampling and training."})
    n_train: int = field(default=400, metadata={"help": "Train questions in the corpus."})
    n_dev: int = field(default=120, metadata={"help": "Dev questions in the corpus (all are evaluated)."})
    n_sft: int = field(default=400, metadata={"help": "SFT rows used for training (seeded sample of train)."})
    sft_epochs: float = field(default=1.0, metadata={"help": "SFT epochs."})
    sft_lr: float = field(default=2e-4, metadata={"help": "SFT learning rate."})
    n_prefs: int = field(default=120, metadata={"help": "Train questions sampled for preference pairs."})
    num_candidates: int = field(default=4, metadata={"help": "Candidates sampled per question."})
    sample_temperature: float = field(default=0.8, metadata={"help": "Sampling temperature for candidates."})
    pairs_per_question: int = field(
        default=2, metadata={"help": "DPO pairs kept per question (the rejects closest to gold first)."}
    )
    dpo_epochs: float = field(default=1.0, metadata={"help": "DPO epochs."})
    dpo_lr: float = field(default=5e-5, metadata={"help": "DPO learning rate."})
    pref_beta: float = field(default=0.1, metadata={"help": "DPO beta."})
    max_new_tokens: int = field(default=96, metadata={"help": "Generation cap for evaluation and sampling."})
    batch_size: int = field(default=16, metadata={"help": "Prompts per generate call."})
    cutoff_len: int = field(default=640, metadata={"help": "LLaMA-Factory cutoff_len (demo prompts fit in it)."})
    lora_last_layers: int = field(
        default=0, metadata={"help": "LoRA on the last N decoder layers only (0 = every layer, the preset's)."}
    )
    lora_rank: int = field(default=0, metadata={"help": "LoRA rank, alpha = 2 x rank (0 = the preset's)."})

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.model not in PROFILES:
            raise ValueError(f"unknown demo model {self.model!r}; choose one of: {', '.join(PROFILES)}")
        if self.lora_rank < 0 or self.lora_last_layers < 0:
            raise ValueError("lora_rank and lora_last_layers must be >= 0 (0 = the preset's)")
        for name in ("n_train", "n_dev", "n_sft", "n_prefs", "num_candidates", "pairs_per_question", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.sft_lr <= 0 or self.dpo_lr <= 0:
            raise ValueError(f"learning rates must be > 0, got sft_lr={self.sft_lr}, dpo_lr={self.dpo_lr}")
        if self.n_sft > self.n_train or self.n_prefs > self.n_train:
            raise ValueError(
                f"n_sft ({self.n_sft}) and n_prefs ({self.n_prefs}) cannot exceed n_train ({self.n_train})"
            )


# Sizes chosen so that the default (smollm2-135m) run fits in about 20 minutes on 2 CPU
# cores and the tiny run is a smoke test of a few minutes (see README for measured times).
PROFILES: dict[str, dict[str, Any]] = {
    # LoRA on the last 8 of 30 layers: backward stops there, ~2.5x cheaper per step than all layers on
    # CPU. Measured on the dev split (40 SFT steps): rank 16 / lr 2e-3 on 8 layers gives EX 10.8%,
    # on 4 layers 2.5%, and rank 8 / lr 5e-4 on 4 layers 0% (the model learns the format, not the schema).
    "smollm2-135m": dict(
        n_sft=160,
        sft_lr=2e-3,
        lora_last_layers=8,
        lora_rank=16,
        # 64 dev questions and 24 preference questions keep the run near 20 minutes on 2 cores:
        # the three dev evaluations and the sampling are two thirds of the time (128-token decodes)
        n_dev=64,
        n_prefs=24,
        num_candidates=4,
        # a DPO step costs ~3.5 SFT steps on CPU (chosen + rejected + reference): one pair per question
        pairs_per_question=1,
        # 6 DPO steps at 2e-4 left the loss at ln 2 (0.6925: the new adapter barely moved off the SFT
        # reference); the SFT profile's experience is that this LoRA needs ~1e-3 to move in few steps
        dpo_lr=1e-3,
        # the longest gold answer is 114 SmolLM2 tokens (fence included): a lower cap makes a
        # third of the dev questions unanswerable
        max_new_tokens=128,
        # bigger batches decode faster on CPU (48 prompts: 43 s at 48, 54 s at 16, 72 s at 8);
        # 32 splits the 64 dev prompts and the 24 x 4 candidates into full batches
        batch_size=32,
    ),
    "tiny": dict(n_sft=32, n_prefs=8, num_candidates=2, max_new_tokens=16, sft_lr=1e-3),
}


def demo_config(model: str = "smollm2-135m", **overrides: Any) -> DemoConfig:
    """The profile for ``model`` with ``overrides`` (``None`` values are ignored)."""
    if model not in PROFILES:
        raise ValueError(f"unknown demo model {model!r}; choose one of: {', '.join(PROFILES)}")
    values = {**PROFILES[model], **{k: v for k, v in overrides.items() if v is not None}}
    return DemoConfig(model=model, **values)


# ----------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Layout:
    """Where each artefact of a demo run lives."""

    root: Path

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def dataset_info(self) -> Path:
        return self.data / "dataset_info.json"

    @property
    def sft_data(self) -> Path:
        return self.data / "demo_sft.json"

    @property
    def pref_data(self) -> Path:
        return self.data / "demo_dpo.jsonl"

    @property
    def recipes(self) -> Path:
        return self.root / "recipes"

    @property
    def saves(self) -> Path:
        return self.root / "saves"

    @property
    def stages(self) -> Path:
        return self.root / "stages"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def report(self) -> Path:
        return self.root / "report"

    def adapter(self, stage: str) -> Path:
        return self.saves / stage

    def predictions(self, stage: str) -> Path:
        return self.report / f"predict_dev_{stage}.json"


# ----------------------------------------------------------------------------- stage runner


@dataclass
class StageRunner:
    """Runs stages in order, caching each one's result as JSON."""

    layout: Layout
    force: bool
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def run(self, name: str, title: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        marker = self.layout.stages / f"{name}.json"
        if marker.exists() and not self.force:
            result = json.loads(marker.read_text())
            console.print(f"[dim]- {title}: cached ({marker})[/dim]")
        else:
            console.rule(f"[bold]{title}")
            start = time.perf_counter()
            result = fn()
            result["seconds"] = round(time.perf_counter() - start, 1)
            atomic_write_text(marker, json.dumps(result, indent=2) + "\n")
            console.print(f"[green]✓[/green] {title}: {stage_line(result)}  [dim]({result['seconds']:.0f}s)[/dim]")
        self.results[name] = result
        return result


def stage_line(result: dict[str, Any]) -> str:
    if "ex" in result:
        parts = [f"EX {result['ex']:.1f}% (n={result['n']})"]
        parts += [f"{k} {v['ex']:.1f}%" for k, v in result.get("by_difficulty", {}).items()]
        return ", ".join(parts)
    return ", ".join(f"{k}={v}" for k, v in result.items() if isinstance(v, int | float | str) and k != "seconds")


# ----------------------------------------------------------------------------- stages


def stage_corpus(cfg: DemoConfig, layout: Layout) -> dict[str, Any]:
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


def make_backend(cfg: DemoConfig, adapters: list[Path]) -> Any:
    from lfkit.generate import get_backend
    from lfkit.recipes import load_preset

    preset = load_preset(cfg.model)
    return get_backend(
        "hf",
        model=preset["model_name_or_path"],
        adapter=",".join(str(a) for a in adapters) or None,
        template=preset["template"],
        device="cpu",
        batch_size=cfg.batch_size,
    )


def stage_eval(cfg: DemoConfig, layout: Layout, name: str, adapters: list[Path]) -> dict[str, Any]:
    from lfkit.data.bird import load_bird, split_db_root
    from lfkit.data.demo import DEMO_PROMPT_OPTIONS
    from lfkit.data.prompts import SchemaPromptBuilder
    from lfkit.eval import score_predictions, write_bird_predictions
    from lfkit.eval.predict import predict_sql

    examples = load_bird(layout.corpus, "dev")
    backend = make_backend(cfg, adapters)
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


def llamafactory_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        DISABLE_VERSION_CHECK="1",
        WANDB_DISABLED="true",
        TOKENIZERS_PARALLELISM="false",
        # A GPU box would train on cuda; the demo is specified for the CPU.
        CUDA_VISIBLE_DEVICES=env.get("LFKIT_DEMO_CUDA", ""),
    )
    return env


def llamafactory_cli() -> str:
    candidate = Path(sys.executable).with_name("llamafactory-cli")
    found = str(candidate) if candidate.exists() else shutil.which("llamafactory-cli")
    if not found:
        raise DemoError("llamafactory-cli not found: install the training extra (make install)")
    return found


def run_training(recipe: Path, output_dir: Path, log: Path, title: str) -> dict[str, Any]:
    """``llamafactory-cli train RECIPE`` with a progress bar read from LF's trainer_log.jsonl."""
    log.parent.mkdir(parents=True, exist_ok=True)
    trainer_log = output_dir / "trainer_log.jsonl"
    trainer_log.unlink(missing_ok=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with log.open("w") as fh, Progress(*columns, TextColumn("{task.fields[loss]}"), transient=True) as bar:
        proc = subprocess.Popen(
            [llamafactory_cli(), "train", str(recipe)], stdout=fh, stderr=subprocess.STDOUT, env=llamafactory_env()
        )
        task = bar.add_task(f"{title} (llamafactory-cli train)", total=None, loss="")
        try:
            while proc.poll() is None:
                time.sleep(2)
                records = list(iter_jsonl(trainer_log))
                if records:
                    last = records[-1]
                    loss = f"loss {last['loss']:.4f}" if last.get("loss") is not None else ""
                    bar.update(task, total=last.get("total_steps"), completed=last.get("current_steps"), loss=loss)
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise DemoError(f"{title} failed (exit {proc.returncode}); log: {log}\n{tail}")
    every = list(iter_jsonl(trainer_log))
    # LF's last record (the end of training) has no loss: count steps from every record
    records = [r for r in every if r.get("loss") is not None]
    results_file = output_dir / "train_results.json"
    train_loss = json.loads(results_file.read_text()).get("train_loss") if results_file.exists() else None
    return {
        "steps": max((r.get("current_steps", 0) for r in every), default=0),
        "first_loss": records[0]["loss"] if records else None,
        "last_loss": records[-1]["loss"] if records else None,
        "mean_loss": round(train_loss, 4) if train_loss is not None else None,
        # DPO logs rewards/accuracies as "accuracy": how often chosen already outscores rejected
        "last_accuracy": records[-1].get("accuracy") if records else None,
        "loss_curve": [(r["current_steps"], r["loss"]) for r in records],
    }


LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def lora_target_last_layers(model_dir: str | Path, n_layers: int) -> str:
    """``lora_target`` naming the linear modules of the last ``n_layers`` decoder layers.

    PEFT matches each name as a suffix of the module path, so ``layers.29.q_proj``-style
    names select layers without any LLaMA-Factory option for it.
    """
    config = json.loads((Path(model_dir) / "config.json").read_text())
    total = config["num_hidden_layers"]
    layers = range(max(0, total - n_layers), total)
    mlp = {"gate_proj", "up_proj", "down_proj"}
    return ",".join(f"layers.{i}.{'mlp' if m in mlp else 'self_attn'}.{m}" for i in layers for m in LINEAR_MODULES)


def stage_train(
    cfg: DemoConfig, layout: Layout, stage: str, dataset: str, overrides: dict[str, Any], adapters: list[Path]
) -> dict[str, Any]:
    from lfkit.recipes import load_preset, render_recipe, write_recipe

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
    result = run_training(recipe, output_dir, layout.logs / f"{stage}.log", stage.upper())
    if not (output_dir / "adapter_model.safetensors").exists():
        raise DemoError(f"{stage}: llamafactory-cli finished but wrote no adapter in {output_dir}")
    result["recipe"] = str(recipe.relative_to(layout.root))
    result["adapter"] = str(output_dir.relative_to(layout.root))
    return result


def stage_prefs(cfg: DemoConfig, layout: Layout) -> dict[str, Any]:
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
        # a weak model's answers without any SQL are its real failures: reject them too
        reject_no_sql=True,
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
    from lfkit.pipeline.report import write_report

    layout = Layout(cfg.out)
    layout.root.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]lfkit demo[/bold]: model {cfg.model}, output {layout.root}")
    check_settings(cfg, layout)
    runner = StageRunner(layout, cfg.force)
    sft, dpo = layout.adapter("sft"), layout.adapter("dpo")
    sft_overrides = {"learning_rate": cfg.sft_lr, "num_train_epochs": cfg.sft_epochs}
    dpo_overrides = {"learning_rate": cfg.dpo_lr, "num_train_epochs": cfg.dpo_epochs, "pref_beta": cfg.pref_beta}

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


def config_dict(cfg: DemoConfig) -> dict[str, Any]:
    out = asdict(cfg)
    out["out"] = str(cfg.out)
    return out


def check_settings(cfg: DemoConfig, layout: Layout) -> None:
    """Refuse to resume a run made with other settings, then record this run's settings.

    Cached stages are reused by name, so resuming with, say, another ``--n-sft`` would
    silently mix results of two configurations in one report.
    """
    settings_file = layout.root / "settings.json"
    current = {k: v for k, v in config_dict(cfg).items() if k not in ("out", "force")}
    if settings_file.exists() and any(layout.stages.glob("*.json")) and not cfg.force:
        previous = json.loads(settings_file.read_text())
        changed = [f"{k} {previous.get(k)!r} -> {v!r}" for k, v in current.items() if previous.get(k) != v]
        if changed:
            raise DemoError(
                f"{layout.root} holds a run made with other settings ({', '.join(changed)}); "
                "add --force to redo every stage with the new ones, or choose another --out"
            )
    atomic_write_text(settings_file, json.dumps(current, indent=2) + "\n")


__all__ = [
    "PROFILES",
    "DemoConfig",
    "DemoError",
    "Layout",
    "check_settings",
    "config_dict",
    "demo_config",
    "run_demo",
]

"""`lfkit demo --full`: every post-training loop of lfkit, one after the other, on the demo corpus.

Stages (each a cached stage of the shared :class:`~lfkit.pipeline.stages.StageRunner`, under
``OUT/stages/<name>.json``; re-run to resume, other settings are refused, ``--force`` redoes all):

1. ``corpus``          the demo corpus, its SFT rows and the train question pool (``lfkit iterate``'s data stage)
2. ``eval_base``       the base model on dev
3. ``sft``, ``eval_sft``  the demo's SFT (``lfkit demo``'s stages, unchanged) = round 0
4. ``round<k>/*``      DPO rounds from the SFT adapter (``lfkit iterate``'s rounds: merge, sample, dpo, eval)
5. ``trees``           revision trees of the best policy on train questions, verified (``lfkit tree build | verify``)
6. ``rm_data``         tree pairs (``lfkit tree pairs``) + the rounds' reject pairs (``lfkit prefs merge``)
7. ``rm``              a reward model through ``llamafactory-cli`` (the ``rm`` recipe of ``lfkit render rm``)
8. ``rm_test``         held-out pairs on dev questions from the best policy (``lfkit prefs rejects``)
9. ``rm_eval``         pairwise accuracy of the RM vs the bare base (``lfkit rm eval``)
10. ``bon/sample|score|select``  best-of-N on dev with the best policy (``lfkit eval predict --n``, ``lfkit rm
    score``, ``lfkit eval select``: first / greedy / vote / RM / oracle)
11. ``grpo``, ``eval_grpo``  GRPO (TRL) from the best policy (``lfkit render grpo`` + ``lfkit grpo train``), evaluated

then ``report.md`` / ``report.json`` / PNGs (:func:`lfkit.pipeline.report.write_full_report`), every EX
re-scored from the stage's own BIRD ``predict_dev.json``. The "best policy" is the round (0 = SFT)
with the highest dev EX. This file only sequences library calls: labelling, scoring, trees, pairs
and training belong to the modules it calls.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from lfkit.errors import LfkitError
from lfkit.pipeline.config import DemoConfig
from lfkit.pipeline.iterate import IterateConfig, IterateLayout, ModelRef, Plan
from lfkit.pipeline.stages import StageRunner, check_settings

console = Console()

RM_DATASET = "lfkit_full_rm"


class FullError(LfkitError, RuntimeError):
    """A stage of the full demo cannot go on (no pairs, a tree that fails verification); the message says why."""


@dataclass
class FullConfig:
    """Sizes of ``lfkit demo --full`` beyond the demo's own (corpus, SFT, eval: the demo profile)."""

    model: str = field(default="smollm2-135m", metadata={"help": "Embedded model preset: smollm2-135m or tiny."})
    out: Path = field(default=Path("demo_full_out"), metadata={"help": "Output folder."})
    force: bool = field(default=False, metadata={"help": "Re-run every stage even when cached."})
    seed: int = field(default=0, metadata={"help": "Seed for corpus, sampling and training."})
    n_dev: int | None = field(default=None, metadata={"help": "Dev questions (default: the demo profile's)."})
    rounds: int = field(default=2, metadata={"help": "DPO rounds (lfkit iterate) after the SFT."})
    questions_per_round: int = field(default=24, metadata={"help": "Fresh train questions sampled per round."})
    num_candidates: int = field(default=4, metadata={"help": "Candidates per question in a round."})
    chosen: str = field(default="on-policy", metadata={"help": "Rounds' chosen side: on-policy or gold."})
    reject_kinds: str = field(default="wrong,error,timeout,no_sql", metadata={"help": "Rounds' reject labels."})
    dpo_lr: float | None = field(default=None, metadata={"help": "DPO learning rate (default: the demo's)."})
    pref_beta: float | None = field(default=None, metadata={"help": "DPO beta (default: the demo's)."})
    tree_questions: int = field(default=16, metadata={"help": "Train questions given a revision tree."})
    tree_depth: int = field(default=2, metadata={"help": "Deepest revision level."})
    tree_samples: int = field(default=2, metadata={"help": "Children per expanded node."})
    tree_temperature: float = field(default=0.7, metadata={"help": "Tree sampling temperature."})
    rm_steps: int = field(default=20, metadata={"help": "Reward-model optimizer steps."})
    rm_lr: float | None = field(default=None, metadata={"help": "Reward-model learning rate (default: preset's)."})
    rm_test_questions: int = field(default=16, metadata={"help": "Dev questions giving held-out RM pairs."})
    rm_test_candidates: int = field(default=2, metadata={"help": "Samples per held-out question."})
    bon_n: int = field(default=4, metadata={"help": "Best-of-N: candidates per dev question."})
    bon_questions: int = field(default=32, metadata={"help": "Best-of-N: the first N dev questions."})
    bon_temperature: float = field(default=0.8, metadata={"help": "Best-of-N and held-out sampling temperature."})
    grpo_steps: int = field(default=10, metadata={"help": "GRPO optimizer steps (2 prompts x 4 completions)."})
    grpo_lr: float | None = field(default=None, metadata={"help": "GRPO learning rate (default: the preset's)."})

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.model not in FULL_PROFILES:
            raise FullError(f"unknown demo model {self.model!r}; choose one of: {', '.join(FULL_PROFILES)}")
        for name in (
            "rounds", "questions_per_round", "num_candidates", "tree_questions", "tree_depth", "tree_samples",
            "rm_steps", "rm_test_questions", "rm_test_candidates", "bon_n", "bon_questions", "grpo_steps",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise FullError(f"{name} must be >= 1, got {getattr(self, name)}")
        self.iterate  # validates chosen, reject_kinds  # noqa: B018

    @property
    def iterate(self) -> IterateConfig:
        """The DPO rounds as ``lfkit iterate`` runs them, from the SFT adapter of this run."""
        return IterateConfig(
            preset=self.model,
            out=self.out,
            from_path=str(IterateLayout(self.out).adapter("sft").resolve()),
            rounds=self.rounds,
            questions_per_round=self.questions_per_round,
            num_candidates=self.num_candidates,
            chosen=self.chosen,
            reject_kinds=self.reject_kinds,
            dpo_lr=self.dpo_lr,
            pref_beta=self.pref_beta,
            seed=self.seed,
            n_dev=self.n_dev,
            force=self.force,
        )

    @property
    def demo(self) -> DemoConfig:
        """The demo profile the corpus, SFT and evaluations use (``lfkit demo``'s, same sizes)."""
        demo = self.iterate.demo
        assert demo is not None  # every FULL_PROFILES model has a demo profile
        return demo

    def settings(self) -> dict[str, Any]:
        """What decides the results: the demo profile's values (``demo.*``) and every field here but out/force."""
        from lfkit.pipeline.config import demo_settings

        mine = {k: v for k, v in asdict(self).items() if k not in ("out", "force")}
        demo = {f"demo.{k}": v for k, v in demo_settings(self.demo).items() if k not in mine}
        return json.loads(json.dumps({**mine, **demo}, default=str))


# Sizes chosen to fit about 60 minutes on 2 CPU cores for smollm2-135m (from the costs measured for
# `lfkit demo`: 64 dev questions greedy ~110 s, 96 samples ~160 s, 40 SFT steps ~390 s, 6 DPO steps
# ~270 s) and a few minutes for tiny. Measured end to end on 2 quiet CPU cores (2026-12-03): 58.5 minutes,
# GRPO (10 steps, ~65 s each) and the RM the longest stages after SFT.
FULL_PROFILES: dict[str, dict[str, Any]] = {
    "smollm2-135m": dict(
        rounds=2, questions_per_round=24, num_candidates=4, tree_questions=16, tree_depth=2, tree_samples=2,
        rm_steps=20, rm_test_questions=16, rm_test_candidates=2, bon_n=4, bon_questions=32, grpo_steps=10,
    ),
    "tiny": dict(
        n_dev=16, rounds=2, questions_per_round=4, num_candidates=2, tree_questions=4, tree_depth=2, tree_samples=2,
        rm_steps=2, rm_test_questions=4, rm_test_candidates=2, bon_n=2, bon_questions=6, grpo_steps=2,
    ),
}  # fmt: skip


def full_config(model: str = "smollm2-135m", **overrides: Any) -> FullConfig:
    """The full profile for ``model`` with ``overrides`` (``None`` values are ignored); an unknown
    model is refused by :class:`FullConfig` itself."""
    values = {**FULL_PROFILES.get(model, {}), **{k: v for k, v in overrides.items() if v is not None}}
    return FullConfig(model=model, **values)


class FullLayout(IterateLayout):
    """The iterate layout (corpus, data, saves, rounds, report) plus trees, reward model, best-of-N, GRPO."""

    @property
    def trees(self) -> Path:
        return self.root / "trees"

    @property
    def tree_pairs(self) -> Path:
        return self.data / "tree_pairs.jsonl"

    @property
    def rm_train(self) -> Path:
        return self.data / "rm_train.jsonl"

    @property
    def dev_sft(self) -> Path:
        return self.data / "dev_sft.json"

    @property
    def rm_test(self) -> Path:
        return self.data / "rm_test.jsonl"

    @property
    def rm_eval(self) -> Path:
        return self.root / "rm_eval" / "eval_results.json"

    @property
    def bon(self) -> Path:
        return self.root / "bon"

    @property
    def grpo_data(self) -> Path:
        return self.data / "grpo_train.jsonl"


# ----------------------------------------------------------------------------- stages


def _rel(layout: FullLayout, path: str | Path) -> str:
    path = Path(path)
    try:
        return str(path.resolve().relative_to(layout.root.resolve()))
    except ValueError:
        return str(path)


def _backend(cfg: FullConfig, policy: ModelRef) -> Any:
    from lfkit.pipeline.demo import make_backend

    return make_backend(cfg.demo, [Path(a) for a in policy.adapters], policy.base)


def _builder() -> Any:
    from lfkit.data.demo import DEMO_PROMPT_OPTIONS
    from lfkit.data.prompts import SchemaPromptBuilder

    return SchemaPromptBuilder(**DEMO_PROMPT_OPTIONS)


def stage_trees(cfg: FullConfig, layout: FullLayout, policy: ModelRef) -> dict[str, Any]:
    """``lfkit tree build`` (the best policy, the first train SFT rows) then ``lfkit tree verify``."""
    from lfkit.data.bird import split_db_root
    from lfkit.io import atomic_write_text
    from lfkit.tree.build import TreeBuildConfig, build_trees
    from lfkit.tree.model import load_trees
    from lfkit.tree.verify import verify_trees

    db_root = split_db_root(layout.corpus, "train")
    build = TreeBuildConfig(
        sft_data=str(layout.sft_data),
        db_root=str(db_root),
        output_dir=str(layout.trees),
        max_depth=cfg.tree_depth,
        sample_num=cfg.tree_samples,
        temperature=cfg.tree_temperature,
        max_new_tokens=cfg.demo.max_new_tokens,
        seed=cfg.seed + 1234,
        max_samples=cfg.tree_questions,
        overwrite=cfg.force,
        model_info={"model": policy.base, "adapters": list(policy.adapters)},
    )
    backend = _backend(cfg, policy)
    try:
        summary = build_trees(build, backend, progress=True)
    finally:
        backend.close()
    all_trees = Path(summary["all_trees"])
    report = verify_trees(load_trees([all_trees]), db_root).as_dict()
    verification = layout.trees / "verification_report.json"
    atomic_write_text(verification, json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    if not report["ok"]:
        raise FullError(f"revision trees failed verification: see {verification}")
    summary.pop("seconds", None)  # the stage's own time is recorded by the runner
    return {
        **{k: v for k, v in summary.items() if k not in ("trees_file", "all_trees")},
        "all_trees": _rel(layout, all_trees),
        "verification": _rel(layout, verification),
        "verified_ok": report["ok"],
        "policy": policy.as_dict(),
    }


def stage_rm_data(cfg: FullConfig, layout: FullLayout, rounds: int) -> dict[str, Any]:
    """Tree pairs (every rule, no test split: the RM's held-out pairs are on dev questions) plus the
    rounds' reject pairs, merged into one preference dataset and registered."""
    from collections import Counter

    from lfkit.io import read_rows
    from lfkit.prefs import merge_outputs
    from lfkit.registry import register_dataset
    from lfkit.reward.rm_eval import pair_kind
    from lfkit.tree.build import ALL_TREES
    from lfkit.tree.model import load_trees
    from lfkit.tree.pairs import build_pairs, write_pairs

    trees = load_trees([layout.trees / ALL_TREES])
    result = build_pairs(trees, test_fraction=0.0, seed=cfg.seed)
    write_pairs(result, layout.tree_pairs)
    inputs = [layout.tree_pairs] if result.train else []
    for k in range(1, rounds + 1):
        pairs = layout.round_dir(k) / "pairs.jsonl"
        if pairs.is_file() and pairs.stat().st_size > 0:
            inputs.append(pairs)
    if not inputs:
        raise FullError("no preference pair for the reward model: the trees gave none and no DPO round had one")
    merged = merge_outputs(inputs, layout.rm_train)
    rows = read_rows(layout.rm_train)
    register_dataset(layout.dataset_info, RM_DATASET, layout.rm_train, "preference", force=True)
    by_source: Counter = Counter(r.get("source", "unknown") for r in rows)
    by_kind: dict[str, dict[str, int]] = {}
    for r in rows:
        kinds = by_kind.setdefault(r.get("source", "unknown"), {})
        kind = pair_kind(r) + (f" ({r['reject_kind']} rejected)" if r.get("reject_kind") else "")
        kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "pairs": len(rows),
        "tree_pairs": result.summary(),
        "inputs": [_rel(layout, p) for p in inputs],
        "duplicates_dropped": merged.get("duplicates", 0),
        "by_source": dict(by_source),
        "by_source_and_kind": by_kind,
        "file": _rel(layout, layout.rm_train),
    }


def stage_rm(cfg: FullConfig, layout: FullLayout) -> dict[str, Any]:
    """The reward model: ``lfkit render rm``'s recipe on the base model, trained by ``llamafactory-cli``."""
    from lfkit.pipeline.demo import stage_train

    overrides: dict[str, Any] = {"max_steps": cfg.rm_steps}
    if cfg.rm_lr is not None:
        overrides["learning_rate"] = cfg.rm_lr
    return stage_train(cfg.demo, layout, "rm", RM_DATASET, overrides, [])


def stage_rm_test(cfg: FullConfig, layout: FullLayout, policy: ModelRef) -> dict[str, Any]:
    """Held-out pairs as ``make rm`` makes them: the policy's verified rejects on dev questions, gold chosen."""
    from lfkit.data.bird import split_db_root
    from lfkit.data.sft import SFTOptions, build_sft
    from lfkit.prefs.rejects import RejectsConfig, build_rejects

    build_sft(layout.corpus, "dev", layout.dev_sft, builder=_builder(), options=SFTOptions())
    job = RejectsConfig(
        sft_data=str(layout.dev_sft),
        db_root=str(split_db_root(layout.corpus, "dev")),
        output=str(layout.rm_test),
        num_samples=cfg.rm_test_candidates,
        seed=cfg.seed + 4321,
        temperature=cfg.bon_temperature,
        top_p=0.95,
        max_new_tokens=cfg.demo.max_new_tokens,
        max_samples=cfg.rm_test_questions,
        batch_size=max(1, cfg.demo.batch_size // cfg.rm_test_candidates),
        reject_no_sql=True,
        chosen="gold",
        overwrite=cfg.force,
        model_info={"model": policy.base, "adapters": list(policy.adapters)},
    )
    backend = _backend(cfg, policy)
    try:
        summary = build_rejects(job, backend, progress=True).as_dict()
    finally:
        backend.close()
    if summary["pairs"] == 0:
        raise FullError(
            f"no held-out pair on {cfg.rm_test_questions} dev questions x {cfg.rm_test_candidates} samples: "
            "every sample was correct; raise rm_test_questions"
        )
    keys = ("questions", "candidates", "labels", "pairs", "questions_without_pair")
    return {**{k: summary[k] for k in keys}, "file": _rel(layout, layout.rm_test), "policy": policy.as_dict()}


def _preset(cfg: FullConfig) -> dict[str, Any]:
    from lfkit.models.presets import load_preset

    return load_preset(cfg.model)


def stage_rm_eval(cfg: FullConfig, layout: FullLayout) -> dict[str, Any]:
    """``lfkit rm eval``: the RM and the bare base (``none``) on the held-out dev pairs."""
    from lfkit.reward.rm_eval import run_rm_eval

    preset = _preset(cfg)
    results = run_rm_eval(
        preset["model_name_or_path"],
        [str(layout.adapter("rm")), "none"],
        layout.rm_test,
        layout.rm_eval,
        template=preset["template"],
        cutoff_len=cfg.demo.cutoff_len,
        questions=layout.corpus / "dev.json",
        device="cpu",
    )
    keys = ("n", "accuracy", "correct", "ties", "avg_margin", "by_difficulty", "by_kind")
    return {
        "models": {("rm" if r["name"] != "none" else "none"): {k: r[k] for k in keys} for r in results},
        "report": _rel(layout, layout.rm_eval),
    }


def stage_bon_sample(cfg: FullConfig, layout: FullLayout, policy: ModelRef) -> dict[str, Any]:
    """``lfkit eval predict --n N --with-greedy`` on the first dev questions with the best policy."""
    from lfkit.data.bird import load_bird
    from lfkit.eval.predict import sample_candidates, write_candidates
    from lfkit.sql import Verifier

    examples = load_bird(layout.corpus, "dev")[: cfg.bon_questions]
    backend = _backend(cfg, policy)
    try:
        with Verifier() as verifier:
            records = sample_candidates(
                examples, backend, _builder(), verifier, n=cfg.bon_n, temperature=cfg.bon_temperature, top_p=0.95,
                max_new_tokens=cfg.demo.max_new_tokens, seed=cfg.seed, with_greedy=True,
                chunk_size=max(1, cfg.demo.batch_size // cfg.bon_n),
            )  # fmt: skip
    finally:
        backend.close()
    path = layout.bon / "candidates.jsonl"
    summary = write_candidates(path, records)  # questions, labels, pass_at_n
    return {**summary, "n": cfg.bon_n, "candidates": _rel(layout, path), "policy": policy.as_dict()}


def stage_bon_score(cfg: FullConfig, layout: FullLayout) -> dict[str, Any]:
    """``lfkit rm score``: one RM score per candidate."""
    from lfkit.reward.rm_eval import run_rm_score

    preset = _preset(cfg)
    out = layout.bon / "scores.jsonl"
    summary = run_rm_score(
        preset["model_name_or_path"],
        str(layout.adapter("rm")),
        layout.bon / "candidates.jsonl",
        out,
        template=preset["template"],
        cutoff_len=cfg.demo.cutoff_len,
        device="cpu",
    )
    return {k: summary[k] for k in ("questions", "candidates", "failed_sql")} | {"scores": _rel(layout, out)}


def stage_bon_select(cfg: FullConfig, layout: FullLayout) -> dict[str, Any]:
    """``lfkit eval select``: EX of first / greedy / vote / RM / oracle, each from its own predict_dev.json."""
    from lfkit.data.bird import split_db_root
    from lfkit.eval.select import run_select

    report = run_select(
        layout.bon / "candidates.jsonl",
        layout.corpus / "dev.json",
        split_db_root(layout.corpus, "dev"),
        layout.bon / "select.json",
        scores=layout.bon / "scores.jsonl",
    )
    strategies = {
        name: {**{k: v for k, v in s.items() if k != "predictions"}, "predictions": _rel(layout, s["predictions"])}
        for name, s in report["strategies"].items()
    }
    return {
        "questions": report["questions"],
        "n_candidates": report["n_candidates"],
        "labels": report["labels"],
        "strategies": strategies,
        "report": _rel(layout, layout.bon / "select.json"),
        "plot": _rel(layout, report["plot"]) if report.get("plot") else None,
    }


def grpo_overrides(cfg: FullConfig) -> dict[str, Any]:
    """``lfkit render grpo --set`` values of the run: steps, token cap, the demo profile's LoRA layout."""
    from lfkit.recipes.render import lora_target_last_layers

    demo = cfg.demo
    out: dict[str, Any] = {
        "max_steps": cfg.grpo_steps,
        "max_completion_length": demo.max_new_tokens,
        "seed": cfg.seed,
        "save_steps": 100000,
        "logging_steps": 1,
        "lfkit.dev_every": 0,  # the run's own eval_grpo stage evaluates the whole dev split
    }
    if cfg.grpo_lr is not None:
        out["learning_rate"] = cfg.grpo_lr
    if demo.lora_last_layers:
        out["lora_target"] = lora_target_last_layers(_preset(cfg)["model_name_or_path"], demo.lora_last_layers)
    if demo.lora_rank:
        out.update(lora_rank=demo.lora_rank, lora_alpha=2 * demo.lora_rank)
    return out


def stage_grpo(cfg: FullConfig, layout: FullLayout, policy: ModelRef) -> dict[str, Any]:
    """``lfkit data grpo`` + ``lfkit render grpo --adapter <best policy>`` + ``lfkit grpo train``."""
    from lfkit.data.grpo import grpo_data
    from lfkit.grpo.train import LOG_FILE, train_grpo
    from lfkit.io import read_rows
    from lfkit.recipes.grpo import merged_path, render_grpo, write_grpo_config

    if len(policy.adapters) != 1:
        raise FullError(f"GRPO starts from one adapter on a base model; the best policy is {policy.as_dict()}")
    rows = grpo_data(layout.grpo_data, bird_dir=layout.corpus, split="train", builder=_builder())
    preset = {**_preset(cfg), "model_name_or_path": policy.base}
    config = render_grpo(
        preset,
        grpo_overrides(cfg),
        dataset=layout.grpo_data.resolve(),
        output_dir=layout.adapter("grpo").resolve(),
        sft_adapter=policy.adapters[0],
    )
    recipe = write_grpo_config(config, layout.recipes / "grpo.yaml")
    summary = train_grpo(recipe)
    log = read_rows(layout.adapter("grpo") / LOG_FILE) if (layout.adapter("grpo") / LOG_FILE).is_file() else []
    curve = [[r["step"], r["reward"]] for r in log if r.get("reward") is not None and r.get("step") is not None]
    return {
        "steps": summary["steps"],
        "rows": rows["rows"],
        "reward_curve": curve,
        "first_reward": curve[0][1] if curve else None,
        "last_reward": curve[-1][1] if curve else None,
        "reward_errors": summary["reward_errors"],
        "kl_reference": summary["kl_reference"],
        "recipe": _rel(layout, recipe),
        "adapter": _rel(layout, layout.adapter("grpo")),
        "start_model": str(Path(merged_path(policy.adapters[0]))),
        "policy": policy.as_dict(),
        "reward_curve_png": _rel(layout, summary["reward_curve"]) if summary.get("reward_curve") else None,
    }


# ----------------------------------------------------------------------------- the run


def run_full(cfg: FullConfig) -> dict[str, Any]:
    """Run (or resume) every stage and write the report; returns report.json's content."""
    from lfkit.pipeline.demo import SFT_DATASET, stage_eval, stage_train
    from lfkit.pipeline.iterate import run_rounds, stage_data
    from lfkit.pipeline.report import write_full_report
    from lfkit.recipes.grpo import merged_path

    layout = FullLayout(cfg.out)
    layout.root.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]lfkit demo --full[/bold]: model {cfg.model}, output {layout.root}")
    check_settings(layout, cfg.settings(), force=cfg.force)
    demo, iterate = cfg.demo, cfg.iterate
    plan = Plan(iterate, layout, _preset(cfg))
    runner = StageRunner(layout, cfg.force, console)
    sft_adapter = layout.adapter("sft")
    sft_overrides = {"learning_rate": demo.sft_lr, "num_train_epochs": demo.sft_epochs}

    runner.run("corpus", "1. demo corpus, SFT data, train question pool", lambda: stage_data(plan))
    runner.run("eval_base", "2. evaluate the base model", lambda: stage_eval(demo, layout, "eval_base", []))
    runner.run("sft", "3. SFT", lambda: stage_train(demo, layout, "sft", SFT_DATASET, sft_overrides, []))
    sft_eval = runner.run("eval_sft", "   evaluate SFT", lambda: stage_eval(demo, layout, "eval_sft", [sft_adapter]))
    sft = ModelRef(plan.preset["model_name_or_path"], (str(sft_adapter.resolve()),))
    done = run_rounds(plan, runner, sft, sft_eval["ex"], title="4. ")
    best = done.best_model
    console.print(f"best policy: round {done.best_round} (dev EX {done.best_ex:.1f})")
    runner.run("trees", "5. revision trees of the best policy, verified", lambda: stage_trees(cfg, layout, best))
    runner.run(
        "rm_data", "6. reward-model pairs: trees + rounds' rejects", lambda: stage_rm_data(cfg, layout, done.last_round)
    )
    runner.run("rm", "7. reward model (llamafactory-cli)", lambda: stage_rm(cfg, layout))
    runner.run("rm_test", "8. held-out pairs on dev questions", lambda: stage_rm_test(cfg, layout, best))
    runner.run("rm_eval", "9. rm eval on the held-out pairs", lambda: stage_rm_eval(cfg, layout))
    runner.run("bon/sample", f"10. best-of-{cfg.bon_n} on dev: sample", lambda: stage_bon_sample(cfg, layout, best))
    runner.run("bon/score", "    best-of-N: RM scores", lambda: stage_bon_score(cfg, layout))
    runner.run("bon/select", "    best-of-N: select", lambda: stage_bon_select(cfg, layout))
    runner.run("grpo", "11. GRPO from the best policy", lambda: stage_grpo(cfg, layout, best))
    grpo_base = merged_path(best.adapters[0])
    runner.run(
        "eval_grpo",
        "    evaluate GRPO",
        lambda: stage_eval(demo, layout, "eval_grpo", [layout.adapter("grpo")], base=grpo_base),
    )
    report = write_full_report(
        layout,
        runner.results,
        model=cfg.model,
        settings=cfg.settings(),
        rounds=cfg.rounds,
        best_round=done.best_round,
        stopped=done.stopped,
    )
    console.print(f"\n[bold]{report['verdict']}[/bold]\nreport: {layout.root / 'report.md'}")
    return report


__all__ = ["FULL_PROFILES", "FullConfig", "FullError", "FullLayout", "full_config", "grpo_overrides", "run_full"]

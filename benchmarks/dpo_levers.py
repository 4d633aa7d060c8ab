"""Which DPO settings make the demo model better after SFT? (issue 15, the README's lever table)

One SFT adapter per seed is trained once with the demo's settings (``lfkit demo``'s own stage
functions, so it is the demo's SFT model); one candidate pool per seed is sampled once from it
(the prefs journal); then each lever only writes its pairs from the pool, trains DPO from the
SFT adapter and evaluates dev. Every step is cached, so a re-run resumes.

    python benchmarks/dpo_levers.py sft --seeds 0 1          # SFT adapters + their dev EX
    python benchmarks/dpo_levers.py run --seeds 0 1          # every lever (or --levers a,b)
    python benchmarks/dpo_levers.py table                    # the markdown table, from the stage files

Output: ``levers_out/seed<S>/`` (a ``lfkit demo`` layout up to ``eval_sft``) and
``levers_out/seed<S>/levers/<lever>/`` (pairs, DPO recipe + adapter, predict_dev.json, stages).
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfkit.pipeline.config import DemoConfig, demo_config, demo_settings
from lfkit.pipeline.layout import RunLayout
from lfkit.pipeline.stages import StageResult, StageRunner, check_settings

ROOT = Path("levers_out")


@dataclass(frozen=True)
class Lever:
    """One DPO setting: the pairs it trains on and the LLaMA-Factory overrides."""

    name: str
    about: str
    chosen: str = "gold"  # gold | on-policy
    reject_kinds: tuple[str, ...] = ("wrong", "error", "timeout", "no_sql")
    pairs_per_question: int = 1
    questions: int = 24  # the first N of the pool's questions
    # LLaMA-Factory overrides: learning_rate, pref_beta, pref_loss, pref_ftx, num_train_epochs
    train: dict[str, Any] = field(default_factory=dict)


MODEL = "smollm2-135m"  # --model tiny: a smoke run of the driver itself (its EX is 0)


def seed_config(seed: int, root: Path) -> DemoConfig:
    return demo_config(MODEL, seed=seed, out=root / f"seed{seed}")


def run_sft(seed: int, root: Path) -> Any:
    """The demo's corpus, base eval, SFT and SFT evaluation for ``seed`` (``lfkit demo``'s own stages, cached)."""
    from lfkit.pipeline.demo import demo_context
    from lfkit.pipeline.demo import run_sft as demo_sft
    from lfkit.pipeline.results import EvalResult

    cfg = seed_config(seed, root)
    layout = RunLayout(cfg.out)
    layout.root.mkdir(parents=True, exist_ok=True)
    check_settings(layout, demo_settings(cfg))
    runner = StageRunner(layout)
    demo_sft(demo_context(cfg, layout), runner, cfg)
    return runner.get("eval_sft", EvalResult)


# The recorded demo's DPO is the first row; the others change one thing (or a few) against it.
BASE = {"learning_rate": 1e-3, "pref_beta": 0.1, "pref_loss": "sigmoid", "pref_ftx": 0.0}
LEVERS: dict[str, Lever] = {
    lv.name: lv
    for lv in (
        Lever("demo", "the recorded demo: gold chosen, every reject kind, lr 1e-3", train=BASE),
        Lever("on_policy", "on-policy chosen (gold fallback)", chosen="on-policy", train=BASE),
        Lever("lr2e-4", "lr 2e-4", train={**BASE, "learning_rate": 2e-4}),
        Lever(
            "on_policy_ftx",
            "on-policy chosen, pref_ftx 1.0, lr 2e-4",
            chosen="on-policy",
            train={**BASE, "learning_rate": 2e-4, "pref_ftx": 1.0},
        ),
        Lever(
            "on_policy_ftx_2ep",
            "on-policy chosen, pref_ftx 1.0, lr 3e-4, 2 epochs",
            chosen="on-policy",
            train={**BASE, "learning_rate": 3e-4, "pref_ftx": 1.0, "num_train_epochs": 2.0},
        ),
        Lever(
            "wrong_only",
            "on-policy, rejects = wrong result only, lr 2e-4",
            chosen="on-policy",
            reject_kinds=("wrong",),
            train={**BASE, "learning_rate": 2e-4},
        ),
        Lever(
            "error_only",
            "on-policy, rejects = execution errors only, lr 2e-4",
            chosen="on-policy",
            reject_kinds=("error", "timeout"),
            train={**BASE, "learning_rate": 2e-4},
        ),
        Lever(
            "no_sql_only",
            "on-policy, rejects = no SQL only, lr 2e-4",
            chosen="on-policy",
            reject_kinds=("no_sql",),
            train={**BASE, "learning_rate": 2e-4},
        ),
        Lever(
            "more_pairs",
            "on-policy, 48 questions x 2 pairs, lr 1e-4",
            chosen="on-policy",
            questions=48,
            pairs_per_question=2,
            train={**BASE, "learning_rate": 1e-4},
        ),
        Lever(
            "beta0.5",
            "on-policy, pref_beta 0.5, lr 2e-4",
            chosen="on-policy",
            train={**BASE, "learning_rate": 2e-4, "pref_beta": 0.5},
        ),
        Lever(
            "ipo",
            "on-policy, IPO loss, lr 2e-4",
            chosen="on-policy",
            train={**BASE, "learning_rate": 2e-4, "pref_loss": "ipo"},
        ),
        Lever(
            "orpo",
            "on-policy, ORPO (no reference), lr 2e-4",
            chosen="on-policy",
            train={**BASE, "learning_rate": 2e-4, "pref_loss": "orpo"},
        ),
        Lever(
            "simpo",
            "on-policy, SimPO (no reference), lr 2e-4",
            chosen="on-policy",
            train={**BASE, "learning_rate": 2e-4, "pref_loss": "simpo"},
        ),
    )
}
# Every lever's pairs come from the first N SFT questions of one pool: N = the most any chosen lever
# uses (main() sets it; a pool sampled for a smaller N is reused only if its journal allows).
POOL_QUESTIONS = 48


class LeverLayout(RunLayout):
    """A lever's own data/recipes/saves/report, reading its seed's corpus."""

    def __init__(self, root: Path, corpus: Path) -> None:
        super().__init__(root)
        object.__setattr__(self, "_corpus", corpus)

    @property
    def corpus(self) -> Path:
        return self._corpus


def pool_config(cfg: DemoConfig, layout: RunLayout, lever: Lever, output: Path) -> Any:
    """The demo's prefs sampling settings on the pool's questions; pairing options from the lever."""
    from lfkit.data.bird import split_db_root
    from lfkit.pipeline.steps import PREF_TOP_P, prefs_seed
    from lfkit.prefs.rejects import RejectsConfig

    return RejectsConfig(
        sft_data=str(layout.sft_data),
        db_root=str(split_db_root(layout.corpus, "train")),
        output=str(output),
        journal=str(layout.root / "levers" / "pool.candidates.jsonl"),  # one sampling shared by every lever
        num_samples=cfg.num_candidates,
        seed=prefs_seed(cfg.seed),
        temperature=cfg.temperature,
        top_p=PREF_TOP_P,
        max_new_tokens=cfg.max_new_tokens,
        max_samples=POOL_QUESTIONS,
        batch_size=max(1, cfg.batch_size // cfg.num_candidates),
        pairing="hardest",
        max_pairs_per_question=lever.pairs_per_question,
        chosen=lever.chosen,
        reject_kinds=lever.reject_kinds,
        model_info={"model": cfg.model, "adapter": str(layout.adapter("sft"))},
    )


@dataclass
class LeverPairs(StageResult):
    """A lever's pairs, written from the seed's shared candidate pool."""

    pool_labels: dict[str, int]
    pairs: int
    on_policy_chosen: int
    by_reject_kind: dict[str, int]


def lever_pairs(cfg: DemoConfig, layout: RunLayout, lever: Lever, lv: LeverLayout) -> LeverPairs:
    from lfkit.io import read_rows, write_rows
    from lfkit.pipeline.demo import demo_context
    from lfkit.pipeline.engine import make_backend
    from lfkit.pipeline.results import ModelRef
    from lfkit.prefs.rejects import build_rejects
    from lfkit.registry import register_dataset

    run = demo_context(cfg, layout)
    sft = ModelRef(run.preset["model_name_or_path"], (str(layout.adapter("sft")),))
    with make_backend(run.gen, sft) as backend:  # used only for questions the journal lacks
        summary = build_rejects(pool_config(cfg, layout, lever, lv.pref_data), backend, progress=True)
    keep = {str(r.get("question_id", i)) for i, r in enumerate(read_rows(layout.sft_data)[: lever.questions])}
    rows = [r for r in read_rows(lv.pref_data) if str(r["question_id"]) in keep]
    write_rows(lv.pref_data, rows)
    register_dataset(lv.dataset_info, "lever_dpo", lv.pref_data, "preference", force=True)
    kinds: dict[str, int] = {}
    for r in rows:
        kinds[r["reject_kind"]] = kinds.get(r["reject_kind"], 0) + 1
    return LeverPairs(
        pool_labels=dict(summary.labels),
        pairs=len(rows),
        on_policy_chosen=sum(r["chosen_source"] == "on-policy" for r in rows),
        by_reject_kind=kinds,
    )


def run_lever(seed: int, root: Path, lever: Lever) -> dict[str, Any]:
    from dataclasses import replace

    from lfkit.pipeline.demo import demo_context
    from lfkit.pipeline.results import EvalResult, ModelRef, TrainResult
    from lfkit.pipeline.steps import stage_eval, stage_train

    cfg = seed_config(seed, root)
    layout = RunLayout(cfg.out)
    if not (layout.stages / "eval_sft.json").exists():
        raise SystemExit(f"seed {seed}: no SFT yet; run `python benchmarks/dpo_levers.py sft --seeds {seed}` first")
    lv = LeverLayout(layout.root / "levers" / lever.name, layout.corpus)
    lv.root.mkdir(parents=True, exist_ok=True)
    check_settings(lv, {"lever": lever.__dict__ | {"reject_kinds": list(lever.reject_kinds)}, "seed": seed})
    runner = StageRunner(lv)
    title = f"seed {seed} {lever.name}"
    pairs = runner.run("prefs", f"{title}: pairs", lambda: lever_pairs(cfg, layout, lever, lv), LeverPairs)
    if pairs.pairs == 0:
        return {"lever": lever.name, "seed": seed, "pairs": 0}
    run = replace(demo_context(cfg, layout), layout=lv)  # the lever's own files, the seed's corpus
    sft = ModelRef(run.preset["model_name_or_path"], (str(layout.adapter("sft").resolve()),))
    train = {"num_train_epochs": 1.0, **lever.train}
    dpo = runner.run(
        "dpo",
        f"{title}: DPO",
        lambda: stage_train(
            run,
            "dpo",
            "lever_dpo",
            train,
            start=sft,
            output_dir=lv.adapter("dpo"),
            recipe=lv.recipes / "dpo.yaml",
            log=lv.logs / "dpo.log",
            title="DPO",
        ),
        TrainResult,
    )
    model = ModelRef(sft.base, (*sft.adapters, str(lv.adapter("dpo").resolve())))
    ev = runner.run(
        "eval_dpo",
        f"{title}: eval",
        lambda: stage_eval(run, model, lv.predictions("dpo"), f"{title}: dev predictions"),
        EvalResult,
    )
    return {"lever": lever.name, "seed": seed, "pairs": pairs.pairs, "steps": dpo.steps, "ex": ev.ex}


def table(root: Path, seeds: list[int]) -> str:
    """The README table: one row per lever, mean over the seeds that finished it (from the stage files)."""
    sft = {}
    for seed in seeds:
        f = root / f"seed{seed}" / "stages" / "eval_sft.json"
        if f.exists():
            sft[seed] = json.loads(f.read_text())["ex"]
    lines = [
        "| setting | seeds | pairs | steps | SFT EX | DPO EX | delta | per seed (SFT -> DPO) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for lever in LEVERS.values():
        done = []
        for seed in sft:
            d = root / f"seed{seed}" / "levers" / lever.name / "stages"
            if (d / "eval_dpo.json").exists():
                done.append((seed, *(json.loads((d / f"{n}.json").read_text()) for n in ("prefs", "dpo", "eval_dpo"))))
        if not done:
            continue
        mean = lambda xs: statistics.fmean(xs)  # noqa: E731
        s_ex, d_ex = mean([sft[s] for s, *_ in done]), mean([e["ex"] for *_, e in done])
        per = ", ".join(f"{s}: {sft[s]:.1f} -> {e['ex']:.1f}" for s, _, _, e in done)
        lines.append(
            f"| {lever.about} | {len(done)} | {mean([p['pairs'] for _, p, _, _ in done]):.0f} | "
            f"{mean([t['steps'] for _, _, t, _ in done]):.0f} | {s_ex:.1f} | {d_ex:.1f} | {d_ex - s_ex:+.1f} | {per} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=["sft", "run", "table"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--levers", default="", help="comma-separated lever names (default: all)")
    parser.add_argument("--model", default="smollm2-135m", choices=["smollm2-135m", "tiny"])
    args = parser.parse_args()
    global MODEL
    MODEL = args.model
    names = [n for n in args.levers.split(",") if n] or list(LEVERS)
    unknown = [n for n in names if n not in LEVERS]
    if unknown:
        parser.error(f"unknown lever(s) {unknown}; choose from {', '.join(LEVERS)}")
    global POOL_QUESTIONS
    POOL_QUESTIONS = max(LEVERS[n].questions for n in names)
    if args.phase == "sft":
        for seed in args.seeds:
            print(json.dumps({"seed": seed, "sft_ex": run_sft(seed, args.root).ex}))
    elif args.phase == "run":
        for name in names:  # lever-major: every lever gets its seeds before the next one starts
            for seed in args.seeds:
                print(json.dumps(run_lever(seed, args.root, LEVERS[name])), flush=True)
        print(table(args.root, args.seeds))
    else:
        print(table(args.root, args.seeds))


if __name__ == "__main__":
    main()

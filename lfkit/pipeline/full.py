"""`lfkit demo --full`: every post-training loop of lfkit, one after the other, on the demo corpus.

Stages (each a cached stage of the shared :class:`~lfkit.pipeline.stages.StageRunner`, under
``OUT/stages/<name>.json``; re-run to resume, other settings are refused, ``--force`` redoes all):

1. ``corpus``          the demo corpus, its SFT rows and the train question pool
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
with the highest dev EX. A composition of the stage library (``steps``, ``steps_full``) and of the
demo's and iterate's own compositions (:func:`~lfkit.pipeline.demo.run_sft`,
:func:`~lfkit.pipeline.iterate.walk_rounds`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from lfkit.errors import LfkitError
from lfkit.generate.defaults import SAMPLING
from lfkit.pipeline.config import (
    DemoConfig,
    RoundsSettings,
    SamplingSettings,
    from_demo,
    given,
    one_of,
    setting,
    settings_of,
)
from lfkit.pipeline.results import (
    BonSampleResult,
    BonScoreResult,
    BonSelectResult,
    EvalResult,
    GrpoResult,
    ModelRef,
    PrefsResult,
    RmDataResult,
    RmEvalResult,
    TrainResult,
    TreesResult,
)
from lfkit.pipeline.stages import StageRunner, check_settings
from lfkit.pipeline.steps import RunContext

console = Console()


RM_STARTS = ("base", "policy")
# FullConfig's fields that size the demo profile's corpus and SFT: given, they replace the profile's values.
SFT_SETTINGS = ("n_train", "n_sft", "sft_sample", "sft_epochs")


class FullError(LfkitError, RuntimeError):
    """A setting of the full demo is out of range; the message names it."""


@dataclass
class FullConfig(RoundsSettings):
    """``lfkit demo --full``: the DPO rounds' settings plus trees, reward model, best-of-N and GRPO sizes.

    The corpus, SFT and evaluations use the demo profile of ``model`` (with this run's seed, n_dev,
    max_new_tokens and DPO values).
    """

    model: str = setting("smollm2-135m", "Embedded model: smollm2-135m or tiny.")
    out: Path = setting(Path("demo_full_out"), "Output folder.", cli=False)  # noqa: RUF009 -- a Path is immutable
    n_train: int | None = from_demo("n_train", "the demo profile's")
    n_sft: int | None = from_demo("n_sft", "the demo profile's")
    sft_sample: str | None = from_demo("sft_sample", "the demo profile's")
    sft_epochs: float | None = from_demo("sft_epochs", "the demo profile's")
    tree_questions: int = setting(16, "Train questions given a revision tree.")
    tree_depth: int = setting(2, "Deepest revision level.")
    tree_samples: int = setting(2, "Children per expanded node.")
    tree_temperature: float = setting(SAMPLING["tree"].temperature, "Tree sampling temperature.")
    rm_steps: int = setting(20, "Reward-model optimizer steps.")
    rm_lr: float | None = setting(None, "Reward-model learning rate (default: the preset's).")
    rm_start: str = setting(
        "base",
        "What the reward model is trained from: base (the bare model) or policy (the best policy's adapters "
        "merged into the base: it has learnt the schema prompts and the SQL the candidates are written in).",
        choices=RM_STARTS,
    )
    rm_pairs_per_question: int | None = setting(
        None,
        "Reward-model pairs per round question, re-paired from the round's labelled samples (nothing is sampled "
        "again), so the RM can take more pairs than DPO; default: the round's DPO pairs.",
    )
    rm_test_questions: int = setting(16, "Dev questions giving held-out RM pairs.")
    rm_test_candidates: int = setting(2, "Samples per held-out question.")
    bon_n: int = setting(4, "Best-of-N: candidates per dev question.")
    bon_questions: int = setting(32, "Best-of-N: the first N dev questions.")
    bon_temperature: float = setting(SAMPLING["candidates"].temperature, "Best-of-N and held-out sampling temperature.")
    grpo_steps: int = setting(10, "GRPO optimizer steps (2 prompts x 4 completions); 0 skips GRPO.", minimum=0)
    grpo_lr: float | None = setting(None, "GRPO learning rate (default: the preset's).")

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.model not in FULL_PROFILES:
            raise FullError(f"unknown demo model {self.model!r}; choose one of: {', '.join(FULL_PROFILES)}")
        self.check_rounds(FullError)
        if self.sft_settings():
            _ = self.demo  # the profile refuses a bad SFT setting (n_sft above n_train): at construction
        self.check_unseen(lambda: self.demo, FullError)
        one_of(self, "rm_start", RM_STARTS, FullError)
        own = [f for f in fields(self) if f.name not in {g.name for g in fields(RoundsSettings)}]
        for f in own:
            value, least = getattr(self, f.name), f.metadata["minimum"]
            if isinstance(value, int) and not isinstance(value, bool) and value < least:
                raise FullError(f"{f.name} must be >= {least}, got {value}")

    @property
    def demo(self) -> DemoConfig:
        """The demo profile the corpus, SFT and evaluations use (``lfkit demo``'s, same sizes)."""
        demo = self.demo_profile(self.model, self.out)
        assert demo is not None  # every FULL_PROFILES model has a demo profile
        sft = self.sft_settings()
        return replace(demo, **sft) if sft else demo

    def sft_settings(self) -> dict[str, Any]:
        """The corpus and SFT settings (:data:`SFT_SETTINGS`) this run gives the demo profile (None: the profile's)."""
        return given({k: getattr(self, k) for k in SFT_SETTINGS})

    def settle_backend(self) -> None:
        """``auto`` -> the demo profile's engine on this machine, kept here (``demo`` is a new profile per access)."""
        demo = self.demo
        demo.settle_backend()
        self.backend = demo.backend

    def settings(self) -> dict[str, Any]:
        """What decides the results: every field but out/force, and the demo profile's other values (``demo.*``;
        the SFT's size always, as the profile's default may change)."""
        mine = settings_of(self)
        demo = {f"demo.{k}": v for k, v in settings_of(self.demo).items() if k not in mine or k in SFT_SETTINGS}
        return {**mine, **demo}


# Overrides of FullConfig's defaults per model. smollm2-135m (its SFT on all 400 train rows and DPO at lr 5e-5 are
# the demo profile's, what `make quality` showed better): the reward model trained from the best policy (held-out
# accuracy 63.9% against 53.7% from the bare base, same pairs, lr and steps; RM top-1 of 9 50.0 against the seed's
# 38.3) on up to 4 pairs per round question at lr 1e-3 (68.5% / 78.2% of 108 / 119 held-out pairs on both seeds;
# lr 1e-4 hardly moved its loss); measured end to end with the vLLM engine on 2 quiet CPU cores: README "make
# demo-full". tiny: a few minutes.
FULL_PROFILES: dict[str, dict[str, Any]] = {
    "smollm2-135m": dict(rounds=2, rm_start="policy", rm_pairs_per_question=4, rm_lr=1e-3),
    "tiny": dict(
        n_dev=16, rounds=2, questions_per_round=4, num_candidates=2, tree_questions=4, rm_steps=2,
        rm_test_questions=4, bon_n=2, bon_questions=6, grpo_steps=2,
    ),
}  # fmt: skip


def full_config(model: str = "smollm2-135m", **overrides: Any) -> FullConfig:
    """The full profile for ``model`` with ``overrides`` (``None`` values are ignored); an unknown
    model is refused by :class:`FullConfig` itself."""
    values = {**FULL_PROFILES.get(model, {}), **{k: v for k, v in overrides.items() if v is not None}}
    return FullConfig(model=model, **values)


# The full demo's stages in the order they run: the SFT's, each DPO round's (``round<k>/<step>``, k = 1, 2, ...),
# then those from the best policy. Stages of one run always finish in this order, so a copy of a finished run
# (a quality lever) knows which stages follow a given one without trusting file times.
SFT_STAGES = ("corpus", "eval_base", "sft", "eval_sft")
ROUND_STAGES = ("merge", "sample", "dpo", "eval")
AFTER_ROUNDS_STAGES = ("trees", "rm_data", "rm", "rm_test", "rm_eval", "bon/sample", "bon/score", "bon/select")
AFTER_ROUNDS_STAGES += ("grpo", "eval_grpo")


def stage_rank(name: str) -> tuple[int, int, int]:
    """Sort key of stage ``name`` in the full demo's run order (:data:`SFT_STAGES`, rounds, then
    :data:`AFTER_ROUNDS_STAGES`); an unknown name is a :class:`FullError`.

    >>> sorted(["rm", "round2/merge", "round1/eval", "eval_base", "trees", "corpus"], key=stage_rank)
    ['corpus', 'eval_base', 'round1/eval', 'round2/merge', 'trees', 'rm']
    """
    if name in SFT_STAGES:
        return (0, 0, SFT_STAGES.index(name))
    head, _, step = name.partition("/")
    if head.startswith("round") and head[5:].isdigit() and step in ROUND_STAGES:
        return (1, int(head[5:]), ROUND_STAGES.index(step))
    if name in AFTER_ROUNDS_STAGES:
        return (2, 0, AFTER_ROUNDS_STAGES.index(name))
    raise FullError(f"not a stage of lfkit demo --full: {name!r}")


# Where run_full may stop early (a lever measured on a copy of a finished run needs only its own stages):
# after the DPO rounds, or after the reward model's held-out evaluation (before best-of-N).
FULL_STOPS = ("rounds", "rm")


def run_full(cfg: FullConfig, stop_after: str | None = None) -> dict[str, Any]:
    """Run (or resume) every stage, or those up to ``stop_after`` (one of :data:`FULL_STOPS`), and write the
    report; returns report.json's content."""
    from lfkit.pipeline.demo import demo_context, run_sft
    from lfkit.pipeline.engine import pipeline_engine
    from lfkit.pipeline.iterate import runner_do, walk_rounds
    from lfkit.pipeline.layout import RunLayout
    from lfkit.pipeline.report import write_full_report

    if stop_after not in (None, *FULL_STOPS):
        raise FullError(f"stop_after must be one of {', '.join(FULL_STOPS)}, got {stop_after!r}")
    layout = RunLayout(cfg.out)
    layout.root.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]lfkit demo --full[/bold]: model {cfg.model}, output {layout.root}")
    cfg.settle_backend()
    check_settings(layout, cfg.settings(), force=cfg.force)
    run = demo_context(cfg.demo, layout)
    runner = StageRunner(layout, cfg.force, console)
    with pipeline_engine(run.gen) as gen:
        run.gen = gen
        sft = run_sft(run, runner, cfg.demo, pool=True)
        sft_eval = runner.get("eval_sft", EvalResult)
        assert sft_eval is not None
        done = walk_rounds(cfg, run, sft, sft_eval.ex, runner_do(runner), title="4. ")
        console.print(f"best policy: round {done.best_round} (dev EX {done.best_ex:.1f})")
        if stop_after != "rounds":
            after_rounds(cfg, run, runner, done.best_model, done.last_round, stop_after=stop_after)
    report = write_full_report(
        layout,
        runner,
        model=cfg.model,
        settings=cfg.settings(),
        rounds=cfg.rounds,
        best_round=done.best_round,
        stopped=done.stopped,
    )
    console.print(f"\n[bold]{report['verdict']}[/bold]\nreport: {layout.root / 'report.md'}")
    return report


def after_rounds(
    cfg: FullConfig,
    run: RunContext,
    runner: StageRunner,
    best: ModelRef,
    last_round: int,
    stop_after: str | None = None,
) -> None:
    """Stages 5-11 from the best policy: trees, reward model (data, training, held-out eval), best-of-N, GRPO
    (``stop_after="rm"``: up to the reward model's held-out evaluation)."""
    from lfkit.data.sft import SFTOptions, build_sft
    from lfkit.pipeline.steps import SEED_OFFSETS, StageFailed, rejects_config, stage_eval, stage_sample, stage_train
    from lfkit.pipeline.steps_full import (
        RM_DATASET,
        stage_bon_sample,
        stage_bon_score,
        stage_bon_select,
        stage_grpo,
        stage_rm_data,
        stage_rm_eval,
        stage_trees,
    )
    from lfkit.recipes.grpo import merged_path

    layout = run.layout
    rm_adapter = layout.adapter("rm")

    def rm_base() -> str:  # asked by each stage, not once: the merged-model cache may evict it in between
        return rm_start_model(cfg, run, best)

    trees = dict(questions=cfg.tree_questions, depth=cfg.tree_depth, samples=cfg.tree_samples)
    runner.run(
        "trees",
        "5. revision trees of the best policy, verified",
        lambda: stage_trees(run, best, **trees, temperature=cfg.tree_temperature),
        TreesResult,
    )
    round_pairs = [layout.round_dir(k) / "pairs.jsonl" for k in range(1, last_round + 1)]
    runner.run(
        "rm_data",
        "6. reward-model pairs: trees + rounds' rejects",
        lambda: stage_rm_data(run, round_pairs, cfg, cfg.rm_pairs_per_question),
        RmDataResult,
    )
    runner.run(
        "rm",
        "7. reward model (llamafactory-cli)",
        lambda: stage_train(
            run,
            "rm",
            RM_DATASET,
            {"max_steps": cfg.rm_steps, "learning_rate": cfg.rm_lr},
            start=ModelRef(rm_base()),
            output_dir=rm_adapter,
            recipe=layout.recipes / "rm.yaml",
            log=layout.logs / "rm.log",
            title="RM",
        ),
        TrainResult,
    )

    def rm_test() -> PrefsResult:
        """Held-out pairs as ``make rm`` makes them: the policy's verified rejects on dev questions, gold chosen."""
        build_sft(run.corpus, "dev", layout.dev_sft, builder=run.builder(), options=SFTOptions())
        every_pair = SamplingSettings(
            num_candidates=cfg.rm_test_candidates, temperature=cfg.bon_temperature, chosen="gold", pairs_per_question=0
        )
        job = rejects_config(
            run, every_pair, questions=layout.dev_sft, db_split="dev", output=layout.rm_test, pairing="all",
            seed=cfg.seed + SEED_OFFSETS["rm_test"], max_questions=cfg.rm_test_questions,
            model_info={"model": best.base, "adapters": list(best.adapters)},
        )  # fmt: skip
        result = stage_sample(run, job, best, register_as=None)
        if result.pairs == 0:
            raise StageFailed(
                f"no held-out pair on {cfg.rm_test_questions} dev questions x {cfg.rm_test_candidates} samples: "
                "every sample was correct; raise rm_test_questions"
            )
        return result

    runner.run("rm_test", "8. held-out pairs on dev questions", rm_test, PrefsResult)
    runner.run(
        "rm_eval", "9. rm eval on the held-out pairs", lambda: stage_rm_eval(run, rm_base(), rm_adapter), RmEvalResult
    )
    if stop_after == "rm":
        return
    bon = dict(n=cfg.bon_n, questions=cfg.bon_questions, temperature=cfg.bon_temperature)
    runner.run(
        "bon/sample",
        f"10. best-of-{cfg.bon_n} on dev: sample",
        lambda: stage_bon_sample(run, best, **bon),
        BonSampleResult,
    )
    runner.run(
        "bon/score", "    best-of-N: RM scores", lambda: stage_bon_score(run, rm_base(), rm_adapter), BonScoreResult
    )
    runner.run("bon/select", "    best-of-N: select", lambda: stage_bon_select(run), BonSelectResult)
    if cfg.grpo_steps == 0:
        return
    runner.run(
        "grpo",
        "11. GRPO from the best policy",
        lambda: stage_grpo(run, best, steps=cfg.grpo_steps, lr=cfg.grpo_lr),
        GrpoResult,
    )
    grpo = ModelRef(str(merged_path(best.adapters[0])), (str(layout.adapter("grpo").resolve()),))
    runner.run(
        "eval_grpo",
        "    evaluate GRPO",
        lambda: stage_eval(run, grpo, layout.predictions("grpo"), "eval_grpo: dev predictions"),
        EvalResult,
    )


def rm_start_model(cfg: FullConfig, run: RunContext, best: ModelRef) -> str:
    """The model the reward model trains on and scores with: the bare base, or ``best`` merged into it
    (:func:`lfkit.pipeline.merged.merged_model`: cached by the adapters' weights, so a resumed run finds it)."""
    if cfg.rm_start == "base" or not best.adapters:
        return run.preset["model_name_or_path"]
    from lfkit.pipeline.merged import merged_model

    return str(merged_model(best.base, list(best.adapters)))


__all__ = [
    "AFTER_ROUNDS_STAGES",
    "FULL_PROFILES",
    "FULL_STOPS",
    "RM_STARTS",
    "ROUND_STAGES",
    "SFT_STAGES",
    "FullConfig",
    "FullError",
    "after_rounds",
    "full_config",
    "rm_start_model",
    "run_full",
    "stage_rank",
]

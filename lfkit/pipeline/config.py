"""Every pipeline setting, declared once: a dataclass field with its one default and its help text.

Groups (each a dataclass; a command's config is made of groups):

- :class:`RunSettings`       seed and ``force`` (every pipeline command);
- :class:`SamplingSettings`  preference sampling and pairing (the demo's ``prefs`` stage, every DPO round);
- :class:`DemoConfig`        ``lfkit demo``: corpus sizes, SFT, DPO, LoRA layout, generation cap;
- :class:`RoundsSettings`    DPO rounds (``lfkit iterate`` and ``lfkit demo --full``); the DPO values and
                             sizes it leaves ``None`` come from the demo profile (embedded presets) or the
                             preset (others), with :class:`DemoConfig`'s help text (:func:`from_demo`).

A profile (:data:`PROFILES`) is a small dict of overrides of :class:`DemoConfig`'s defaults, which are
what ``lfkit demo`` runs on its default model. The CLI options of ``lfkit demo`` / ``lfkit iterate`` are
generated from these fields (``lfkit.pipeline.commands``); their help comes from ``metadata["help"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lfkit.errors import LfkitError
from lfkit.generate.defaults import SAMPLING
from lfkit.prefs.pairing import PAIRINGS
from lfkit.prefs.rejects import CHOSEN_SOURCES, REJECT_KINDS, parse_reject_kinds


class ConfigError(LfkitError, ValueError):
    """A pipeline setting is out of range or unknown; the message names it."""


PREF_LOSSES = ("sigmoid", "ipo", "hinge", "orpo", "simpo")
ROUND_QUESTIONS = ("all", "unseen")
SFT_SAMPLES = ("random", "template")


def setting(
    default: Any, help: str, *, choices: tuple[str, ...] | None = None, cli: bool = True, minimum: int = 1
) -> Any:
    """A dataclass field with its help text (and, for a closed set, its choices); ``cli=False``: no option;
    ``minimum``: the least value a count may take where the config checks its counts (1 unless 0 means "off")."""
    return field(default=default, metadata={"help": help, "choices": choices, "cli": cli, "minimum": minimum})


def positive(obj: Any, names: tuple[str, ...], error: type[LfkitError] = ConfigError) -> None:
    """Refuse any of ``names`` below 1, naming it as its CLI option."""
    for name in names:
        value = getattr(obj, name)
        if value is not None and value < 1:
            raise error(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def one_of(obj: Any, name: str, choices: tuple[str, ...], error: type[LfkitError] = ConfigError) -> None:
    """Refuse ``obj.name`` outside ``choices`` (None passes: a value taken from elsewhere), naming its CLI option."""
    value = getattr(obj, name)
    if value is not None and value not in choices:
        raise error(f"--{name.replace('_', '-')} must be one of {', '.join(choices)}, got {value!r}")


@dataclass
class RunSettings:
    """Settings of every pipeline run."""

    seed: int = setting(0, "Seed for the corpus, question slices, sampling and training.")
    force: bool = setting(False, "Re-run every stage, ignoring cached results (other settings are then accepted).")
    backend: str = setting(
        "auto",
        "Generation engine of every evaluation and sampling stage: auto = vllm when the vLLM engine is installed "
        "(make install-vllm), else hf; vllm (one engine for the whole run); hf (transformers).",
        choices=("auto", "vllm", "hf"),
    )

    def settle_backend(self) -> None:
        """``auto`` -> the engine this machine has, before the run's settings are fingerprinted."""
        from lfkit.generate.options import choose_backend

        self.backend = choose_backend(self.backend)


ROUND_PAIRING = "hardest"  # unless --pairing says otherwise, a round keeps the rejects closest to the chosen answer


@dataclass
class SamplingSettings:
    """How preference candidates are sampled and paired (one rule for the demo and every DPO round)."""

    num_candidates: int = setting(4, "Candidates sampled per question.")
    temperature: float = setting(SAMPLING["prefs"].temperature, "Sampling temperature of the preference candidates.")
    chosen: str = setting(
        "on-policy",
        "DPO chosen side: on-policy (the model's own execution-correct samples, gold as fallback) or gold.",
        choices=CHOSEN_SOURCES,
    )
    reject_kinds: str = setting(
        ",".join(REJECT_KINDS), "Sample labels that may be rejected, comma-separated, of " + ", ".join(REJECT_KINDS)
    )
    pairs_per_question: int = setting(1, "DPO pairs kept per question, in --pairing's order.")
    pairing: str | None = setting(
        None,
        "Which of a question's pairs are kept first (lfkit.prefs.pairing): hardest = the rejects closest to the "
        "chosen answer (the default); hardest_same_where = those with as many WHERE conditions as the chosen first.",
        choices=tuple(PAIRINGS),
    )

    @property
    def round_pairing(self) -> str:
        """The pairing the rounds use: ``--pairing``, else :data:`ROUND_PAIRING` (None keeps old runs resumable)."""
        return self.pairing or ROUND_PAIRING

    def check_sampling(self) -> None:
        positive(self, ("num_candidates", "pairs_per_question"))
        one_of(self, "chosen", CHOSEN_SOURCES)
        one_of(self, "pairing", tuple(PAIRINGS))
        try:
            kinds = parse_reject_kinds(self.reject_kinds)
        except ValueError as exc:
            raise ConfigError(f"--reject-kinds: {exc}") from exc
        if not kinds:
            raise ConfigError(f"--reject-kinds is empty: name at least one of {', '.join(REJECT_KINDS)}")
        self.reject_kinds = ",".join(kinds)


@dataclass
class DemoConfig(SamplingSettings, RunSettings):
    """``lfkit demo``: the defaults are what the demo runs on smollm2-135m; ``PROFILES`` overrides per model."""

    model: str = setting("smollm2-135m", "Embedded model: smollm2-135m (the real demo) or tiny (a smoke run).")
    out: Path = setting(Path("demo_out"), "Output folder.", cli=False)  # noqa: RUF009 -- a Path is immutable
    n_train: int = setting(400, "Train questions in the corpus.")
    n_dev: int = setting(64, "Dev questions in the corpus (all are evaluated).")
    # every train row: on make quality's seeds 100 steps took dev EX from 17.2 (160 rows, 40 steps) to ~60, for
    # ~7 more minutes of SFT on 2 CPU cores (README "make quality")
    n_sft: int = setting(400, "SFT rows used for training (a seeded sample of train).")
    sft_sample: str | None = setting(
        None,
        "How the SFT's rows are drawn from train: random (a seeded sample; unset means random) or template (a "
        "seeded sample of each gold-SQL template in proportion, so the questions left out for --round-questions "
        "unseen cover every template too).",
        choices=SFT_SAMPLES,
    )
    sft_epochs: float = setting(1.0, "SFT epochs.")
    # a LoRA on few layers needs a high lr to learn the schema in 40 steps
    sft_lr: float = setting(2e-3, "SFT learning rate.")
    n_prefs: int = setting(24, "Train questions sampled for preference pairs.")
    dpo_epochs: float = setting(1.0, "DPO epochs.")
    # after the 400-row SFT (questions the policy trained on): lr 2e-4 lost 2-6 points on make quality's two seeds,
    # 5e-5 gained 1-2 (after the 160-row SFT, README's lever table: on-policy chosen + an SFT term on chosen at 2e-4
    # gained 1.6; gold chosen at 1e-3 lost 5.5)
    dpo_lr: float = setting(5e-5, "DPO learning rate.")
    pref_beta: float = setting(0.1, "DPO beta.")
    pref_loss: str = setting("sigmoid", "Preference loss (sigmoid = DPO).", choices=PREF_LOSSES)
    pref_ftx: float = setting(1.0, "Weight of the SFT loss on chosen mixed into DPO.")
    max_new_tokens: int = setting(128, "Generation cap for evaluation and sampling (longest gold: 114 tokens).")
    batch_size: int = setting(32, "Prompts per generate call (larger batches decode faster on CPU).")
    cutoff_len: int = setting(640, "LLaMA-Factory cutoff_len (demo prompts fit in it).")
    # backward stops at layer 22 of 30: ~2.5x cheaper per step than all layers
    lora_last_layers: int = setting(8, "LoRA on the last N decoder layers only (0 = every layer, the preset's).")
    lora_rank: int = setting(16, "LoRA rank, alpha = 2 x rank (0 = the preset's).")

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.model not in PROFILES:
            raise ConfigError(f"unknown demo model {self.model!r}; choose one of: {', '.join(PROFILES)}")
        if self.lora_rank < 0 or self.lora_last_layers < 0:
            raise ConfigError("lora_rank and lora_last_layers must be >= 0 (0 = the preset's)")
        positive(self, ("n_train", "n_dev", "n_sft", "n_prefs", "batch_size"))
        if self.sft_lr <= 0 or self.dpo_lr <= 0:
            raise ConfigError(f"learning rates must be > 0, got sft_lr={self.sft_lr}, dpo_lr={self.dpo_lr}")
        one_of(self, "pref_loss", PREF_LOSSES)
        one_of(self, "sft_sample", SFT_SAMPLES)
        self.check_sampling()
        if self.n_sft > self.n_train or self.n_prefs > self.n_train:
            raise ConfigError(
                f"n_sft ({self.n_sft}) and n_prefs ({self.n_prefs}) cannot exceed n_train ({self.n_train})"
            )


# Overrides of DemoConfig's defaults per embedded model. smollm2-135m runs the defaults (sized to fit
# about 20 minutes on 2 CPU cores; the measurements are in README.md, "Profile choices"); tiny is a
# smoke test of a few minutes on a random model, with the values its recorded runs used.
PROFILES: dict[str, dict[str, Any]] = {
    "smollm2-135m": {},
    "tiny": dict(
        n_dev=120, n_sft=32, sft_lr=1e-3, n_prefs=8, num_candidates=2, pairs_per_question=2, chosen="gold",
        dpo_lr=5e-5, pref_ftx=0.0, max_new_tokens=16, batch_size=16, lora_last_layers=0, lora_rank=0,
        backend="hf",  # vLLM's CPU attention needs a head size >= 32; tiny's is 16
    ),
}  # fmt: skip


def given(overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides actually given (a CLI option left out is ``None``)."""
    return {k: v for k, v in overrides.items() if v is not None}


def demo_config(model: str = "smollm2-135m", **overrides: Any) -> DemoConfig:
    """The profile for ``model`` with ``overrides`` (``None`` values are ignored)."""
    if model not in PROFILES:
        raise ConfigError(f"unknown demo model {model!r}; choose one of: {', '.join(PROFILES)}")
    return DemoConfig(model=model, **{**PROFILES[model], **given(overrides)})


def from_demo(name: str, fallback: str = "the demo profile's, else the preset's") -> Any:
    """A ``None``-default field that takes :class:`DemoConfig`'s ``name`` unless given (its help, once)."""
    source = next(f for f in fields(DemoConfig) if f.name == name)
    help_text = f"{source.metadata['help']} Default: {fallback}."
    return field(default=None, metadata={**source.metadata, "help": help_text})


# The DemoConfig values a DPO round takes from the demo profile when not given.
DEMO_VALUES = ("n_dev", "max_new_tokens", "dpo_lr", "dpo_epochs", "pref_beta", "pref_loss", "pref_ftx")


@dataclass
class RoundsSettings(SamplingSettings, RunSettings):
    """DPO rounds: round k samples fresh train questions with round k-1 and trains DPO from it."""

    rounds: int = setting(3, "DPO rounds after round 0 (the start model).")
    questions_per_round: int = setting(24, "Fresh train questions sampled per round.")
    round_questions: str | None = setting(
        None,
        "Where the rounds' fresh questions come from: all (every train question; the default) or unseen (only "
        "those the run's own SFT did not train on, whose gold SQL the policy has not memorised).",
        choices=ROUND_QUESTIONS,
    )
    stop_when_worse: bool = setting(False, "Stop after a round whose dev EX falls; the best round is kept.")
    n_dev: int | None = from_demo("n_dev", "the demo's (demo corpus only)")
    max_new_tokens: int | None = from_demo("max_new_tokens", "the demo profile's, else 512")
    dpo_lr: float | None = from_demo("dpo_lr")
    dpo_epochs: float | None = from_demo("dpo_epochs")
    pref_beta: float | None = from_demo("pref_beta")
    pref_loss: str | None = from_demo("pref_loss")
    pref_ftx: float | None = from_demo("pref_ftx")

    def check_rounds(self, error: type[LfkitError]) -> None:
        if self.rounds < 1:
            raise error(f"--rounds must be >= 1, got {self.rounds}: round 0 is the start model, 1.. are DPO")
        positive(self, ("questions_per_round", "n_dev", "max_new_tokens"), error)
        try:
            self.check_sampling()
        except ConfigError as exc:
            raise error(str(exc)) from exc
        one_of(self, "pref_loss", PREF_LOSSES, error)
        one_of(self, "round_questions", ROUND_QUESTIONS, error)

    def check_unseen(self, sft_profile: Callable[[], DemoConfig | None], error: type[LfkitError]) -> None:
        """``--round-questions unseen`` needs the run's own SFT (``sft_profile()``: its profile, built only for
        unseen; None: a given start model) and enough train questions left out of it for every round."""
        if self.round_questions != "unseen":
            return
        sft = sft_profile()
        if sft is None:
            raise error("--round-questions unseen leaves out the run's demo SFT rows: an embedded model, no --from")
        left, need = sft.n_train - sft.n_sft, self.rounds * self.questions_per_round
        if left < need:
            raise error(
                f"--round-questions unseen: the SFT trains on {sft.n_sft} of {sft.n_train} train questions, leaving "
                f"{left}; {self.rounds} round(s) x {self.questions_per_round} questions need {need}: lower --rounds "
                "or --questions-per-round (lfkit demo --full: or lower --n-sft, or raise --n-train)"
            )

    def demo_profile(self, model: str, out: Path) -> DemoConfig | None:
        """The demo profile of an embedded ``model`` with this run's values; None for other presets."""
        if model not in PROFILES:
            return None
        backend = {} if self.backend == "auto" else {"backend": self.backend}  # auto: the profile's
        return demo_config(
            model, out=out, seed=self.seed, force=self.force, **backend, **{k: getattr(self, k) for k in DEMO_VALUES}
        )


def cli_fields(cls: type) -> list[Any]:
    """The fields of ``cls`` that are CLI options, in declaration order."""
    return [f for f in fields(cls) if f.metadata.get("cli", True) and f.name != "out"]


def field_default(cls: type, name: str) -> Any:
    f = next(f for f in fields(cls) if f.name == name)
    return None if f.default is MISSING else f.default


def settings_of(cfg: Any, skip: tuple[str, ...] = ("out", "force", "dry_run")) -> dict[str, Any]:
    """The JSON-able values that decide a run's results: every field but the output folder and switches."""
    import json

    return json.loads(json.dumps({k: v for k, v in asdict(cfg).items() if k not in skip}, default=str))


def config_dict(cfg: DemoConfig) -> dict[str, Any]:
    """Every field of ``cfg`` as JSON-able values (the report's ``config``)."""
    out = asdict(cfg)
    out["out"] = str(cfg.out)
    return out


def demo_settings(cfg: DemoConfig) -> dict[str, Any]:
    """The settings that decide a demo's results: every field but the output folder and ``force``."""
    return settings_of(cfg)


__all__ = [
    "DEMO_VALUES",
    "PREF_LOSSES",
    "PROFILES",
    "ROUND_QUESTIONS",
    "ConfigError",
    "DemoConfig",
    "RoundsSettings",
    "RunSettings",
    "SamplingSettings",
    "cli_fields",
    "config_dict",
    "demo_config",
    "demo_settings",
    "from_demo",
    "given",
    "setting",
    "settings_of",
]

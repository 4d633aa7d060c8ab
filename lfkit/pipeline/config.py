"""The demo's settings: :class:`DemoConfig`, the per-model ``PROFILES`` and where a run's files live.

``lfkit.pipeline.demo`` runs the stages, ``lfkit.pipeline.report`` writes the report; both read
the configuration and the layout from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lfkit.errors import LfkitError
from lfkit.pipeline.stages import Layout


class ConfigError(LfkitError, ValueError):
    """A demo setting is out of range or unknown; the message names it."""


PREF_LOSSES = ("sigmoid", "ipo", "hinge", "orpo", "simpo")


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
    pref_loss: str = field(default="sigmoid", metadata={"help": "Preference loss: sigmoid (DPO), ipo, orpo, simpo."})
    pref_ftx: float = field(default=0.0, metadata={"help": "Weight of the SFT loss on chosen mixed into DPO."})
    chosen: str = field(
        default="gold", metadata={"help": "DPO chosen side: gold, or on-policy (the SFT model's own correct samples)."}
    )
    reject_kinds: str = field(
        default="wrong,error,timeout,no_sql", metadata={"help": "Sample labels that may be rejected."}
    )
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
            raise ConfigError(f"unknown demo model {self.model!r}; choose one of: {', '.join(PROFILES)}")
        if self.lora_rank < 0 or self.lora_last_layers < 0:
            raise ConfigError("lora_rank and lora_last_layers must be >= 0 (0 = the preset's)")
        for name in ("n_train", "n_dev", "n_sft", "n_prefs", "num_candidates", "pairs_per_question", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.sft_lr <= 0 or self.dpo_lr <= 0:
            raise ConfigError(f"learning rates must be > 0, got sft_lr={self.sft_lr}, dpo_lr={self.dpo_lr}")
        if self.pref_loss not in PREF_LOSSES:
            raise ConfigError(f"pref_loss must be one of {', '.join(PREF_LOSSES)}, got {self.pref_loss!r}")
        if self.chosen not in ("gold", "on-policy"):
            raise ConfigError(f"chosen must be gold or on-policy, got {self.chosen!r}")
        kinds = [k.strip() for k in self.reject_kinds.split(",") if k.strip()]
        bad = [k for k in kinds if k not in ("wrong", "error", "timeout", "no_sql")]
        if bad or not kinds:
            raise ConfigError(
                f"reject_kinds must name some of wrong, error, timeout, no_sql; got {self.reject_kinds!r}"
            )
        self.reject_kinds = ",".join(kinds)
        if self.n_sft > self.n_train or self.n_prefs > self.n_train:
            raise ConfigError(
                f"n_sft ({self.n_sft}) and n_prefs ({self.n_prefs}) cannot exceed n_train ({self.n_train})"
            )


# Sizes chosen so that the default (smollm2-135m) run fits in about 20 minutes on 2 CPU
# cores and the tiny run is a smoke test of a few minutes. The measurements behind each
# value are in README.md, "Profile choices".
PROFILES: dict[str, dict[str, Any]] = {
    "smollm2-135m": dict(
        n_sft=160,
        sft_lr=2e-3,  # a LoRA on few layers needs a high lr to learn the schema in 40 steps
        lora_last_layers=8,  # backward stops at layer 22 of 30: ~2.5x cheaper per step than all layers
        lora_rank=16,
        n_dev=64,  # dev evaluations and sampling are two thirds of the time
        n_prefs=24,
        num_candidates=4,
        pairs_per_question=1,  # a DPO step costs ~3.5 SFT steps on CPU
        # DPO: the best row of README's lever table (2 seeds): on-policy chosen + an SFT term on
        # chosen at lr 2e-4 gained 1.6 EX over SFT; gold chosen at lr 1e-3 lost 5.5.
        dpo_lr=2e-4,
        pref_ftx=1.0,
        chosen="on-policy",
        max_new_tokens=128,  # the longest gold answer is 114 SmolLM2 tokens
        batch_size=32,  # larger batches decode faster on CPU; 32 fills every batch here
    ),
    "tiny": dict(n_sft=32, n_prefs=8, num_candidates=2, max_new_tokens=16, sft_lr=1e-3),
}


def demo_config(model: str = "smollm2-135m", **overrides: Any) -> DemoConfig:
    """The profile for ``model`` with ``overrides`` (``None`` values are ignored)."""
    if model not in PROFILES:
        raise ConfigError(f"unknown demo model {model!r}; choose one of: {', '.join(PROFILES)}")
    values = {**PROFILES[model], **{k: v for k, v in overrides.items() if v is not None}}
    return DemoConfig(model=model, **values)


class DemoLayout(Layout):
    """Where each artefact of a demo run lives (``stages/`` and ``settings.json`` come from :class:`Layout`)."""

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
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def report(self) -> Path:
        return self.root / "report"

    def adapter(self, stage: str) -> Path:
        return self.saves / stage

    def predictions(self, stage: str) -> Path:
        return self.report / f"predict_dev_{stage}.json"


def config_dict(cfg: DemoConfig) -> dict[str, Any]:
    """Every field of ``cfg`` as JSON-able values (the report's ``config``)."""
    out = asdict(cfg)
    out["out"] = str(cfg.out)
    return out


def demo_settings(cfg: DemoConfig) -> dict[str, Any]:
    """The settings that decide a run's results: every field but the output folder and ``force``."""
    return {k: v for k, v in config_dict(cfg).items() if k not in ("out", "force")}


__all__ = ["PROFILES", "ConfigError", "DemoConfig", "DemoLayout", "config_dict", "demo_config", "demo_settings"]

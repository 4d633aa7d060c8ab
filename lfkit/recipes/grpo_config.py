"""A GRPO config file: TRL's own arguments plus an ``lfkit:`` section, checked before anything runs.

The file (``lfkit render grpo`` writes it) is what ``trl grpo --config FILE`` reads: every
top-level key is an argument of TRL's GRPO script (``GRPOScriptArguments``), of
``GRPOConfig``, of ``ModelConfig`` or of ``DatasetMixtureConfig``, parsed here by TRL's own
``TrlParser`` with the same dataclasses. TRL's CLI ignores keys it does not know; lfkit
does not: :func:`parse_grpo_config` refuses any key outside those dataclasses and the
``lfkit:`` section, naming it (with the closest valid keys).

The ``lfkit:`` section (:class:`LfkitSettings`) holds what ``lfkit grpo train`` adds to
TRL: the SFT adapter to start from, the LLaMA-Factory chat template the prompts are
rendered with, dev-EX evaluation, reward timeouts and loggers. ``trl grpo`` ignores it.

Reward functions are named by import path in ``reward_funcs`` (as ``trl grpo`` loads them:
``module.attribute``, or one of TRL's own registry names) with ``reward_weights`` aligned;
:func:`resolve_rewards` imports each and refuses a name that does not resolve.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lfkit.errors import LfkitError

LFKIT_SECTION = "lfkit"
HARDWARE_KEYS = ("bf16", "fp16", "tf32")
"""Keys whose check needs the training machine (a GPU for bf16): type-checked, then left out of
the parse when validating on another machine (``hardware=False``)."""

TRL_REWARD_NAMES = ("accuracy_reward", "think_format_reward", "get_soft_overlong_punishment")
"""Reward names ``trl grpo`` resolves from its own registry (trl/scripts/grpo.py)."""


class GRPOConfigError(LfkitError, ValueError):
    """A GRPO config that cannot be used: unknown key, bad value, unknown reward; names the file and key."""


@dataclass
class LfkitSettings:
    """The ``lfkit:`` section of a GRPO config (ignored by ``trl grpo``)."""

    template: str = field(
        default="",
        metadata={
            "help": "LLaMA-Factory chat template the SFT model was trained with: lfkit grpo train renders the "
            "prompts with it (TRL would use the tokenizer's own chat template, which may differ)."
        },
    )
    base_model: str | None = field(default=None, metadata={"help": "Base model the SFT adapter was trained on."})
    sft_adapter: str | None = field(
        default=None,
        metadata={
            "help": "SFT LoRA adapter to start from: merged into base_model and saved to model_name_or_path, then "
            "a new LoRA is trained on the merged model, so the KL reference (beta > 0) is the SFT model."
        },
    )
    dev_file: str | None = field(default=None, metadata={"help": "GRPO rows (lfkit data grpo) for dev EX."})
    dev_every: int = field(default=50, metadata={"help": "Evaluate dev EX every N optimizer steps (0: never)."})
    dev_size: int = field(default=64, metadata={"help": "The first N dev rows: a fixed subset."})
    dev_max_new_tokens: int = field(default=256, metadata={"help": "Greedy tokens per dev answer."})
    dev_batch_size: int = field(default=8, metadata={"help": "Prompts per generate call in dev evaluation."})
    gold_guide: bool = field(
        default=False,
        metadata={
            "help": "Gold guidance (LUFFY-style, lfkit.grpo.guide): in a training group where no completion is "
            "correct, the last one is replaced by the gold SQL written as the SFT target. Needs the execution "
            "reward and transformers generation (not use_vllm)."
        },
    )
    reward_timeout: float = field(default=10.0, metadata={"help": "Seconds a candidate SQL may run (reward 0)."})
    reward_workers: int | None = field(default=None, metadata={"help": "SQL execution processes (default: cores)."})
    tensorboard: bool = field(default=True, metadata={"help": "Log to tensorboard when it is installed."})
    wandb: bool = field(default=False, metadata={"help": "Log to Weights & Biases when installed (seed: optional)."})
    wandb_project: str = field(default="lfkit-grpo", metadata={"help": "W&B project."})
    samples_per_log: int = field(default=2, metadata={"help": "Completions written to samples.jsonl per log step."})

    def __post_init__(self) -> None:
        for name in ("dev_every", "dev_size", "dev_max_new_tokens", "dev_batch_size", "samples_per_log"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if self.dev_max_new_tokens < 1 or self.dev_batch_size < 1:
            raise ValueError("dev_max_new_tokens and dev_batch_size must be >= 1")
        if isinstance(self.reward_timeout, bool) or not isinstance(self.reward_timeout, int | float):
            raise ValueError(f"reward_timeout must be a number of seconds, got {self.reward_timeout!r}")
        if self.reward_timeout <= 0:
            raise ValueError(f"reward_timeout must be > 0, got {self.reward_timeout!r}")
        if not isinstance(self.gold_guide, bool):
            raise ValueError(f"gold_guide must be true or false, got {self.gold_guide!r}")
        if self.sft_adapter and not self.base_model:
            raise ValueError("sft_adapter needs base_model (the model the adapter was trained on)")


def lfkit_keys() -> list[str]:
    return [f.name for f in dataclasses.fields(LfkitSettings)]


@dataclass
class GRPOSettings:
    """A parsed GRPO config: TRL's four argument objects and the ``lfkit:`` section."""

    script: Any  # trl.scripts.grpo.GRPOScriptArguments
    training: Any  # trl.GRPOConfig
    model: Any  # trl.ModelConfig
    data: Any  # trl.scripts.utils.DatasetMixtureConfig
    lfkit: LfkitSettings
    raw: dict[str, Any]
    source: str = "GRPO config"


def trl_dataclasses() -> tuple[type, ...]:
    """The dataclasses ``trl grpo`` parses its config into (trl/scripts/grpo.py ``make_parser``)."""
    from trl import GRPOConfig, ModelConfig
    from trl.scripts.grpo import GRPOScriptArguments
    from trl.scripts.utils import DatasetMixtureConfig

    return (GRPOScriptArguments, GRPOConfig, ModelConfig, DatasetMixtureConfig)


def trl_argument_names() -> list[str]:
    return sorted({f.name for cls in trl_dataclasses() for f in dataclasses.fields(cls) if f.init})


def _check_hardware_key(key: str, value: Any, source: str) -> None:
    if value is not None and not isinstance(value, bool):
        raise GRPOConfigError(f"{source}: {key} must be true or false, got {value!r}")


def parse_grpo_config(config: Mapping[str, Any], *, source: str = "GRPO config", hardware: bool = True) -> GRPOSettings:
    """Parse ``config`` with TRL's ``TrlParser`` (as ``trl grpo`` does) plus the ``lfkit`` section.

    Refused, naming ``source`` and the key: keys outside TRL's GRPO dataclasses and
    ``lfkit``, unknown ``lfkit`` keys, values TRL's parser or ``GRPOConfig.__post_init__``
    reject, reward names that do not resolve, ``reward_weights`` not aligned with
    ``reward_funcs``. ``hardware=False`` leaves bf16/fp16/tf32 out of the parse (validating a
    GPU config on a CPU machine); training parses with them.
    """
    from trl import TrlParser

    from lfkit.recipes.validate import unknown_key_message

    if not isinstance(config, Mapping):
        raise GRPOConfigError(f"{source}: expected a mapping of arguments, got {type(config).__name__}")
    raw = dict(config)
    section = raw.pop(LFKIT_SECTION, None) or {}
    if not isinstance(section, Mapping):
        raise GRPOConfigError(f"{source}: '{LFKIT_SECTION}' must be a mapping, got {section!r}")
    for key in section:
        if key not in lfkit_keys():
            raise GRPOConfigError(
                f"{source}: " + unknown_key_message(f"{LFKIT_SECTION}.{key}", lfkit_keys(), "an lfkit key")
            )
    try:
        lfkit = LfkitSettings(**section)
    except (TypeError, ValueError) as exc:
        raise GRPOConfigError(f"{source}: {LFKIT_SECTION}: {exc}") from None
    if "env" in raw:
        raise GRPOConfigError(
            f"{source}: 'env' (TRL's environment section) is not supported by lfkit; set them in the shell"
        )
    valid = trl_argument_names()
    for key in raw:
        if key not in valid:
            raise GRPOConfigError(
                f"{source}: " + unknown_key_message(key, [*valid, LFKIT_SECTION], "a TRL GRPO argument or 'lfkit'")
            )
    parse = copy.deepcopy(raw)  # TRL converts values in place (datasets -> DatasetConfig)
    if not hardware:
        for key in HARDWARE_KEYS:
            _check_hardware_key(key, parse.get(key), source)
            parse[key] = False
    parser = TrlParser(trl_dataclasses())

    class _Error(Exception):
        pass

    def error(message: str) -> None:  # argparse would print usage and exit
        raise _Error(message)

    parser.error = error  # type: ignore[method-assign]
    try:
        remaining = parser.set_defaults_with_config(**parse)
        script, training, model, data, extra = parser.parse_args_into_dataclasses(
            args=[], return_remaining_strings=True
        )
    except (_Error, ValueError, TypeError) as exc:
        raise GRPOConfigError(f"{source}: TRL rejected the config: {exc}") from None
    if remaining or extra:
        raise GRPOConfigError(f"{source}: TRL did not use {remaining + extra}")
    if not hardware:
        for key in HARDWARE_KEYS:
            if key in raw:
                setattr(training, key, raw[key])
    settings = GRPOSettings(script, training, model, data, lfkit, dict(config), source)
    check_rewards(settings)
    check_gold_guide(settings)
    if not model.model_name_or_path:
        raise GRPOConfigError(f"{source}: model_name_or_path is required")
    if not data.datasets and not script.dataset_name:
        raise GRPOConfigError(f"{source}: no dataset: set `datasets` (a json file) or `dataset_name`")
    return settings


def check_rewards(settings: GRPOSettings) -> None:
    """``reward_funcs`` resolve (lfkit's names by their import paths, TRL's registry, any
    importable ``module.attribute``) and ``reward_weights`` align with them."""
    funcs = settings.script.reward_funcs or []
    if not funcs and not settings.script.reward_model_name_or_path:
        raise GRPOConfigError(f"{settings.source}: reward_funcs is empty")
    for name in funcs:  # names first: a typo is the likelier mistake than a miscount
        import_reward(name, settings.source)
    weights = settings.training.reward_weights
    n = len(funcs) + (1 if settings.script.reward_model_name_or_path else 0)
    if weights is not None and len(weights) != n:
        raise GRPOConfigError(
            f"{settings.source}: reward_weights has {len(weights)} values for {n} reward functions ({funcs})"
        )


def check_gold_guide(settings: GRPOSettings) -> None:
    """``lfkit.gold_guide`` needs lfkit's execution reward (it decides which groups are all wrong)
    and transformers generation (vLLM's sampling log-probabilities would not cover the gold)."""
    if not settings.lfkit.gold_guide:
        return
    from lfkit.reward.config import REWARD_IMPORT_PATHS

    if REWARD_IMPORT_PATHS["execution"] not in (settings.script.reward_funcs or []):
        raise GRPOConfigError(
            f"{settings.source}: lfkit.gold_guide needs the execution reward in reward_funcs "
            f"({REWARD_IMPORT_PATHS['execution']})"
        )
    if settings.training.use_vllm:
        raise GRPOConfigError(
            f"{settings.source}: lfkit.gold_guide works with transformers generation: set use_vllm false"
        )


def import_reward(name: str, source: str = "GRPO config") -> Any:
    """The reward function ``name`` names, as ``trl grpo`` resolves it; GRPOConfigError naming it otherwise."""
    if name in TRL_REWARD_NAMES:
        from trl.scripts.grpo import reward_funcs_registry

        return reward_funcs_registry[name]
    from lfkit.reward.config import REWARD_IMPORT_PATHS

    if "." not in name:
        raise GRPOConfigError(
            f"{source}: reward_funcs: unknown reward {name!r}; use an import path (lfkit's: "
            f"{', '.join(REWARD_IMPORT_PATHS.values())}) or one of TRL's {', '.join(TRL_REWARD_NAMES)}"
        )
    module_path, attr = name.rsplit(".", 1)
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise GRPOConfigError(f"{source}: reward_funcs: cannot import {module_path!r} for {name!r}: {exc}") from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise GRPOConfigError(f"{source}: reward_funcs: {module_path} has no reward function {attr!r}")
    return fn


def load_grpo_config(path: str | os.PathLike[str], *, hardware: bool = True) -> GRPOSettings:
    """Read and parse a GRPO config file (:func:`parse_grpo_config`); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise GRPOConfigError(f"{path}: GRPO config not found")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise GRPOConfigError(f"{path}: invalid YAML: {exc}") from None
    return parse_grpo_config(config, source=str(path), hardware=hardware)


def dataset_files(settings: GRPOSettings) -> list[str]:
    """The local data files of the config's ``datasets`` (json/jsonl builders)."""
    files: list[str] = []
    for ds in settings.data.datasets:
        value = ds.data_files
        if isinstance(value, str):
            files.append(value)
        elif isinstance(value, list):
            files += [str(v) for v in value]
        elif isinstance(value, dict):
            files += [str(v) for v in value.values()]
    return files


__all__ = [
    "HARDWARE_KEYS",
    "LFKIT_SECTION",
    "GRPOConfigError",
    "GRPOSettings",
    "LfkitSettings",
    "check_rewards",
    "dataset_files",
    "import_reward",
    "load_grpo_config",
    "parse_grpo_config",
    "trl_argument_names",
    "trl_dataclasses",
]

"""``lfkit render grpo``: a TRL GRPO config from ``templates/grpo/grpo.yaml.j2`` and a model preset.

As for the LLaMA-Factory stages (:mod:`lfkit.recipes.render`): the preset names the model and
its chat template, ``stages.grpo`` in the preset overrides its training values, ``--set``
overrides last, and the result is validated by the trainer's own argument parser (TRL's
``TrlParser`` over the GRPO script's dataclasses, :func:`lfkit.recipes.grpo_config.parse_grpo_config`)
before it is written. The file runs unchanged with ``trl grpo --config FILE``.

Seed 001's values are the defaults: 4 generations, temperature 0.7, 1024 completion tokens,
learning rate 7.3e-6 with a cosine schedule, bf16 on GPU presets. Rewards default to
:data:`lfkit.reward.config.DEFAULT_WEIGHTS` (execution-led).

Starting from an SFT adapter: the config names the merged model (``<adapter>-merged``) as
``model_name_or_path`` and keeps ``lfkit.base_model`` + ``lfkit.sft_adapter``;
``lfkit grpo train`` (or ``lfkit grpo merge``) writes the merged folder, and a new LoRA is
trained on it, so with ``beta > 0`` the KL reference (the adapter disabled) is the SFT model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lfkit.generate.defaults import SAMPLING
from lfkit.io import atomic_write_text
from lfkit.models.presets import Preset, load_preset, preset_fields
from lfkit.recipes.grpo_config import LFKIT_SECTION, LfkitSettings, lfkit_keys, parse_grpo_config, trl_argument_names
from lfkit.recipes.render import FIXED_FIELDS, _as_preset, _env, yaml_scalar
from lfkit.recipes.validate import RecipeError, unknown_key_message
from lfkit.reward.config import DEFAULT_WEIGHTS, RewardConfig, RewardConfigError

TEMPLATE = "grpo/grpo.yaml.j2"

GRPO_DEFAULTS: dict[str, Any] = {
    "num_generations": 4,
    "temperature": SAMPLING["grpo"].temperature,
    "max_completion_length": 1024,
    "beta": 0.04,
}
"""GRPO knobs of the template (the process-reward recipe's generation settings; beta: the KL weight)."""

GRPO_PRESET_DEFAULTS: dict[str, Any] = {"learning_rate": 7.3e-6, "lr_scheduler_type": "cosine", "num_train_epochs": 1.0}
"""Preset fields for GRPO unless the preset's ``stages.grpo`` says otherwise (the process-reward recipe)."""

REWARD_PREFIX = "reward."


def lora_targets(lora_target: str) -> str | list[str]:
    """LLaMA-Factory's ``lora_target`` as TRL's ``lora_target_modules``: ``all`` -> ``all-linear``.

    >>> lora_targets("all"), lora_targets("q_proj, v_proj")
    ('all-linear', ['q_proj', 'v_proj'])
    """
    if lora_target.strip() == "all":
        return "all-linear"
    return [t.strip() for t in lora_target.split(",") if t.strip()]


def merged_path(sft_adapter: str | Path) -> str:
    """Where the SFT adapter merged into its base is kept: ``<adapter>-merged`` beside it.

    >>> merged_path("saves/m/lora/sft/")
    'saves/m/lora/sft-merged'
    """
    return str(sft_adapter).rstrip("/") + "-merged"


def grpo_preset(preset: str | dict | Preset) -> Preset:
    """The preset with :data:`GRPO_PRESET_DEFAULTS`, then its ``stages.grpo`` values, applied."""
    p = _as_preset(preset)
    values = {**GRPO_PRESET_DEFAULTS, **(p.stages.get("grpo") or {})}
    return dataclasses.replace(p, **values)


def reward_weights(
    weights: RewardConfig | Mapping[str, float] | None, overrides: Mapping[str, float] | None = None
) -> RewardConfig:
    """Validated weights: ``weights`` (default :data:`DEFAULT_WEIGHTS`) with ``overrides`` applied
    (a weight of 0 drops a reward)."""
    base = dict(weights.weights if isinstance(weights, RewardConfig) else (weights or DEFAULT_WEIGHTS))
    for key, value in (overrides or {}).items():
        base[key] = value
    try:
        return RewardConfig(base, source="reward weights")
    except RewardConfigError as exc:
        raise RecipeError(str(exc)) from None


def render_grpo(
    preset: str | dict | Preset,
    overrides: Mapping[str, Any] | None = None,
    *,
    dataset: str | Path,
    output_dir: str | Path | None = None,
    sft_adapter: str | Path | None = None,
    rewards: RewardConfig | Mapping[str, float] | None = None,
    lfkit: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The GRPO config for ``preset`` as a dict (not validated; :func:`write_grpo_config` validates).

    ``dataset``: the GRPO rows file (``lfkit data grpo``). ``sft_adapter``: start from this SFT
    LoRA (merged into the preset's model; see the module docstring). ``rewards``: weights by
    reward name (default execution-led). ``lfkit``: values of the ``lfkit:`` section
    (``dev_file``, ``dev_every`` ...). ``overrides`` (``--set``): preset fields, TRL GRPO
    arguments (``None`` removes one), ``lfkit.KEY`` and ``reward.NAME`` (a weight) keys.
    """
    p = grpo_preset(preset)
    overrides = dict(overrides or {})
    reward_over = {k[len(REWARD_PREFIX) :]: v for k, v in overrides.items() if k.startswith(REWARD_PREFIX)}
    lfkit_over = {k[len(LFKIT_SECTION) + 1 :]: v for k, v in overrides.items() if k.startswith(LFKIT_SECTION + ".")}
    knobs = {k: v for k, v in overrides.items() if k in preset_fields()}
    trl_over = {
        k: v
        for k, v in overrides.items()
        if k not in knobs and not k.startswith(REWARD_PREFIX) and not k.startswith(LFKIT_SECTION + ".")
    }
    for key, value in knobs.items():
        if key in FIXED_FIELDS and value != getattr(p, key):
            raise RecipeError(f"{key!r} is part of the preset's identity and cannot be overridden")
    if knobs:
        p = dataclasses.replace(p, **knobs)
    valid_trl = trl_argument_names()
    for key in trl_over:
        if key not in valid_trl or key == LFKIT_SECTION:
            allowed = sorted(set(valid_trl) | (preset_fields() - FIXED_FIELDS))
            raise RecipeError(
                unknown_key_message(key, allowed, "a TRL GRPO argument, a preset field, lfkit.KEY or reward.NAME")
            )
    for key in lfkit_over:
        if key not in lfkit_keys():
            raise RecipeError(unknown_key_message(f"lfkit.{key}", lfkit_keys(), "an lfkit key"))
    weights = reward_weights(rewards, reward_over)
    if p.model_name_or_path is None:
        raise RecipeError(f"preset {p.name}: no model_name_or_path (an embedded preset must be loaded resolved)")

    section: dict[str, Any] = {"template": p.template}
    if sft_adapter is not None:
        section.update(base_model=p.model_name_or_path, sft_adapter=str(sft_adapter))
    section.update(dict(lfkit or {}))
    section.update(lfkit_over)
    defaults = {f.name: f.default for f in dataclasses.fields(LfkitSettings)}
    # keep the file short: only values that differ from LfkitSettings' defaults, template always
    section = {k: v for k, v in section.items() if k == "template" or v != defaults.get(k)}

    context = dataclasses.asdict(p)
    context.update(
        model_path=merged_path(sft_adapter) if sft_adapter is not None else p.model_name_or_path,
        dtype={"bf16": "bfloat16", "fp16": "float16"}.get(p.precision, "float32"),
        lora_targets=lora_targets(p.lora_target),
        data_file=str(dataset),
        output_dir=str(output_dir) if output_dir is not None else f"saves/{p.name}/{p.finetuning_type}/grpo",
        reward_funcs=weights.import_paths(),
        reward_weights=weights.weight_list(),
        grpo=dict(GRPO_DEFAULTS),
        vllm_server_host="0.0.0.0",
        vllm_server_port=8000,
        lfkit=section,
    )
    import yaml

    text = _env().get_template(TEMPLATE).render(**context)
    config = {k: v for k, v in yaml.safe_load(text).items() if v is not None}
    for key, value in trl_over.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


# ------------------------------------------------------------------------------- write

_SECTIONS: dict[str, tuple[str, ...]] = {
    "model (trl ModelConfig)": (
        "model_name_or_path",
        "model_revision",
        "dtype",
        "trust_remote_code",
        "attn_implementation",
        "use_peft",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "lora_target_modules",
        "lora_task_type",
        "use_rslora",
        "use_dora",
    ),
    "dataset (GRPO rows from `lfkit data grpo`)": ("datasets", "dataset_name", "dataset_train_split"),
    "rewards (import paths, as `trl grpo` loads them; weights aligned)": (
        "reward_funcs",
        "reward_weights",
        "reward_model_name_or_path",
    ),
    "grpo (process-reward recipe: 4 generations, temperature 0.7, 1024 new tokens; beta > 0: KL to the start model)": (
        "num_generations",
        "temperature",
        "top_p",
        "max_prompt_length",
        "max_completion_length",
        "beta",
        "loss_type",
        "scale_rewards",
        "log_completions",
        "num_completions_to_print",
        "use_vllm",
        "vllm_mode",
        "vllm_gpu_memory_utilization",
        "vllm_tensor_parallel_size",
        "vllm_server_host",
        "vllm_server_port",
    ),
    "output": ("output_dir", "logging_steps", "save_steps", "save_total_limit", "report_to"),
}
_KEY_SECTION = {key: section for section, keys in _SECTIONS.items() for key in keys}


def dump_grpo_config(config: Mapping[str, Any], header: str | None = None) -> str:
    """The config as YAML under ``### section`` headings; the ``lfkit`` section last, in block style."""
    groups: dict[str, list[str]] = {name: [] for name in (*_SECTIONS, "train")}
    for key, value in config.items():
        if key == LFKIT_SECTION:
            continue
        if key == "datasets" and isinstance(value, list):
            lines = [f"{key}:"]
            for ds in value:
                items = list(ds.items())
                lines += [f"  - {items[0][0]}: {yaml_scalar(items[0][1])}"]
                lines += [f"    {k}: {yaml_scalar(v)}" for k, v in items[1:]]
            groups[_KEY_SECTION[key]].append("\n".join(lines))
            continue
        groups[_KEY_SECTION.get(key, "train")].append(f"{key}: {yaml_scalar(value)}")
    lines = [f"# {line}".rstrip() for line in header.splitlines()] + [""] if header else []
    for section, entries in groups.items():
        if entries:
            lines += [f"### {section}", *entries, ""]
    section = config.get(LFKIT_SECTION)
    if section:
        lines += ["### lfkit (read by `lfkit grpo train`, ignored by `trl grpo`)", f"{LFKIT_SECTION}:"]
        lines += [f"  {k}: {yaml_scalar(v)}" for k, v in section.items()]
    return "\n".join(lines).rstrip("\n") + "\n"


def validate_grpo_config(config: Mapping[str, Any], *, base_dir: str | Path | None = None) -> None:
    """TRL's parser on ``config`` (bf16/fp16 type-checked only: this machine may have no GPU);
    with ``base_dir`` (where training will run) relative data files must exist there.
    Raises :class:`RecipeError`."""
    from lfkit.recipes.grpo_config import GRPOConfigError, dataset_files

    try:
        settings = parse_grpo_config(config, source="rendered GRPO config", hardware=False)
    except GRPOConfigError as exc:
        raise RecipeError(str(exc)) from None
    if base_dir is not None:
        for name in dataset_files(settings):
            path = Path(name) if Path(name).is_absolute() else Path(base_dir) / name
            if not path.is_file():
                raise RecipeError(f"GRPO dataset {name!r} not found (looked at {path}); build it with lfkit data grpo")


def write_grpo_config(
    config: Mapping[str, Any],
    path: str | Path,
    *,
    validate: bool = True,
    base_dir: str | Path | None = None,
    header: str | None = None,
) -> Path:
    """Validate ``config`` with TRL's parser (unless ``validate=False``), then write it atomically."""
    if validate:
        validate_grpo_config(config, base_dir=base_dir)
    return atomic_write_text(path, dump_grpo_config(config, header))


# ------------------------------------------------------------------------- launch files

ACCELERATE_FILES = {2: "accelerate_zero2.yaml", 3: "accelerate_zero3.yaml"}


def render_grpo_launch(preset: str | dict | Preset, *, script_name: str, accelerate_dir: str) -> str:
    """A bash script running ``lfkit grpo train`` under ``accelerate launch`` with the preset's
    DeepSpeed ZeRO stage (``stages.grpo.deepspeed_stage``, 2 when unset) and, in vLLM server
    mode, ``trl vllm-serve`` on the first GPUs."""
    p = grpo_preset(preset if not isinstance(preset, str) else load_preset(preset, resolve=False))
    zero = p.deepspeed_stage or 2
    return (
        _env()
        .get_template("grpo/launch.sh.j2")
        .render(
            nproc_per_node=p.nproc_per_node,
            zero=zero,
            vllm_mode=p.vllm_mode,
            vllm_server_port=8000,
            accelerate_config=f"{accelerate_dir.rstrip('/')}/{ACCELERATE_FILES[zero]}",
            script_name=script_name,
        )
    )


# ------------------------------------------------------------------- checked-in examples

GRPO_EXAMPLE_PRESETS: tuple[str, ...] = ("qwen3-1.7b",)
"""Presets whose GRPO configs are checked in under ``recipes/`` (the process-reward recipe's model)."""
GRPO_DATASET = "data/text2sql_grpo.jsonl"


def render_grpo_examples(out_dir: str | Path, *, prefix: str = "examples/lfkit") -> list[Path]:
    """Write the GRPO example files into ``out_dir`` (``lfkit render --sync`` / ``lfkit install``):
    the accelerate ZeRO-2/3 configs and, per preset in :data:`GRPO_EXAMPLE_PRESETS`,
    ``grpo.yaml`` (the preset's vLLM mode, colocate for Qwen3-1.7B), ``grpo_server.yaml``
    (vLLM server mode) and ``grpo_launch.sh`` / ``grpo_server_launch.sh``. Every config is
    validated by TRL's parser first."""
    from lfkit.resources import resource_dir

    out = Path(out_dir)
    written: list[Path] = []
    src = resource_dir("templates") / "grpo"
    for name in sorted(ACCELERATE_FILES.values()):
        target = out / "accelerate" / name
        atomic_write_text(target, (src / name).read_text(encoding="utf-8"))
        written.append(target)
    for name in GRPO_EXAMPLE_PRESETS:
        base = Preset(**load_preset(name, resolve=False))
        if base.embedded:
            raise RecipeError(f"preset {name} is an embedded model: its configs point into this machine's cache")
        saves = f"saves/{name}/{base.finetuning_type}"
        variants = [("grpo", base.vllm_mode or grpo_preset(base).vllm_mode), ("grpo_server", "server")]
        for stem, mode in variants:
            preset = dataclasses.replace(base, stages={**base.stages, "grpo": {**base.stages.get("grpo", {})}})
            preset.stages["grpo"]["vllm_mode"] = mode
            config = render_grpo(
                preset,
                dataset=GRPO_DATASET,
                output_dir=f"{saves}/{stem}",
                sft_adapter=f"{saves}/sft",
                lfkit={"dev_file": "data/text2sql_grpo_dev.jsonl"},
            )
            launch = f"{prefix}/{name}/{stem}_launch.sh"
            header = "\n".join(
                [
                    f"GRPO from the SFT adapter {saves}/sft, vLLM {mode} mode; execution-led rewards.",
                    "",
                    f"Rendered by lfkit from templates/{TEMPLATE} with preset '{name}'.",
                    "Do not edit: change the template or preset and run `lfkit render --sync`.",
                    "Paths resolve from the directory you run it in (`lfkit install --lf-dir`: the checkout root).",
                    f"Run:  lfkit grpo train {prefix}/{name}/{stem}.yaml            (merges the SFT adapter first)",
                    f"  or  bash {launch} {prefix}/{name}/{stem}.yaml   (accelerate, multi-GPU)",
                    f"  or  lfkit grpo merge {prefix}/{name}/{stem}.yaml",
                    f"      trl grpo --config {prefix}/{name}/{stem}.yaml          (TRL's own CLI)",
                ]
            )
            written.append(write_grpo_config(config, out / name / f"{stem}.yaml", header=header))
            script = out / name / f"{stem}_launch.sh"
            atomic_write_text(
                script, render_grpo_launch(preset, script_name=launch, accelerate_dir=f"{prefix}/accelerate")
            )
            script.chmod(0o755)
            written.append(script)
    return written


__all__ = [
    "GRPO_DEFAULTS",
    "GRPO_PRESET_DEFAULTS",
    "dump_grpo_config",
    "grpo_preset",
    "lora_targets",
    "merged_path",
    "render_grpo",
    "render_grpo_examples",
    "render_grpo_launch",
    "reward_weights",
    "validate_grpo_config",
    "write_grpo_config",
]

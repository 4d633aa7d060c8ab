"""Render LLaMA-Factory recipes from the Jinja templates in ``templates/`` and a preset."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml

from lfkit.io import atomic_write_text
from lfkit.models.adapters import split_adapters
from lfkit.models.presets import Preset, load_preset, preset_fields
from lfkit.recipes.validate import RecipeError, lf_argument_names, unknown_key_message, validate_recipe
from lfkit.resources import resource_dir


@dataclass(frozen=True)
class Stage:
    name: str = field(metadata={"help": "Name used by `lfkit render STAGE`."})
    template: str = field(metadata={"help": "Template path under templates/."})
    command: str = field(metadata={"help": "llamafactory-cli subcommand that runs the recipe."})
    default_dataset: str | None = field(metadata={"help": "Dataset name when --dataset is not given."})
    help: str = field(metadata={"help": "One line shown by `lfkit render --list`."})
    variant_of: str | None = field(
        default=None, metadata={"help": "The stage this is a variant of: its preset values and LF `stage`."}
    )

    def __post_init__(self) -> None:
        if self.command not in ("train", "export"):
            raise ValueError(f"stage {self.name}: command must be train or export")


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("sft", "llamafactory/sft.yaml.j2", "train", "text2sql_sft", "supervised fine-tuning (LoRA) on SFT rows"),
        Stage("dpo", "llamafactory/dpo.yaml.j2", "train", "text2sql_dpo", "DPO/ORPO/SimPO/IPO on preference rows"),
        Stage(
            "dpo_round",
            "llamafactory/dpo_round.yaml.j2",
            "train",
            "text2sql_dpo",
            "iterative DPO round k: a new adapter on round k-1's merged model (start = reference = round k-1)",
            variant_of="dpo",
        ),
        Stage("rm", "llamafactory/rm.yaml.j2", "train", "text2sql_dpo", "reward model (value head) on preference rows"),
        Stage("export", "llamafactory/export.yaml.j2", "export", None, "merge LoRA adapter(s) into a plain model"),
    )
}
# Preset fields a --set may not change: they identify the model, and the template must stay its own.
FIXED_FIELDS = {"embedded", "stands_for", "description", "stages", "template"}

DEEPSPEED_FILES = {2: "ds_z2_config.json", 3: "ds_z3_config.json", "3-offload": "ds_z3_offload_config.json"}


# ------------------------------------------------------------------------ YAML helpers


def yaml_scalar(value: Any) -> str:
    """``value`` as one line of YAML (quoted where YAML would misread it)."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1 << 30)
    return text.removesuffix("\n...\n").strip()  # safe_dump ends a bare scalar document with "..."


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        undefined=jinja2.StrictUndefined,  # a variable missing from the context is a bug, not an empty string
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["y"] = yaml_scalar
    return env


def deepspeed_file(stage: int | None, offload: bool = False) -> str | None:
    if stage is None:
        return None
    return DEEPSPEED_FILES["3-offload" if offload and stage == 3 else stage]


# ------------------------------------------------------------------------------ render


def _as_preset(preset: str | dict | Preset) -> Preset:
    if isinstance(preset, Preset):
        return preset
    if isinstance(preset, str):
        preset = load_preset(preset)
    if not isinstance(preset, dict):
        raise RecipeError(f"preset must be a name, a dict from load_preset or a Preset, got {type(preset).__name__}")
    return Preset(**preset)


LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def lora_target_last_layers(model_dir: str | Path, n_layers: int) -> str:
    """``lora_target`` naming the linear modules of the last ``n_layers`` decoder layers.

    PEFT matches each name as a suffix of the module path, so ``layers.29.q_proj``-style
    names select layers without any LLaMA-Factory option for it. Reads ``num_hidden_layers``
    from the model folder's ``config.json`` (LLaMA-style module names); a hub name or a folder
    without it raises :class:`RecipeError`.
    """
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise RecipeError(f"LoRA on the last layers reads the layer count from {path}: not a local model folder")
    config = json.loads(path.read_text())
    total = config["num_hidden_layers"]
    layers = range(max(0, total - n_layers), total)
    mlp = {"gate_proj", "up_proj", "down_proj"}
    return ",".join(f"layers.{i}.{'mlp' if m in mlp else 'self_attn'}.{m}" for i in layers for m in LINEAR_MODULES)


def render_recipe(
    stage: str,
    preset: str | dict | Preset,
    overrides: dict[str, Any] | None = None,
    *,
    dataset: str | None = None,
    dataset_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
    adapter_name_or_path: str | Path | list | None = None,
    deepspeed_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Render the recipe for ``stage`` with ``preset`` and return it as a dict (not validated).

    ``overrides`` are applied last. Keys that are preset fields (``lora_rank``, ``precision``,
    ``deepspeed_stage`` ...) change the values the template sees; any other key must be a
    LLaMA-Factory argument and is set in the recipe (``None`` removes it). The chat template
    is the preset's and cannot be overridden.

    ``adapter_name_or_path`` continues from earlier adapter(s) (an SFT adapter for DPO). The
    recipe is built so that the DPO reference model is the model we start from:
    LLaMA-Factory merges the adapters and trains a new one (``create_new_adapter``); under
    ZeRO-3 or quantization, where it cannot merge, the single adapter is trained further and
    ``ref_model`` + ``ref_model_adapters`` load the same starting point as reference.

    ``deepspeed_dir`` is how the recipe refers to the DeepSpeed configs (default: the absolute
    path of ``templates/deepspeed``); ``lfkit install`` and ``--sync`` use checkout-relative ones.
    """
    if stage not in STAGES:
        raise RecipeError(f"unknown stage {stage!r}; choose one of: {', '.join(STAGES)}")
    spec = STAGES[stage]
    base_stage = spec.variant_of or stage
    p = _as_preset(preset).for_stage(base_stage)
    overrides = dict(overrides or {})

    knobs = {k: v for k, v in overrides.items() if k in preset_fields()}
    lf_overrides = {k: v for k, v in overrides.items() if k not in knobs}
    for key, value in knobs.items():
        if key in FIXED_FIELDS and value != getattr(p, key):
            if key == "template":
                raise RecipeError(
                    f"the chat template comes from the preset ({p.name}: {p.template}); a different template "
                    "with this model would train on prompts it never sees at inference. Use another preset."
                )
            raise RecipeError(f"{key!r} is part of the preset's identity and cannot be overridden")
    if knobs:
        p = dataclasses.replace(p, **knobs)  # re-runs the preset checks on the new values

    adapters = split_adapters(adapter_name_or_path)
    if stage == "export" and not adapters:
        raise RecipeError("export merges LoRA adapter(s) into the base model: give adapter_name_or_path")
    if p.finetuning_type != "lora" and adapters:
        raise RecipeError(f"adapters need finetuning_type lora (preset {p.name} uses {p.finetuning_type})")
    continue_mode = None
    if adapters and spec.command == "train":
        unmergeable = p.deepspeed_stage == 3 or lf_overrides.get("quantization_bit") is not None
        continue_mode = "ref_adapter" if unmergeable else "merge_new"
        if unmergeable and len(adapters) > 1:
            raise RecipeError(
                "under DeepSpeed ZeRO-3 or quantization LLaMA-Factory takes a single adapter: merge the earlier "
                f"ones first (lfkit render export ...) and start from the merged model. Got {adapters}"
            )

    ds_name = deepspeed_file(p.deepspeed_stage, p.deepspeed_offload)
    if ds_name:
        ds_dir = str(deepspeed_dir) if deepspeed_dir is not None else str(resource_dir("templates") / "deepspeed")
        deepspeed = f"{ds_dir.rstrip('/')}/{ds_name}"
    else:
        deepspeed = None

    if output_dir is None:
        output_dir = f"output/{p.name}-merged" if stage == "export" else f"saves/{p.name}/{p.finetuning_type}/{stage}"
    context = dataclasses.asdict(p)
    context.update(
        stage=base_stage,
        dataset=dataset or spec.default_dataset,
        dataset_dir=str(dataset_dir) if dataset_dir is not None else "data",
        output_dir=str(output_dir),
        adapters=adapters,
        continue_mode=continue_mode,
        deepspeed=deepspeed,
    )
    text = _env().get_template(spec.template).render(**context)
    # null means "LLaMA-Factory's default": leave the key out rather than pass None to its parser
    config = {k: v for k, v in yaml.safe_load(text).items() if v is not None}

    if lf_overrides:
        valid = lf_argument_names(spec.command)
        for key, value in lf_overrides.items():
            if key not in valid:
                allowed = sorted(set(valid) | (preset_fields() - FIXED_FIELDS))
                raise RecipeError(
                    unknown_key_message(key, allowed, f"a LLaMA-Factory {spec.command} argument or a preset field")
                )
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
    return config


def render_launch_script(preset: str | dict | Preset, *, command: str = "train", script_name: str = "launch.sh") -> str:
    """A bash script that launches a recipe with LLaMA-Factory's torchrun launcher.

    It exports FORCE_TORCHRUN, NNODES, NODE_RANK, NPROC_PER_NODE, MASTER_ADDR and MASTER_PORT
    (each overridable from the environment) and runs ``llamafactory-cli COMMAND RECIPE``.
    """
    p = _as_preset(preset) if not isinstance(preset, str) else Preset(**load_preset(preset, resolve=False))
    return (
        _env()
        .get_template("launch/train.sh.j2")
        .render(
            nnodes=p.nnodes,
            nproc_per_node=p.nproc_per_node,
            master_addr="127.0.0.1",
            master_port=29500,
            command=command,
            script_name=script_name,
        )
    )


# ------------------------------------------------------------------------------- write

# Section of the written YAML for each key (LLaMA-Factory's examples use the same headings).
_SECTIONS: dict[str, tuple[str, ...]] = {
    "model": (
        "model_name_or_path",
        "adapter_name_or_path",
        "create_new_adapter",
        "ref_model",
        "ref_model_adapters",
        "template",
        "trust_remote_code",
        "flash_attn",
        "quantization_bit",
    ),
    "method": (
        "stage",
        "do_train",
        "finetuning_type",
        "lora_rank",
        "lora_alpha",
        "lora_dropout",
        "lora_target",
        "pref_beta",
        "pref_loss",
        "pref_ftx",
        "simpo_gamma",
        "deepspeed",
        "disable_gradient_checkpointing",
    ),
    "dataset": (
        "dataset",
        "eval_dataset",
        "dataset_dir",
        "cutoff_len",
        "max_samples",
        "val_size",
        "overwrite_cache",
        "preprocessing_num_workers",
        "dataloader_num_workers",
    ),
    "output": (
        "output_dir",
        "logging_steps",
        "save_steps",
        "plot_loss",
        "overwrite_output_dir",
        "save_only_model",
        "report_to",
    ),
    "export": ("export_dir", "export_size", "export_device", "export_legacy_format"),
}
_KEY_SECTION = {key: section for section, keys in _SECTIONS.items() for key in keys}
_KEY_COMMENTS = {
    "create_new_adapter": "merge the adapter(s) above into the base, train a new one: the reference = the start model",
    "ref_model": "ZeRO-3/quantized: the adapter cannot be merged, so the reference is loaded as base + adapter",
}


def dump_recipe(config: dict[str, Any], header: str | None = None) -> str:
    """The recipe as YAML grouped under ``### section`` headings, keys in a stable order."""
    groups: dict[str, list[str]] = {name: [] for name in (*_SECTIONS, "train")}
    for key, value in config.items():
        section = _KEY_SECTION.get(key, "train")
        comment = f"  # {_KEY_COMMENTS[key]}" if key in _KEY_COMMENTS else ""
        groups[section].append(f"{key}: {yaml_scalar(value)}{comment}")
    lines = [f"# {line}".rstrip() for line in header.splitlines()] + [""] if header else []
    for section, entries in groups.items():
        if entries:
            lines += [f"### {section}", *entries, ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_recipe(
    config: dict[str, Any],
    path: str | Path,
    *,
    validate: bool = True,
    base_dir: str | Path | None = None,
    header: str | None = None,
) -> Path:
    """Validate ``config`` with LLaMA-Factory's parser (unless ``validate=False``), then write it atomically."""
    if validate:
        validate_recipe(config, base_dir=base_dir)
    return atomic_write_text(path, dump_recipe(config, header))

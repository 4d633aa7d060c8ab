"""Model presets: plain YAML files in ``templates/presets/`` with sensible training values.

A preset names the model *and* its LLaMA-Factory chat template, so a recipe can never pair
a model with the wrong template, and a sampler prompts the model the way it was trained.
The recipe renderer (:mod:`lfkit.recipes`) and the generation backends
(:mod:`lfkit.generate`) both read presets here. Embedded presets (``tiny``,
``smollm2-135m``) resolve ``model_name_or_path`` through
:func:`lfkit.models.embedded.prepare_model`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lfkit.errors import LfkitError
from lfkit.models.embedded import EMBEDDED_MODELS, prepare_model
from lfkit.resources import resource_dir


class PresetError(LfkitError, ValueError):
    """A preset is unknown or invalid; the message names the preset (or its file) and the field."""


STAGE_NAMES = ("sft", "dpo", "rm", "export", "grpo")  # grpo: lfkit.grpo (TRL)
VLLM_MODES = ("colocate", "server")
PRECISIONS = ("bf16", "fp16", "fp32")
FINETUNING_TYPES = ("lora", "freeze", "full")


@dataclass
class Preset:
    """What a preset YAML may contain. Every field is also a template variable."""

    name: str = field(metadata={"help": "File stem in templates/presets/."})
    description: str = field(default="", metadata={"help": "One line shown by `lfkit render --list`."})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Hub id or local path; resolved from `embedded` for embedded presets."}
    )
    embedded: str | None = field(
        default=None, metadata={"help": "Embedded model (lfkit.models.embedded) that provides model_name_or_path."}
    )
    stands_for: str | None = field(default=None, metadata={"help": "The hub model an embedded preset stands in for."})
    template: str = field(default="", metadata={"help": "LLaMA-Factory chat template of this model."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the checkpoint."})
    flash_attn: str = field(default="auto", metadata={"help": "LLaMA-Factory flash_attn: auto|disabled|sdpa|fa2."})
    finetuning_type: str = field(default="lora", metadata={"help": "lora | freeze | full."})
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int | None = field(default=None, metadata={"help": "LoRA alpha; default 2 x rank."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    lora_target: str = field(default="all", metadata={"help": "Comma-separated module names, or all."})
    precision: str = field(default="bf16", metadata={"help": "bf16 | fp16 | fp32 (CPU)."})
    gradient_checkpointing: bool = field(default=True, metadata={"help": "Trade compute for activation memory."})
    deepspeed_stage: int | None = field(default=None, metadata={"help": "DeepSpeed ZeRO stage 2 or 3; null = off."})
    deepspeed_offload: bool = field(default=False, metadata={"help": "ZeRO-3 with CPU offload of params/optimizer."})
    cutoff_len: int = field(default=2048, metadata={"help": "Max tokens per example (prompt + answer)."})
    max_samples: int | None = field(default=None, metadata={"help": "Use at most this many rows per dataset."})
    per_device_train_batch_size: int = field(default=1, metadata={"help": "Micro-batch per device."})
    gradient_accumulation_steps: int = field(default=8, metadata={"help": "Micro-batches per optimizer step."})
    learning_rate: float = field(default=1.0e-4, metadata={"help": "Peak learning rate."})
    num_train_epochs: float = field(default=3.0, metadata={"help": "Epochs (ignored when max_steps is set)."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many optimizer steps."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Transformers scheduler name."})
    warmup_ratio: float = field(default=0.1, metadata={"help": "Share of steps spent warming up."})
    preprocessing_num_workers: int | None = field(default=16, metadata={"help": "Tokenisation processes."})
    dataloader_num_workers: int = field(default=4, metadata={"help": "DataLoader workers."})
    logging_steps: int = field(default=10, metadata={"help": "Log every N steps."})
    save_steps: int = field(default=500, metadata={"help": "Checkpoint every N steps."})
    plot_loss: bool = field(default=True, metadata={"help": "Write training_loss.png."})
    report_to: str = field(default="none", metadata={"help": "none | wandb | tensorboard | ..."})
    seed: int = field(default=42, metadata={"help": "Training seed."})
    pref_beta: float = field(default=0.1, metadata={"help": "DPO beta (strength of the reference constraint)."})
    pref_loss: str = field(default="sigmoid", metadata={"help": "sigmoid (DPO) | orpo | simpo | ipo | hinge."})
    pref_ftx: float = field(default=0.0, metadata={"help": "Weight of the SFT loss mixed into DPO."})
    simpo_gamma: float = field(default=0.5, metadata={"help": "SimPO target reward margin."})
    nproc_per_node: int = field(default=1, metadata={"help": "Processes (GPUs) per node for the launch script."})
    nnodes: int = field(default=1, metadata={"help": "Nodes for the launch script."})
    vllm_mode: str | None = field(
        default=None, metadata={"help": "GRPO generation with vLLM: colocate | server (trl vllm-serve); null = off."}
    )
    vllm_gpu_memory_utilization: float = field(default=0.3, metadata={"help": "GRPO colocate: vLLM's GPU share."})
    vllm_tensor_parallel_size: int = field(default=1, metadata={"help": "GRPO colocate: vLLM tensor parallel size."})
    stages: dict[str, dict[str, Any]] = field(
        default_factory=dict,
        metadata={"help": "Per-stage values (sft/dpo/rm/export/grpo) that override the ones above."},
    )

    def __post_init__(self) -> None:
        where = f"preset {self.name!r}"
        if not self.template:
            raise PresetError(f"{where}: `template` is required (the LLaMA-Factory chat template of the model)")
        if self.embedded is not None:
            if self.embedded not in EMBEDDED_MODELS:
                raise PresetError(
                    f"{where}: unknown embedded model {self.embedded!r}; one of {sorted(EMBEDDED_MODELS)}"
                )
            expected = EMBEDDED_MODELS[self.embedded].template
            if self.template != expected:
                raise PresetError(
                    f"{where}: embedded model {self.embedded} uses template {expected!r}, not {self.template!r}"
                )
        elif not self.model_name_or_path:
            raise PresetError(f"{where}: set `model_name_or_path` (or `embedded`)")
        if self.precision not in PRECISIONS:
            raise PresetError(f"{where}: precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.finetuning_type not in FINETUNING_TYPES:
            raise PresetError(
                f"{where}: finetuning_type must be one of {FINETUNING_TYPES}, got {self.finetuning_type!r}"
            )
        if self.deepspeed_stage not in (None, 2, 3):
            raise PresetError(f"{where}: deepspeed_stage must be 2, 3 or null, got {self.deepspeed_stage!r}")
        if self.deepspeed_offload and self.deepspeed_stage != 3:
            raise PresetError(f"{where}: deepspeed_offload needs deepspeed_stage 3")
        if self.vllm_mode not in (None, *VLLM_MODES):
            raise PresetError(f"{where}: vllm_mode must be one of {VLLM_MODES} or null, got {self.vllm_mode!r}")
        if self.lora_alpha is None:
            self.lora_alpha = 2 * self.lora_rank
        names = preset_fields()
        for stage, values in self.stages.items():
            if stage not in STAGE_NAMES:
                raise PresetError(f"{where}: stages.{stage}: unknown stage; one of {STAGE_NAMES}")
            bad = sorted(set(values or {}) - names - {"stages", "name"})
            if bad:
                raise PresetError(f"{where}: stages.{stage}: unknown keys {bad}; valid: {sorted(names)}")

    def for_stage(self, stage: str) -> Preset:
        """This preset with the values of ``stages[stage]`` applied."""
        values = dict(self.stages.get(stage) or {})
        return dataclasses.replace(self, **values) if values else self


def preset_fields() -> set[str]:
    return {f.name for f in dataclasses.fields(Preset)} - {"name"}


def presets_dir() -> Path:
    return resource_dir("templates") / "presets"


def list_presets() -> dict[str, str]:
    """Preset name -> description."""
    out = {}
    for path in sorted(presets_dir().glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        out[path.stem] = data.get("description", "")
    return out


def read_preset(name: str) -> Preset:
    """Parse and check a preset file; nothing is resolved or built."""
    path = presets_dir() / f"{name}.yaml"
    if not path.is_file():
        raise PresetError(f"unknown preset {name!r}; choose one of: {', '.join(list_presets())}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PresetError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PresetError(f"{path}: expected a mapping of preset fields")
    unknown = sorted(set(data) - preset_fields())
    if unknown:
        raise PresetError(f"{path}: unknown keys {unknown}; valid: {sorted(preset_fields())}")
    return Preset(name=name, **data)


def load_preset(name: str, *, resolve: bool = True) -> dict[str, Any]:
    """The preset ``name`` as a dict, ``model_name_or_path`` and ``template`` included.

    With ``resolve`` (default) an embedded preset's model is prepared (built once, cached)
    and ``model_name_or_path`` is its local folder.
    """
    preset = read_preset(name)
    if resolve and preset.embedded:
        preset.model_name_or_path = str(prepare_model(preset.embedded))
    return dataclasses.asdict(preset)

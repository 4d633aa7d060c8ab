"""``lfkit render grpo``: the code lives in :mod:`lfkit.recipes.grpo` (beside the LLaMA-Factory
stages, so ``lfkit render --sync`` can write the checked-in GRPO configs); this module is its
name in the GRPO package."""

from lfkit.recipes.grpo import (
    ACCELERATE_FILES,
    GRPO_DEFAULTS,
    GRPO_PRESET_DEFAULTS,
    dump_grpo_config,
    grpo_preset,
    lora_targets,
    merged_path,
    render_grpo,
    render_grpo_examples,
    render_grpo_launch,
    reward_weights,
    validate_grpo_config,
    write_grpo_config,
)

__all__ = [
    "ACCELERATE_FILES",
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

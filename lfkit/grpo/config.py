"""GRPO config files: parsed by TRL's parser plus the ``lfkit:`` section.

The code lives in :mod:`lfkit.recipes.grpo_config` (recipes render and validate every config
file; ``lfkit render --sync`` writes the checked-in GRPO ones); this module is its name in
the GRPO package.
"""

from lfkit.recipes.grpo_config import (
    HARDWARE_KEYS,
    LFKIT_SECTION,
    TRL_REWARD_NAMES,
    GRPOConfigError,
    GRPOSettings,
    LfkitSettings,
    check_rewards,
    dataset_files,
    import_reward,
    lfkit_keys,
    load_grpo_config,
    parse_grpo_config,
    trl_argument_names,
    trl_dataclasses,
)

__all__ = [
    "HARDWARE_KEYS",
    "LFKIT_SECTION",
    "TRL_REWARD_NAMES",
    "GRPOConfigError",
    "GRPOSettings",
    "LfkitSettings",
    "check_rewards",
    "dataset_files",
    "import_reward",
    "lfkit_keys",
    "load_grpo_config",
    "parse_grpo_config",
    "trl_argument_names",
    "trl_dataclasses",
]

"""lfkit.reward: execution, format and process rewards for GRPO (TRL's reward-function signature).

Names are imported lazily, so ``import lfkit.reward`` costs nothing until one is used:

* :mod:`lfkit.reward.process`: ``format_reward``, ``type_reward``, ``thinking_reward``,
  ``self_assessment_reward``, ``sql_structure_reward`` and their per-completion scores;
* :mod:`lfkit.reward.execution`: ``ExecutionReward`` (1 / 0.1 / 0 through a Verifier);
* :mod:`lfkit.reward.config`: ``RewardConfig`` (weights, validated), ``combine``;
* :mod:`lfkit.reward.registry`: ``REWARDS``, ``register_reward`` (a new reward: one decorated function).

The issue detectors and the complexity classifier the process rewards use live in
:mod:`lfkit.sql.issues` and :mod:`lfkit.sql.complexity`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PROCESS_REWARDS": "process",
    "completion_text": "process",
    "format_reward": "process",
    "type_reward": "process",
    "thinking_reward": "process",
    "self_assessment_reward": "process",
    "sql_structure_reward": "process",
    "REWARDS": "registry",
    "register_reward": "registry",
    "ExecutionReward": "execution",
    "execution_reward": "execution",
    "execution_score": "execution",
    "DEFAULT_WEIGHTS": "config",
    "REWARD_NAMES": "config",
    "SEED_WEIGHTS": "config",
    "RewardConfig": "config",
    "RewardConfigError": "config",
    "combine": "config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lfkit.reward' has no attribute {name!r}")
    return getattr(importlib.import_module(f"lfkit.reward.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

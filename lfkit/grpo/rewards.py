"""The reward functions of a GRPO run: the config's, each guarded so that a raising reward scores 0."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from lfkit.recipes.grpo_config import GRPOSettings, import_reward

logger = logging.getLogger("lfkit.grpo.train")


def guarded(fn: Callable[..., list[float]], errors: dict[str, int]) -> Callable[..., list[float]]:
    """``fn`` that returns 0.0 per completion (and counts the error) instead of raising."""
    name = getattr(fn, "__name__", type(fn).__name__)

    @functools.wraps(fn)
    def reward(prompts: Any, completions: Sequence[Any], **columns: Any) -> list[float]:
        try:
            values = fn(prompts, completions, **columns)
        except Exception:  # a reward must never stop a training step; the traceback goes to the log
            logger.exception("reward %s raised; scoring this batch 0", name)
            errors[name] = errors.get(name, 0) + 1
            return [0.0] * len(completions)
        return [0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in values]

    reward.__name__ = name
    return reward


def build_rewards(settings: GRPOSettings, errors: dict[str, int]) -> tuple[list[Callable[..., list[float]]], list]:
    """The config's reward functions (guarded), and what to close after training."""
    from lfkit.reward.config import REWARD_IMPORT_PATHS
    from lfkit.reward.execution import ExecutionReward

    funcs, owned = [], []
    for name in settings.script.reward_funcs or []:
        if name == REWARD_IMPORT_PATHS["execution"]:
            fn = ExecutionReward(timeout=settings.lfkit.reward_timeout, workers=settings.lfkit.reward_workers)
            owned.append(fn)
        else:
            fn = import_reward(name, settings.source)
        funcs.append(guarded(fn, errors))
    return funcs, owned


__all__ = ["build_rewards", "guarded"]

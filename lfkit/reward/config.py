"""Reward weights: which rewards a GRPO run uses and how much each counts.

Rewards by name, from the registry (:mod:`lfkit.reward.registry`): ``execution``
(:mod:`lfkit.reward.execution`), ``format``, and the process-reward recipe's four process rewards
``type``, ``thinking``, ``self_assessment``, ``sql_structure`` (:mod:`lfkit.reward.process`).
The total reward of a completion is ``sum(weight * reward)``; TRL computes the same sum from
``reward_funcs`` + ``reward_weights`` (:meth:`RewardConfig.functions`, :meth:`RewardConfig.weight_list`)
and logs every reward separately; :func:`combine` builds the sum as one function for evaluation and tests.

Defaults are execution-led (:data:`DEFAULT_WEIGHTS`): text heuristics are easy to game
(SQL-R1, Arctic-Text2SQL-R1 and Reward-SQL found execution the reward that carries), so
execution weighs 1.0 and everything else together 0.3 (format 0.1, the process-reward recipe's four 0.2 in the
recipe's proportions): a completion with perfect reasoning text and a wrong SQL (at most
0.1 + 0.3) scores below a bare correct SQL (at least 1.0). :data:`SEED_WEIGHTS` are the
recipe's own (no execution).

>>> RewardConfig({"execution": 1.0, "thinking_reward": 0.1}).weights
{'execution': 1.0, 'thinking': 0.1}
>>> RewardConfig({"executoin": 1.0})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
lfkit.reward.config.RewardConfigError: reward weights: unknown reward 'executoin'; known: execution, format, ...
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lfkit.reward.process  # noqa: F401  (registers the built-ins, execution first)
from lfkit.errors import LfkitError
from lfkit.reward.registry import REWARDS, RewardFunction

REWARD_NAMES: tuple[str, ...] = tuple(REWARDS)
"""The built-in rewards, in registry order (:mod:`lfkit.reward.registry`; a reward registered later
is accepted everywhere too: validation reads the registry itself)."""

REWARD_IMPORT_PATHS: dict[str, str] = {name: REWARDS[name].import_path for name in REWARD_NAMES}
"""Importable built-in reward functions by name (for configs run by ``trl grpo``, which imports them)."""

SEED_WEIGHTS = {"type": 0.20, "thinking": 0.25, "self_assessment": 0.25, "sql_structure": 0.30}
"""The process-reward recipe's weights (its total reward; no execution)."""

DEFAULT_WEIGHTS = {
    "execution": 1.0,
    "format": 0.1,
    "type": 0.04,
    "thinking": 0.05,
    "self_assessment": 0.05,
    "sql_structure": 0.06,
}
"""lfkit's defaults: execution 1.0; format plus the process-reward recipe's four (scaled to 0.2) sum to 0.3."""


class RewardConfigError(LfkitError):
    """Reward weights that cannot be used: an unknown reward name, a bad weight, none positive."""


def reward_name(key: str) -> str | None:
    """The reward a weights key names: a registered reward's name or the process-reward recipe's
    ``<name>_reward`` spelling (``type_reward: 0.20``); None when it names none."""
    if not isinstance(key, str):
        return None
    name = key.strip()
    if name not in REWARDS and name.endswith("_reward"):
        name = name[: -len("_reward")]
    return name if name in REWARDS else None


@dataclass
class RewardConfig:
    """Weights by reward name; a reward absent from ``weights`` (or weighted 0) is not computed.

    Validated on construction, each error naming the key and ``source`` (e.g. the config
    file): unknown reward names, one reward given twice (``type`` and ``type_reward``),
    weights that are not finite non-negative numbers, no positive weight. ``weights`` is
    stored with canonical names in registry order (:data:`REWARD_NAMES` first).
    """

    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    source: str = "reward weights"

    def __post_init__(self) -> None:
        if not isinstance(self.weights, Mapping):
            raise RewardConfigError(f"{self.source}: expected a mapping of reward name to weight, got {self.weights!r}")
        weights: dict[str, float] = {}
        for key, value in self.weights.items():
            name = reward_name(key)
            if name is None:
                raise RewardConfigError(f"{self.source}: unknown reward {key!r}; known: {', '.join(REWARDS)}")
            if name in weights:
                raise RewardConfigError(f"{self.source}: reward {name!r} given twice (key {key!r})")
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise RewardConfigError(f"{self.source}: weight of {key!r} must be a finite number >= 0, got {value!r}")
            weights[name] = float(value)
        if not any(w > 0 for w in weights.values()):
            raise RewardConfigError(f"{self.source}: no reward has a positive weight ({weights})")
        self.weights = {name: weights[name] for name in REWARDS if name in weights}

    @property
    def names(self) -> list[str]:
        """The rewards with a positive weight, in registry order."""
        return [name for name, w in self.weights.items() if w > 0]

    def weight_list(self) -> list[float]:
        """Weights aligned with :attr:`names` (TRL's ``GRPOConfig.reward_weights``)."""
        return [self.weights[name] for name in self.names]

    def import_paths(self) -> list[str]:
        """Import paths aligned with :attr:`names` (``reward_funcs`` of a ``trl grpo`` config)."""
        return [REWARDS[name].import_path for name in self.names]

    def functions(self, execution: RewardFunction | None = None) -> list[RewardFunction]:
        """Reward functions aligned with :attr:`names` (TRL's ``reward_funcs``).

        ``execution``: the execution reward to use (e.g. an :class:`ExecutionReward` holding
        the run's Verifier); None uses a new :class:`ExecutionReward` with default settings.
        """
        out = []
        for name in self.names:
            if name == "execution":
                if execution is None:
                    from lfkit.reward.execution import ExecutionReward

                    execution = ExecutionReward()
                out.append(execution)
            else:
                out.append(REWARDS[name].function)
        return out


def combine(
    weights: RewardConfig | Mapping[str, float] | None = None, *, execution: RewardFunction | None = None
) -> RewardFunction:
    """One reward function, ``__name__ == "combined"``, returning ``sum(weight * reward)`` per completion.

    ``weights``: a :class:`RewardConfig`, a mapping validated into one, or None for
    :data:`DEFAULT_WEIGHTS`. ``execution`` as in :meth:`RewardConfig.functions`.

    >>> total = combine({"format": 0.5, "sql_structure": 0.5})
    >>> total(None, ["<think>plan</think><answer>SELECT name FROM singer</answer>", ""])
    [0.85, 0.0]
    """
    config = weights if isinstance(weights, RewardConfig) else RewardConfig(dict(weights or DEFAULT_WEIGHTS))
    functions = config.functions(execution)
    pairs = list(zip(config.weight_list(), functions, strict=True))

    def combined(prompts: Sequence[Any] | None, completions: Sequence[Any], **columns: Any) -> list[float]:
        totals = [0.0] * len(completions)
        for weight, fn in pairs:
            for i, value in enumerate(fn(prompts, completions, **columns)):
                totals[i] += weight * float(value or 0.0)
        return [round(t, 10) for t in totals]

    combined.__name__ = combined.__qualname__ = "combined"
    combined.config = config  # type: ignore[attr-defined]
    return combined


__all__ = [
    "DEFAULT_WEIGHTS",
    "REWARD_IMPORT_PATHS",
    "REWARD_NAMES",
    "SEED_WEIGHTS",
    "RewardConfig",
    "RewardConfigError",
    "combine",
    "reward_name",
]

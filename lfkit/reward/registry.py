"""The reward registry: every reward a GRPO run can weight, by name.

A reward is a function with TRL's reward signature, ``f(prompts, completions, **columns) ->
list[float]``, registered once with :func:`register_reward` beside its code. The name is
what TRL logs (``rewards/<name>/mean``), what a weights mapping and ``--set reward.NAME``
use, and the registration records the import path ``trl grpo`` configs name it by.

Built-ins, in this order (the order of weights and ``reward_funcs`` in a config):
``execution`` (:mod:`lfkit.reward.execution`), then ``format``, ``type``, ``thinking``,
``self_assessment``, ``sql_structure`` (:mod:`lfkit.reward.process`, which imports the
execution module first so that the order does not depend on who imports what).

>>> @register_reward("short_answer")
... def short_answer_reward(prompts, completions, **columns):
...     '''1.0 for a completion under 200 characters.'''
...     return [1.0 if len(str(c)) < 200 else 0.0 for c in completions]
>>> short_answer_reward.__name__, REWARDS["short_answer"].import_path
('short_answer', 'lfkit.reward.registry.short_answer_reward')
>>> unregister_reward("short_answer")
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from lfkit.errors import LfkitError

RewardFunction = Callable[..., list[float]]
F = TypeVar("F")


class RewardRegistryError(LfkitError):
    """A reward registration was refused (malformed or duplicate name) or names no reward."""


@dataclass(frozen=True)
class Reward:
    """A registered reward: its ``name``, the ``function`` and the ``import_path`` naming it."""

    name: str
    function: Any
    import_path: str


REWARDS: dict[str, Reward] = {}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def register_reward(name: str, *, import_path: str | None = None) -> Callable[[F], F]:
    """Decorator registering a reward function (or callable object) as ``name``.

    Sets ``__name__`` to ``name`` (TRL logs it; ``__qualname__`` stays, so pickle still finds a
    function). ``import_path``: how a config names it (default ``module.qualname`` of the
    function; give it for an instance). Refused with :class:`RewardRegistryError`: a name that
    is not lowercase ``snake_case``, ends in ``_reward`` (that spelling is read as the name
    without it), or is already registered.
    """
    if not isinstance(name, str) or not _NAME.match(name) or name.endswith("_reward"):
        raise RewardRegistryError(f"reward name must be lowercase snake_case not ending in _reward, got {name!r}")
    if name in REWARDS:
        raise RewardRegistryError(f"reward {name!r} is already registered; unregister_reward({name!r}) first")

    def decorate(fn: F) -> F:
        path = import_path or f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}"
        fn.__name__ = name  # type: ignore[attr-defined]
        REWARDS[name] = Reward(name, fn, path)
        return fn

    return decorate


def unregister_reward(name: str) -> None:
    """Remove reward ``name``; an unknown name raises :class:`RewardRegistryError`."""
    if name not in REWARDS:
        raise RewardRegistryError(f"no reward named {name!r}; registered: {', '.join(REWARDS)}")
    del REWARDS[name]


__all__ = ["REWARDS", "Reward", "RewardFunction", "RewardRegistryError", "register_reward", "unregister_reward"]

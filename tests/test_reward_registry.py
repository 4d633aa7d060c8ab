"""The reward registry: a new reward is one decorated function; configs, weights and `--set reward.NAME`
accept it; the built-ins keep their order whatever imports first."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pytest

import lfkit.reward.registry as registry_module
from lfkit.recipes.grpo import render_grpo
from lfkit.recipes.render import RecipeError
from lfkit.reward.config import DEFAULT_WEIGHTS, REWARD_NAMES, RewardConfig, combine
from lfkit.reward.registry import REWARDS, RewardRegistryError, register_reward, unregister_reward


def mentions_singer_reward(prompts, completions, **columns):
    """1.0 when the completion names the singer table (a stand-in for a user's reward)."""
    return [1.0 if "singer" in str(c) else 0.0 for c in completions]


@pytest.fixture
def extra_reward():
    register_reward("mentions_singer")(mentions_singer_reward)
    try:
        yield REWARDS["mentions_singer"]
    finally:
        unregister_reward("mentions_singer")


def test_set_reward_accepts_a_registered_reward(extra_reward) -> None:
    config = render_grpo("tiny", {"reward.mentions_singer": 0.2}, dataset="d.jsonl")
    path = f"{__name__}.mentions_singer_reward"
    assert extra_reward.import_path == path and config["reward_funcs"][-1] == path
    assert config["reward_weights"][-1] == 0.2
    # the built-ins keep their defaults and their order in front of it
    assert config["reward_funcs"][:-1] == [REWARDS[n].import_path for n in DEFAULT_WEIGHTS]
    module, attr = path.rsplit(".", 1)
    assert getattr(importlib.import_module(module), attr) is mentions_singer_reward  # trl grpo resolves it
    total = combine({"format": 1.0, "mentions_singer": 0.5})
    assert total(None, ["<think>a</think><answer>SELECT name FROM singer</answer>", "x"]) == [1.5, 0.0]


def test_an_unregistered_reward_is_refused() -> None:
    with pytest.raises(RecipeError, match="unknown reward 'mentions_singer'"):
        render_grpo("tiny", {"reward.mentions_singer": 0.2}, dataset="d.jsonl")


def test_registered_rewards_are_off_unless_weighted(extra_reward) -> None:
    assert "mentions_singer" not in RewardConfig().names
    assert RewardConfig({"mentions_singer_reward": 1.0}).names == ["mentions_singer"]  # the seed's spelling too


@pytest.mark.parametrize("name", ["Bad", "execution", "format_reward", ""])
def test_bad_registrations_are_refused(name: str) -> None:
    with pytest.raises(RewardRegistryError):
        register_reward(name)(mentions_singer_reward)
    assert list(REWARDS) == list(REWARD_NAMES)


@pytest.mark.parametrize("first", ["lfkit.reward.process", "lfkit.reward.execution", "lfkit.reward.config"])
def test_builtin_order_does_not_depend_on_what_imports_first(first: str) -> None:
    code = f"import {first}, lfkit.reward.config as c, lfkit.reward.registry as r; print(','.join(r.REWARDS))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out.split(",") == list(REWARD_NAMES) == list(DEFAULT_WEIGHTS)


def test_doctests() -> None:
    result = doctest.testmod(registry_module)
    assert result.attempted >= 3 and result.failed == 0

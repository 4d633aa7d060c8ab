"""Reward weights: validation before training, the execution-led defaults, TRL alignment."""

from __future__ import annotations

import doctest
import importlib
import math

import pytest

import lfkit.reward as reward_package
import lfkit.reward.config as config_module
from lfkit.errors import LfkitError
from lfkit.reward.config import (
    DEFAULT_WEIGHTS,
    REWARD_IMPORT_PATHS,
    REWARD_NAMES,
    SEED_WEIGHTS,
    RewardConfig,
    RewardConfigError,
    combine,
)
from lfkit.reward.execution import ExecutionReward


def test_defaults_are_execution_led() -> None:
    cfg = RewardConfig()
    assert cfg.weights == DEFAULT_WEIGHTS and cfg.names == list(REWARD_NAMES)
    assert cfg.weights["execution"] == 1.0
    assert sum(w for n, w in cfg.weights.items() if n != "execution") == pytest.approx(0.3)
    # the seed's four keep the seed's proportions
    seed_part = {n: cfg.weights[n] / 0.2 for n in SEED_WEIGHTS}
    assert seed_part == pytest.approx(SEED_WEIGHTS)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"execution": 1.0, "thinkng": 0.1}, "unknown reward 'thinkng'"),
        ({"execution_reward_x": 1.0}, "unknown reward 'execution_reward_x'"),
        ({"type": 0.1, "type_reward": 0.2}, "reward 'type' given twice"),
        ({"execution": -1.0}, "weight of 'execution' must be a finite number >= 0"),
        ({"execution": math.nan}, "weight of 'execution'"),
        ({"execution": "1"}, "weight of 'execution'"),
        ({"execution": True}, "weight of 'execution'"),
        ({"execution": 0.0, "format": 0}, "no reward has a positive weight"),
        ({}, "no reward has a positive weight"),
        (["execution"], "expected a mapping"),
    ],
)
def test_bad_weights_are_refused_naming_the_key(weights, message: str) -> None:
    with pytest.raises(RewardConfigError, match=message) as err:
        RewardConfig(weights, source="grpo.yaml")
    assert str(err.value).startswith("grpo.yaml: ")
    assert isinstance(err.value, LfkitError)


def test_seed_key_spelling_and_order() -> None:
    cfg = RewardConfig({"sql_structure_reward": 0.3, "type_reward": 0.2, "thinking": 0, "execution": 1})
    assert cfg.weights == {"execution": 1.0, "type": 0.2, "thinking": 0.0, "sql_structure": 0.3}
    assert cfg.names == ["execution", "type", "sql_structure"]  # zero weight: not computed
    assert cfg.weight_list() == [1.0, 0.2, 0.3]


def test_functions_and_import_paths_align_with_names() -> None:
    cfg = RewardConfig()
    execution = ExecutionReward(workers=0)
    fns = cfg.functions(execution)
    assert [f.__name__ for f in fns] == cfg.names
    assert fns[0] is execution
    for name, path in zip(cfg.names, cfg.import_paths(), strict=True):
        module, attr = path.rsplit(".", 1)
        fn = getattr(importlib.import_module(module), attr)
        assert fn.__name__ == name and callable(fn)
    assert set(REWARD_IMPORT_PATHS) == set(REWARD_NAMES)
    assert isinstance(cfg.functions()[0], ExecutionReward)  # one is made when none is given


def test_combine_weighted_sum_by_hand() -> None:
    # format 1.0, thinking: 1 word (1/40), no names, no connectives, no steps -> 0.025/4; sql_structure 1 - 0.3
    c = "<think>plan</think><answer>SELECT name FROM singer</answer>"
    total = combine({"format": 2.0, "thinking": 4.0, "sql_structure": 1.0})
    assert total.__name__ == "combined"
    assert total(None, [c, ""]) == pytest.approx([2.0 + 4.0 * 0.025 / 4 + 0.7, 0.0])
    assert total.config.names == ["format", "thinking", "sql_structure"]
    with pytest.raises(RewardConfigError, match="unknown reward 'bogus'"):
        combine({"bogus": 1.0})


def test_package_exports_lazily() -> None:
    assert reward_package.combine is combine
    assert reward_package.RewardConfig is RewardConfig
    assert set(reward_package.__all__) <= set(dir(reward_package))
    with pytest.raises(AttributeError):
        reward_package.nothing_here  # noqa: B018


def test_doctests() -> None:
    result = doctest.testmod(config_module)
    assert result.attempted >= 3 and result.failed == 0

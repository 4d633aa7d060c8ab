"""`lfkit render grpo`: TRL's own parser reads what lfkit writes; bad keys and rewards are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from lfkit.cli import main
from lfkit.recipes import RecipeError
from lfkit.recipes.examples import recipes_dir
from lfkit.recipes.grpo import dump_grpo_config, render_grpo, validate_grpo_config
from lfkit.recipes.grpo_config import GRPOConfigError, load_grpo_config, parse_grpo_config
from lfkit.reward.config import DEFAULT_WEIGHTS, REWARD_IMPORT_PATHS

GPU_PRESETS = ("qwen2.5-coder-1.5b", "qwen2.5-coder-3b", "qwen3-1.7b", "qwen3-coder-30b-a3b")


def trl_parse(path: Path):
    """Exactly what `trl grpo --config PATH` does with the file (trl/scripts/grpo.py __main__)."""
    from trl.scripts.grpo import make_parser

    return make_parser().parse_args_and_config(["--config", str(path)], return_remaining_strings=True)


@pytest.mark.parametrize("preset", GPU_PRESETS)
def test_gpu_presets_render_seed_defaults_and_trl_parses_them(preset: str, tmp_path: Path) -> None:
    config = render_grpo(preset, dataset="data/grpo.jsonl", sft_adapter="saves/sft")
    path = tmp_path / "grpo.yaml"
    path.write_text(dump_grpo_config(config))
    validate_grpo_config(config)
    # TRL's CLI parser (bf16 left to the machine: parse with it off here, the value is in the file)
    raw = yaml.safe_load(path.read_text())
    assert raw["bf16"] is True and raw["fp16"] is False and raw["dtype"] == "bfloat16"
    raw["bf16"] = False
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    script, training, model, data, rest = trl_parse(path)
    assert rest[0] == "--lfkit" and len(rest) == 2  # TRL's CLI ignores lfkit's section
    assert training.num_generations == 4 and training.temperature == 0.7
    assert training.max_completion_length == 1024
    assert training.learning_rate == pytest.approx(7.3e-6) and training.lr_scheduler_type == "cosine"
    assert training.beta > 0 and training.use_vllm is True
    assert script.reward_funcs == [REWARD_IMPORT_PATHS[n] for n in DEFAULT_WEIGHTS]
    assert training.reward_weights == list(DEFAULT_WEIGHTS.values())
    assert model.use_peft and model.model_name_or_path == "saves/sft-merged"
    assert data.datasets[0].path == "json" and data.datasets[0].data_files == "data/grpo.jsonl"
    assert raw["lfkit"]["sft_adapter"] == "saves/sft" and raw["lfkit"]["base_model"].startswith(("Qwen/", "qwen"))


def test_vllm_modes_and_cpu_presets() -> None:
    assert render_grpo("qwen3-1.7b", dataset="d.jsonl")["vllm_mode"] == "colocate"
    server = render_grpo("qwen3-coder-30b-a3b", dataset="d.jsonl")
    assert server["vllm_mode"] == "server" and server["vllm_server_port"] == 8000
    cpu = render_grpo("tiny", dataset="d.jsonl")
    assert "use_vllm" not in cpu and cpu["bf16"] is False and cpu["dtype"] == "float32"
    assert (
        cpu["model_name_or_path"] == str(Path.home() / ".cache/lfkit/models/tiny")
        or Path(cpu["model_name_or_path"]).name == "tiny"
    )
    settings = parse_grpo_config(cpu)
    # the generation batch holds whole groups: 8 completions = 2 prompts x 4 generations
    assert settings.training.generation_batch_size % settings.training.num_generations == 0


def test_overrides_rewards_and_lfkit_keys() -> None:
    config = render_grpo(
        "tiny",
        {"reward.format": 0, "reward.thinking": 0.5, "lfkit.dev_every": 7, "temperature": 1.0, "lora_rank": 16},
        dataset="d.jsonl",
    )
    assert "lfkit.reward.process.format_reward" not in config["reward_funcs"]
    assert config["reward_weights"][config["reward_funcs"].index("lfkit.reward.process.thinking_reward")] == 0.5
    assert config["lfkit"]["dev_every"] == 7 and config["temperature"] == 1.0 and config["lora_r"] == 16
    with pytest.raises(RecipeError, match=r"unknown key 'temprature'.*Did you mean: temperature"):
        render_grpo("tiny", {"temprature": 1.0}, dataset="d.jsonl")
    with pytest.raises(RecipeError, match="unknown reward 'nope'"):
        render_grpo("tiny", {"reward.nope": 1.0}, dataset="d.jsonl")
    with pytest.raises(RecipeError, match=r"'lfkit\.dev_evry'"):
        render_grpo("tiny", {"lfkit.dev_evry": 1}, dataset="d.jsonl")
    with pytest.raises(RecipeError, match="divisible by num_generations"):
        validate_grpo_config(render_grpo("tiny", {"num_generations": 3}, dataset="d.jsonl"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"learning_rat": 1e-5}, r"unknown key 'learning_rat'.*Did you mean: learning_rate"),
        ({"lfkit": {"template": "qwen3_nothink", "dev_evry": 3}}, r"unknown key 'lfkit.dev_evry'"),
        ({"reward_funcs": ["lfkit.reward.process.nope_reward"]}, r"has no reward function 'nope_reward'"),
        ({"reward_funcs": ["accuracy"]}, r"unknown reward 'accuracy'"),
        ({"reward_funcs": ["no_such_module.reward"]}, r"cannot import 'no_such_module'"),
        ({"reward_weights": [1.0]}, r"reward_weights has 1 values for 6 reward functions"),
        ({"num_generations": "four"}, r"TRL rejected the config"),
        ({"lfkit": {"template": "x", "dev_size": -1}}, r"dev_size must be an integer >= 0"),
        ({"lfkit": {"gold_guide": "yes"}}, r"gold_guide must be true or false"),
        ({"lfkit": {"gold_guide": True}, "use_vllm": True}, r"gold_guide works with transformers generation"),
        (
            {
                "lfkit": {"gold_guide": True},
                "reward_funcs": ["lfkit.reward.process.format_reward"],
                "reward_weights": None,
            },
            r"gold_guide needs the execution reward",
        ),
    ],
)
def test_bad_configs_are_refused_naming_the_key(change: dict, message: str, tmp_path: Path) -> None:
    config = render_grpo("tiny", dataset="d.jsonl")
    config.update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    with pytest.raises(GRPOConfigError, match=message) as info:
        load_grpo_config(path)
    assert str(path) in str(info.value)


def test_cli_render_and_train_refuse_bad_config_before_training(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("d.jsonl").write_text('{"prompt": [{"role": "user", "content": "q"}]}\n')
    res = CliRunner().invoke(main, ["render", "grpo", "--preset", "tiny", "--dataset", "d.jsonl", "-o", "g.yaml"])
    assert res.exit_code == 0, res.output
    assert "validated by TRL" in res.output
    trl_parse(Path("g.yaml"))
    res = CliRunner().invoke(main, ["render", "grpo", "--preset", "tiny", "--dataset", "missing.jsonl", "-o", "x.yaml"])
    assert res.exit_code == 1 and "missing.jsonl" in res.output and not Path("x.yaml").exists()
    text = Path("g.yaml").read_text().replace("num_generations: 4", "num_generations: 4\nnum_generation: 4")
    Path("bad.yaml").write_text(text)
    res = CliRunner().invoke(main, ["grpo", "train", "bad.yaml"])
    assert res.exit_code == 1
    assert "unknown key 'num_generation'" in res.output and "num_generations" in res.output


def test_cli_lora_last_layers_targets_the_last_layers_for_trl_and_llamafactory(
    tiny_model: Path, tmp_path: Path, monkeypatch
) -> None:
    import json

    monkeypatch.chdir(tmp_path)
    Path("d.jsonl").write_text('{"prompt": [{"role": "user", "content": "q"}]}\n')
    last = json.loads((tiny_model / "config.json").read_text())["num_hidden_layers"] - 1
    args = ["render", "grpo", "--preset", "tiny", "--dataset", "d.jsonl", "--lora-last-layers", "1", "-o", "g.yaml"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    model_args = trl_parse(Path("g.yaml"))[2]
    assert len(model_args.lora_target_modules) == 7
    assert all(m.startswith(f"layers.{last}.") for m in model_args.lora_target_modules)
    assert "--lora-last-layers 1" in Path("g.yaml").read_text().splitlines()[0]
    res = CliRunner().invoke(main, ["render", "sft", "--preset", "tiny", "--lora-last-layers", "1", "-o", "-"])
    assert res.exit_code == 0, res.output
    target = yaml.safe_load(res.output)["lora_target"].split(",")
    assert len(target) == 7 and all(t.startswith(f"layers.{last}.") for t in target)
    res = CliRunner().invoke(main, [*args[:-2], "--set", "lora_target=all", "-o", "x.yaml"])
    assert res.exit_code == 2 and "not both" in res.output and not Path("x.yaml").exists()


def test_checked_in_grpo_examples_parse_with_trl() -> None:
    root = recipes_dir()
    for name in ("qwen3-1.7b/grpo.yaml", "qwen3-1.7b/grpo_server.yaml"):
        settings = load_grpo_config(root / name, hardware=False)
        assert settings.lfkit.sft_adapter == "saves/qwen3-1.7b/lora/sft"
        assert settings.model.model_name_or_path == "saves/qwen3-1.7b/lora/sft-merged"
        assert settings.training.bf16 is True and settings.training.use_vllm is True
    assert load_grpo_config(root / "qwen3-1.7b/grpo.yaml", hardware=False).training.vllm_mode == "colocate"
    assert load_grpo_config(root / "qwen3-1.7b/grpo_server.yaml", hardware=False).training.vllm_mode == "server"
    for zero in (2, 3):
        acc = yaml.safe_load((root / f"accelerate/accelerate_zero{zero}.yaml").read_text())
        assert acc["distributed_type"] == "DEEPSPEED" and acc["deepspeed_config"]["zero_stage"] == zero
    launch = (root / "qwen3-1.7b/grpo_server_launch.sh").read_text()
    assert "trl vllm-serve" in launch and "accelerate_zero2.yaml" in launch and "lfkit.cli grpo train" in launch

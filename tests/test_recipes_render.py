"""Presets, `lfkit render` and validation through LLaMA-Factory's own argument parser."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from lfkit.cli import main
from lfkit.models.embedded import EMBEDDED_MODELS
from lfkit.models.presets import Preset, PresetError, list_presets, load_preset, read_preset
from lfkit.recipes import (
    STAGES,
    RecipeError,
    render_launch_script,
    render_recipe,
    validate_recipe,
    write_recipe,
)


def _preset(name: str) -> Preset:
    """A preset without building embedded models (their path is irrelevant to parsing)."""
    p = Preset(**load_preset(name, resolve=False))
    if p.embedded:
        p.model_name_or_path = f"/models/{p.embedded}"
    return p


def test_presets_name_real_llamafactory_templates() -> None:
    from llamafactory.data.template import TEMPLATES

    names = list_presets()
    assert {
        "qwen3-coder-30b-a3b",
        "qwen2.5-coder-1.5b",
        "qwen2.5-coder-3b",
        "qwen3-1.7b",
        "smollm2-135m",
        "tiny",
    } <= set(names)
    for name in names:
        p = read_preset(name)
        assert p.template in TEMPLATES, (name, p.template)
        if p.embedded:
            assert p.template == EMBEDDED_MODELS[p.embedded].template
    seed_model = read_preset("qwen3-coder-30b-a3b")
    assert (seed_model.template, seed_model.precision, seed_model.deepspeed_stage) == ("qwen3_nothink", "bf16", 3)
    assert seed_model.gradient_checkpointing and seed_model.finetuning_type == "lora"
    cpu = read_preset("smollm2-135m")
    assert cpu.precision == "fp32" and cpu.deepspeed_stage is None


def test_embedded_preset_resolves_through_prepare_model(tiny_model: Path) -> None:
    preset = load_preset("tiny")
    assert Path(preset["model_name_or_path"]) == tiny_model
    assert preset["template"] == "qwen3_nothink"


@pytest.mark.parametrize("preset", sorted(list_presets()))
@pytest.mark.parametrize("stage", ["sft", "dpo", "rm"])
def test_every_preset_and_stage_validates(preset: str, stage: str) -> None:
    config = render_recipe(stage, _preset(preset))
    assert config["stage"] == stage and config["template"] == read_preset(preset).template
    validate_recipe(config)


def test_export_needs_an_adapter_and_validates() -> None:
    with pytest.raises(RecipeError, match="give adapter_name_or_path"):
        render_recipe("export", _preset("tiny"))
    config = render_recipe("export", _preset("tiny"), adapter_name_or_path=["a/sft", "a/dpo"], output_dir="merged")
    assert config["adapter_name_or_path"] == "a/sft,a/dpo" and config["export_dir"] == "merged"
    validate_recipe(config)


@pytest.mark.parametrize("loss", ["sigmoid", "orpo", "simpo", "ipo", "hinge"])
def test_pref_losses(loss: str) -> None:
    config = render_recipe("dpo", _preset("tiny"), {"pref_loss": loss, "pref_beta": 0.2, "pref_ftx": 0.5})
    assert (config["pref_loss"], config["pref_beta"], config["pref_ftx"]) == (loss, 0.2, 0.5)
    assert ("simpo_gamma" in config) == (loss == "simpo")
    validate_recipe(config)


# ------------------------------------------------------------------ DPO after SFT


def test_dpo_after_sft_merges_and_trains_a_new_adapter() -> None:
    config = render_recipe("dpo", _preset("tiny"), adapter_name_or_path="saves/tiny/lora/sft")
    assert config["adapter_name_or_path"] == "saves/tiny/lora/sft"
    assert config["create_new_adapter"] is True
    assert "ref_model" not in config
    validate_recipe(config)


def test_dpo_after_sft_under_zero3_loads_the_sft_model_as_reference() -> None:
    """LF cannot merge under ZeRO-3: it resumes the adapter and disable_adapter() would be the raw base."""
    p = _preset("qwen3-coder-30b-a3b")
    config = render_recipe("dpo", p, adapter_name_or_path="saves/sft")
    assert config["adapter_name_or_path"] == config["ref_model_adapters"] == "saves/sft"
    assert config["ref_model"] == p.model_name_or_path
    assert "create_new_adapter" not in config
    assert config["deepspeed"].endswith("ds_z3_config.json")
    validate_recipe(config)
    with pytest.raises(RecipeError, match="single adapter"):
        render_recipe("dpo", p, adapter_name_or_path=["saves/sft", "saves/dpo"])
    # ZeRO-2 can merge: back to merge + new adapter, several adapters allowed
    config = render_recipe("dpo", p, {"deepspeed_stage": 2}, adapter_name_or_path=["saves/sft", "saves/dpo"])
    assert config["create_new_adapter"] is True and config["deepspeed"].endswith("ds_z2_config.json")


def test_adapters_need_lora() -> None:
    with pytest.raises(RecipeError, match="finetuning_type lora"):
        render_recipe("dpo", _preset("tiny"), {"finetuning_type": "full"}, adapter_name_or_path="saves/sft")


# ------------------------------------------------------------------------ overrides


def test_unknown_key_is_rejected_with_valid_keys() -> None:
    with pytest.raises(RecipeError) as err:
        render_recipe("sft", _preset("tiny"), {"learnin_rate": 1e-4})
    msg = str(err.value)
    assert "unknown key 'learnin_rate'" in msg and "Did you mean: learning_rate" in msg
    assert "per_device_train_batch_size" in msg and "deepspeed_stage" in msg  # LF args and preset fields listed


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"pref_loss": "sigmod"}, "invalid choice: 'sigmod'"),
        ({"learning_rate": "fast"}, "invalid float value: 'fast'"),
        ({"lora_rank": "eight"}, "invalid int value: 'eight'"),
        ({"pref_loss": "ipo", "dpo_label_smoothing": 0.1}, "`dpo_label_smoothing` is only valid for sigmoid"),
        ({"do_train": False, "do_eval": True}, "eval_dataset be provided"),
    ],
)
def test_bad_values_fail_with_llamafactory_message(override: dict, message: str) -> None:
    config = render_recipe("dpo", _preset("tiny"), override)
    with pytest.raises(RecipeError, match="LLaMA-Factory rejected the recipe") as err:
        validate_recipe(config)
    assert message in str(err.value)


def test_template_cannot_be_overridden() -> None:
    with pytest.raises(RecipeError, match="chat template comes from the preset"):
        render_recipe("sft", _preset("tiny"), {"template": "qwen"})
    render_recipe("sft", _preset("tiny"), {"template": "qwen3_nothink"})  # same value is fine


def test_preset_knobs_and_null_removes() -> None:
    config = render_recipe(
        "sft", _preset("qwen3-coder-30b-a3b"), {"precision": "fp32", "deepspeed_stage": None, "seed": None}
    )
    assert "bf16" not in config and "deepspeed" not in config
    assert "seed" not in config  # null = LLaMA-Factory's default: the key is left out
    with pytest.raises(PresetError, match="deepspeed_stage must be 2, 3 or null"):
        render_recipe("sft", _preset("tiny"), {"deepspeed_stage": 1})


def test_deepspeed_configs_exist_and_match_stage() -> None:
    for stage, offload in ((2, False), (3, False), (3, True)):
        config = render_recipe(
            "sft", _preset("qwen3-coder-30b-a3b"), {"deepspeed_stage": stage, "deepspeed_offload": offload}
        )
        ds = json.loads(Path(config["deepspeed"]).read_text())
        assert ds["zero_optimization"]["stage"] == stage
        assert ("offload_param" in ds["zero_optimization"]) == offload
        validate_recipe(config)


def test_validation_checks_deepspeed_file_and_datasets(tmp_path: Path, demo_datasets: Path) -> None:
    config = render_recipe("sft", _preset("qwen3-coder-30b-a3b"), deepspeed_dir="examples/lfkit/deepspeed")
    validate_recipe(config)  # relative path, no base_dir: where llamafactory-cli runs is unknown
    with pytest.raises(RecipeError, match=r"deepspeed config .* not found"):
        validate_recipe(config, base_dir=tmp_path)

    ok = render_recipe("dpo", _preset("tiny"), dataset_dir=str(demo_datasets))
    validate_recipe(ok)
    with pytest.raises(RecipeError, match="not a SFT"):
        validate_recipe(render_recipe("sft", _preset("tiny"), dataset="text2sql_dpo", dataset_dir=str(demo_datasets)))
    with pytest.raises(RecipeError, match="not a preference"):
        validate_recipe(render_recipe("rm", _preset("tiny"), dataset="text2sql_sft", dataset_dir=str(demo_datasets)))
    with pytest.raises(RecipeError, match="Undefined dataset nope"):
        validate_recipe(render_recipe("sft", _preset("tiny"), dataset="nope", dataset_dir=str(demo_datasets)))


def test_validation_leaves_rng_and_logging_alone() -> None:
    import random

    import torch
    import transformers

    verbosity = transformers.utils.logging.get_verbosity()
    torch.manual_seed(7)
    random.seed(7)
    expected = (torch.rand(3).tolist(), random.random())
    torch.manual_seed(7)
    random.seed(7)
    validate_recipe(render_recipe("sft", _preset("tiny"), {"seed": 123}))
    assert (torch.rand(3).tolist(), random.random()) == expected
    assert transformers.utils.logging.get_verbosity() == verbosity


# ----------------------------------------------------------------------------- writing


def test_write_recipe_round_trips_through_llamafactory_loader(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    config = render_recipe("dpo", _preset("tiny"), {"learning_rate": 5e-6}, adapter_name_or_path="s/sft")
    path = write_recipe(config, tmp_path / "r" / "dpo.yaml", header="hello\nworld")
    text = path.read_text()
    assert text.startswith("# hello\n# world\n")
    assert "### model" in text and "### train" in text
    # LLaMA-Factory reads recipes with OmegaConf (llamafactory.hparams.parser.read_args)
    assert OmegaConf.to_container(OmegaConf.load(path)) == config
    assert [p.name for p in path.parent.iterdir()] == ["dpo.yaml"]  # no temp files left


def test_write_recipe_refuses_invalid_and_keeps_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "sft.yaml"
    path.write_text("# my hand-edited recipe\n")
    bad = render_recipe("sft", _preset("tiny"), {"lr_scheduler_type": "wobbly"})
    with pytest.raises(RecipeError, match="invalid choice: 'wobbly'"):
        write_recipe(bad, path)
    assert path.read_text() == "# my hand-edited recipe\n"


def test_launch_script(tmp_path: Path) -> None:
    text = render_launch_script("qwen3-coder-30b-a3b", script_name="launch.sh")
    for var in ("FORCE_TORCHRUN", "NNODES", "NODE_RANK", "NPROC_PER_NODE", "MASTER_ADDR", "MASTER_PORT"):
        assert f'export {var}="${{{var}:-' in text
    assert 'NPROC_PER_NODE="${NPROC_PER_NODE:-8}"' in text
    script = tmp_path / "launch.sh"
    script.write_text(text)
    subprocess.run(["bash", "-n", str(script)], check=True)
    # without a recipe it stops with its usage line before launching anything
    res = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert res.returncode != 0 and "usage: bash launch.sh RECIPE.yaml" in res.stderr


# --------------------------------------------------------------------------------- CLI


def test_cli_list() -> None:
    res = CliRunner().invoke(main, ["render", "--list"])
    assert res.exit_code == 0, res.output
    for stage in STAGES:
        assert stage in res.output
    assert "qwen3-coder-30b-a3b" in res.output and "template=qwen3_nothink" in res.output


def test_cli_render_writes_validated_recipe(tmp_path: Path, tiny_model: Path, demo_datasets: Path) -> None:
    out = tmp_path / "dpo.yaml"
    args = ["render", "dpo", "--preset", "tiny", "--dataset-dir", str(demo_datasets), "--adapter", "saves/sft"]
    args += ["--set", "pref_beta=0.25", "--set", "learning_rate=5e-6", "--set", "max_steps=3", "-o", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    config = yaml.safe_load(out.read_text())
    assert config["model_name_or_path"] == str(tiny_model)
    assert (config["pref_beta"], config["learning_rate"], config["max_steps"]) == (0.25, 5e-6, 3)
    assert config["create_new_adapter"] is True
    assert "--set pref_beta=0.25" in out.read_text().splitlines()[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sft", "--preset", "tiny", "--set", "pref_los=orpo"], "Did you mean: pref_loss"),
        (["dpo", "--preset", "tiny", "--set", "pref_loss=bogus"], "invalid choice: 'bogus'"),
        (["sft", "--preset", "nope"], "unknown preset 'nope'"),
        (["sft", "--preset", "tiny", "--set", "novalue"], "expected key=value"),
        (["sft", "--preset", "tiny", "--set", "template=llama3"], "chat template comes from the preset"),
    ],
)
def test_cli_errors_are_messages_not_tracebacks(tmp_path: Path, tiny_model: Path, args: list, message: str) -> None:
    out = tmp_path / "x.yaml"
    res = CliRunner().invoke(main, ["render", *args, "-o", str(out)])
    assert res.exit_code != 0
    assert message in res.output
    assert "Traceback" not in res.output and not isinstance(res.exception, (RecipeError, KeyError, TypeError))
    assert not out.exists()

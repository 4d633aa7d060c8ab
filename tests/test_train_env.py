"""The runner keeps the user's environment (issue 26): devices, hub and cache settings reach
``llamafactory-cli`` as set; only the embedded CPU demo pins the CPU, where it starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from lfkit.cli import main
from lfkit.recipes import render_recipe, write_recipe
from lfkit.train import llamafactory_command, pin_demo_environment

HUB_MODEL = "Qwen/Qwen3-Coder-30B-A3B-Instruct"


@pytest.fixture
def user_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A GPU user's shell: four GPUs chosen, their own HF_HOME, hub online (nothing said)."""
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "LFKIT_DEMO_CUDA"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path


def _gpu_recipe(tmp_path: Path) -> Path:
    config = render_recipe("sft", "qwen3-coder-30b-a3b", output_dir=tmp_path / "saves" / "sft")
    assert config["model_name_or_path"] == HUB_MODEL
    return write_recipe(config, tmp_path / "sft.yaml")


def test_gpu_preset_stage_sees_the_users_devices_and_an_online_hub(user_env: Path) -> None:
    recipe = _gpu_recipe(user_env)
    argv, env = llamafactory_command(recipe)
    assert Path(argv[0]).name == "llamafactory-cli" and argv[1:] == ["train", str(recipe)]
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"
    assert env["HF_HOME"] == str(user_env / "hf")
    assert "HF_HUB_OFFLINE" not in env and "TRANSFORMERS_OFFLINE" not in env  # a hub id may need to download


def test_offline_and_no_devices_only_when_the_user_says_so(user_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = _gpu_recipe(user_env)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    _, env = llamafactory_command(recipe)
    assert env["HF_HUB_OFFLINE"] == "1" and "CUDA_VISIBLE_DEVICES" not in env


def test_local_model_goes_offline_but_keeps_the_devices(user_env: Path, tiny_model: Path) -> None:
    config = render_recipe("sft", "tiny", output_dir=user_env / "saves" / "sft")
    _, env = llamafactory_command(write_recipe(config, user_env / "sft.yaml"))
    assert env["HF_HUB_OFFLINE"] == "1"  # a local folder never needs the hub
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"


def test_iterate_dry_run_prints_the_environment_of_each_stage(user_env: Path) -> None:
    out = user_env / "dry"
    args = ["iterate", "--dry-run", "--preset", "qwen3-coder-30b-a3b", "--rounds", "1", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    merge = lines.index(f"llamafactory-cli export {out / 'recipes/round1/merge.yaml'}")
    dpo = lines.index(f"llamafactory-cli train {out / 'recipes/round1/dpo.yaml'}")
    # the merge loads the hub model: devices as set, hub online
    assert lines[merge - 1].startswith("# environment: CUDA_VISIBLE_DEVICES=0,1,2,3 HF_HUB_OFFLINE unset")
    assert f"HF_HOME={user_env / 'hf'}" in lines[merge - 1]
    assert yaml.safe_load((out / "recipes/round1/merge.yaml").read_text())["model_name_or_path"] == HUB_MODEL
    # DPO trains on round 0 merged, a local folder: offline, same devices
    assert lines[dpo - 1].startswith("# environment: CUDA_VISIBLE_DEVICES=0,1,2,3 HF_HUB_OFFLINE=1")


def test_the_cpu_demo_pins_cpu_where_it_starts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.delenv("LFKIT_DEMO_CUDA", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # refused options: the demo stops before any work, after pinning
    result = CliRunner().invoke(main, ["demo", "--full", "--n-prefs", "3", "--out", str(tmp_path / "unused")])
    assert result.exit_code == 2 and "--full does not take --n-prefs" in result.output
    assert not (tmp_path / "unused").exists()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "" and os.environ["HF_HUB_OFFLINE"] == "1"

    monkeypatch.setenv("LFKIT_DEMO_CUDA", "1")  # the demo on a GPU, asked for explicitly
    pin_demo_environment()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"

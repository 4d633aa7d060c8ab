"""`lfkit demo --model tiny` end to end: every stage's artefact, and numbers that come from the run's files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lfkit.errors import LfkitError
from lfkit.pipeline.config import DemoConfig, DemoLayout, demo_config, demo_settings
from lfkit.pipeline.report import verdict
from lfkit.pipeline.stages import StageError, check_settings
from lfkit.recipes.render import lora_target_last_layers


def test_demo_config_rejects_bad_sizes(tmp_path: Path) -> None:
    with pytest.raises(LfkitError, match="cannot exceed n_train"):
        demo_config("tiny", out=tmp_path, n_sft=10_000)
    with pytest.raises(ValueError, match="unknown demo model"):  # ConfigError is also a ValueError
        DemoConfig(model="gpt-5", out=tmp_path)
    with pytest.raises(LfkitError, match="learning rates must be > 0"):
        demo_config("tiny", out=tmp_path, sft_lr=0.0)


def test_demo_settings_decide_resuming(tmp_path: Path) -> None:
    # the output folder and --force are not settings: the same run may move or be forced
    assert demo_settings(demo_config("tiny", out=tmp_path / "a")) == demo_settings(
        demo_config("tiny", out=tmp_path / "b", force=True)
    )
    layout = DemoLayout(tmp_path)
    check_settings(layout, demo_settings(demo_config("tiny", out=tmp_path)))
    layout.stages.mkdir(parents=True)
    (layout.stages / "corpus.json").write_text("{}")
    check_settings(layout, demo_settings(demo_config("tiny", out=tmp_path)))  # same settings: resumes
    with pytest.raises(StageError, match=r"other settings \(dpo_lr .* -> 0\.5\).*--force"):
        check_settings(layout, demo_settings(demo_config("tiny", out=tmp_path, dpo_lr=0.5)))


def test_lora_target_names_only_the_last_layers(tiny_model: Path) -> None:
    target = lora_target_last_layers(tiny_model, 1).split(",")
    n_layers = json.loads((tiny_model / "config.json").read_text())["num_hidden_layers"]
    assert len(target) == 7
    assert all(t.startswith(f"layers.{n_layers - 1}.") for t in target)


def test_verdict_calls_small_changes_noise() -> None:
    stages = [
        {"name": "base", "ex": 10.0, "n": 100},
        {"name": "sft", "ex": 30.0, "n": 100},
        {"name": "dpo", "ex": 31.0, "n": 100},
    ]
    text = verdict(stages)
    assert "SFT improved dev EX by +20.0 points" in text
    assert "DPO improved dev EX by +1.0 points vs sft (within noise" in text


@pytest.mark.slow
def test_demo_tiny_end_to_end(tmp_path: Path, tiny_model: Path) -> None:
    from lfkit.eval import score_predictions

    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "lfkit.cli", "demo", "--model", "tiny", "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    report = json.loads((out / "report.json").read_text())
    assert [s["name"] for s in report["stages"]] == ["base", "sft", "dpo"]
    assert (out / "report.md").read_text().count("| base |") == 1
    for name in ("ex_by_stage.png", "loss.png"):
        assert (out / "report" / name).stat().st_size > 1000
    for recipe in ("sft.yaml", "dpo.yaml"):
        assert (out / "recipes" / recipe).exists()
    assert (out / "saves" / "sft" / "adapter_model.safetensors").exists()
    assert (out / "saves" / "dpo" / "adapter_model.safetensors").exists()
    # DPO continued from the SFT adapter (a new adapter on top of the merged SFT model)
    dpo_recipe = (out / "recipes" / "dpo.yaml").read_text()
    assert str((out / "saves" / "sft").resolve()) in dpo_recipe and "create_new_adapter: true" in dpo_recipe
    # Training figures come from LF's own files: every optimizer step logged, the final one counted.
    for stage in ("sft", "dpo"):
        trained = report["training"][stage]
        state = json.loads((out / "saves" / stage / "trainer_state.json").read_text())
        assert trained["steps"] == state["global_step"] == len(trained["loss_curve"]) > 0
        train_loss = json.loads((out / "saves" / stage / "train_results.json").read_text())["train_loss"]
        assert trained["mean_loss"] == round(train_loss, 4)
    assert report["training"]["dpo"]["last_accuracy"] is not None
    pairs = [json.loads(line) for line in (out / "data" / "demo_dpo.jsonl").read_text().splitlines()]
    assert len(pairs) == report["data"]["prefs"]["pairs"] > 0
    assert all(p["chosen"] != p["rejected"] for p in pairs)

    # The report's numbers are the run's own: re-scoring its BIRD-format predictions gives them back.
    for stage in report["stages"]:
        predictions = out / stage["predictions"]
        raw = json.loads(predictions.read_text())
        assert len(raw) == report["data"]["dev_questions"] == stage["n"]
        assert all("\t----- bird -----\t" in v for v in raw.values())
        again = score_predictions(predictions, out / "corpus" / "dev.json", out / "corpus" / "dev_databases")
        assert again["ex"] == stage["ex"]
        assert again["by_difficulty"] == stage["by_difficulty"]

    # A re-run finds every stage cached and rewrites the same table.
    rerun = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert rerun.stdout.count("cached") == 7
    assert json.loads((out / "report.json").read_text())["stages"] == report["stages"]
    # ... but not with other settings: the cached stages would mix two configurations.
    other = subprocess.run([*cmd, "--dpo-lr", "0.5"], capture_output=True, text=True, env=env, timeout=600)
    assert other.returncode != 0 and "dpo_lr" in other.stderr and "--force" in other.stderr

"""`lfkit demo --model tiny` end to end: every stage's artefact, and numbers that come from the run's files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lfkit.errors import LfkitError
from lfkit.pipeline.config import PROFILES, DemoConfig, demo_config, demo_settings
from lfkit.pipeline.layout import RunLayout
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
    layout = RunLayout(tmp_path)
    check_settings(layout, demo_settings(demo_config("tiny", out=tmp_path)))
    layout.stages.mkdir(parents=True)
    (layout.stages / "corpus.json").write_text("{}")
    check_settings(layout, demo_settings(demo_config("tiny", out=tmp_path)))  # same settings: resumes
    with pytest.raises(StageError, match=r"other settings \(dpo_lr .* -> 0\.5\).*--force"):
        check_settings(layout, demo_settings(demo_config("tiny", out=tmp_path, dpo_lr=0.5)))


def test_demo_defaults_are_what_the_demo_runs(tmp_path: Path) -> None:
    # the default model's profile overrides nothing: the dataclass defaults ARE the demo's settings
    assert PROFILES["smollm2-135m"] == {}
    cfg = DemoConfig(out=tmp_path)
    assert (cfg.n_dev, cfg.dpo_lr, cfg.max_new_tokens, cfg.n_sft, cfg.lora_last_layers) == (64, 5e-5, 128, 400, 8)
    assert demo_config("smollm2-135m", out=tmp_path) == cfg
    # a profile is a few overrides; an option given on the command line wins over it
    tiny = demo_config("tiny", out=tmp_path, dpo_lr=1e-4)
    assert tiny.dpo_lr == 1e-4 and tiny.n_sft == PROFILES["tiny"]["n_sft"] and tiny.pref_beta == cfg.pref_beta


def test_demo_options_come_from_the_fields(tmp_path: Path) -> None:
    from dataclasses import fields

    from click.testing import CliRunner

    from lfkit.cli import main

    help_text = "".join(CliRunner().invoke(main, ["demo", "--help"]).output.split())  # no wrapping
    for f in fields(DemoConfig):
        if f.name not in ("model", "out"):
            assert f"--{f.name.replace('_', '-')}" in help_text, f.name
            assert "".join(f.metadata["help"].split()) in help_text, f.name
    # an option of the full run alone is refused without --full, naming it, before anything is written
    result = CliRunner().invoke(main, ["demo", "--quick", "--rm-steps", "3", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--rm-steps need(s) --full" in result.output
    assert not (tmp_path / "o").exists()


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


def test_full_verdict_names_every_best_of_n_selector_against_greedy() -> None:
    from lfkit.pipeline.report import full_verdict

    stages = [{"name": "base", "ex": 5.0, "n": 120}, {"name": "sft", "ex": 50.0, "n": 120}]
    strategies = {k: {"ex": ex} for k, ex in (("greedy", 52.5), ("rm_top1", 42.5), ("rm_vote", 61.7), ("vote", 59.2))}
    text = full_verdict(stages, 0, {"n_candidates": 9, "questions": 120, "strategies": strategies})
    # in select.STRATEGIES' order, so the RM's weak top-1 is read beside its weighted vote
    assert "Best-of-9 on 120 dev questions: greedy 52.5; vote 59.2, rm_top1 42.5, rm_vote 61.7." in text
    assert "Best-of" not in full_verdict(stages, 0, None)


@pytest.mark.slow
def test_demo_tiny_end_to_end(tmp_path: Path, tiny_model: Path) -> None:
    from lfkit.eval import score_predictions

    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "lfkit.cli", "demo", "--model", "tiny", "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    report = json.loads((out / "report.json").read_text())
    cfg = demo_config("tiny", out=out)
    assert [s["name"] for s in report["stages"]] == ["base", "sft", "dpo"]
    markdown = (out / "report.md").read_text()
    for s in report["stages"]:  # the table shows each stage's own EX
        assert markdown.count(f"| {s['name']} | {s['ex']:.1f} |") == 1
    # The recipes are the profile's: its learning rates and DPO values, the demo's cutoff and seed.
    sft_recipe = yaml.safe_load((out / "recipes" / "sft.yaml").read_text())
    dpo_recipe = yaml.safe_load((out / "recipes" / "dpo.yaml").read_text())
    assert (sft_recipe["learning_rate"], dpo_recipe["learning_rate"]) == (cfg.sft_lr, cfg.dpo_lr)
    assert (dpo_recipe["pref_beta"], dpo_recipe["pref_loss"], dpo_recipe["pref_ftx"]) == (
        cfg.pref_beta,
        cfg.pref_loss,
        cfg.pref_ftx,
    )
    assert sft_recipe["cutoff_len"] == dpo_recipe["cutoff_len"] == cfg.cutoff_len and dpo_recipe["seed"] == cfg.seed
    assert sft_recipe["output_dir"] == str((out / "saves" / "sft").resolve())
    # DPO continued from the SFT adapter (a new adapter on top of the merged SFT model)
    assert dpo_recipe["adapter_name_or_path"] == str((out / "saves" / "sft").resolve())
    assert dpo_recipe["create_new_adapter"] is True
    # Training moved both adapters: LoRA's B matrices start at zero, so a trained adapter has non-zero ones.
    from safetensors.torch import load_file

    for stage in ("sft", "dpo"):
        tensors = load_file(out / "saves" / stage / "adapter_model.safetensors")
        lora_b = [t for name, t in tensors.items() if "lora_B" in name]
        assert lora_b and all(t.abs().sum() > 0 for t in lora_b), stage
    # The plots are images with something drawn on them (more colours than a blank canvas and its frame).
    from PIL import Image

    for name in ("ex_by_stage.png", "loss.png"):
        with Image.open(out / "report" / name) as png:
            assert png.format == "PNG" and len(png.getcolors(1 << 16) or []) > 2, name
    # report.html, the page a person opens: one EX row per stage, with that stage's own EX
    import re

    html = (out / "report.html").read_text()
    for s in report["stages"]:
        row = re.search(rf'<tr data-stage="{s["name"]}">(.*?)</tr>', html, re.S)
        assert row and f"{s['ex']:.1f}" in row.group(1), s["name"]
    # Training figures come from LF's own files: every optimizer step logged, the final one counted.
    for stage in ("sft", "dpo"):
        trained = report["training"][stage]
        state = json.loads((out / "saves" / stage / "trainer_state.json").read_text())
        assert trained["steps"] == state["global_step"] == len(trained["loss_curve"]) > 0
        logged = [[r["step"], r["loss"]] for r in state["log_history"] if "loss" in r]
        assert trained["loss_curve"] == logged
        train_loss = json.loads((out / "saves" / stage / "train_results.json").read_text())["train_loss"]
        assert trained["mean_loss"] == round(train_loss, 4)
    dpo_state = json.loads((out / "saves" / "dpo" / "trainer_state.json").read_text())
    last = [r for r in dpo_state["log_history"] if "loss" in r][-1]
    assert report["training"]["dpo"]["reward_accuracy"] == last["rewards/accuracies"]
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

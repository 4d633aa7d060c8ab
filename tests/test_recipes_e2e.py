"""End to end on CPU: rendered SFT -> DPO -> RM -> export recipes run through `llamafactory-cli`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lfkit.recipes import render_recipe, write_recipe
from lfkit.train import TrainResult, run_llamafactory

pytestmark = pytest.mark.slow

# A few optimizer steps on short sequences: enough to prove each stage runs and writes its outputs.
FAST = {"max_steps": 2, "cutoff_len": 256, "per_device_train_batch_size": 1, "logging_steps": 1, "save_steps": 1000}


@pytest.fixture(autouse=True)
def _two_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # run_llamafactory's environment is ours: CI's two threads
    monkeypatch.setenv("OMP_NUM_THREADS", "2")


def _llamafactory(recipe: Path, cwd: Path) -> TrainResult:
    return run_llamafactory(recipe, cwd / f"{recipe.stem}.log", progress=False, cwd=cwd)


def _lora_b_norm(adapter_dir: Path) -> float:
    from safetensors.torch import load_file

    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    return float(sum(t.float().norm() for name, t in weights.items() if "lora_B" in name))


def test_sft_dpo_rm_export_with_tiny(tiny_model: Path, demo_datasets: Path, tmp_path: Path) -> None:
    work = tmp_path
    sft_dir, dpo_dir, rm_dir, merged = work / "sft", work / "dpo", work / "rm", work / "merged"
    common = {"dataset_dir": str(demo_datasets)}

    # ---- SFT
    sft = render_recipe("sft", "tiny", FAST, output_dir=sft_dir, **common)
    assert sft["model_name_or_path"] == str(tiny_model)
    trained = _llamafactory(write_recipe(sft, work / "sft.yaml", base_dir=work), work)
    # the result is LF's own files: 2 steps, each logged, mean loss = train_results.json's train_loss
    assert trained.command == "train" and trained.output_dir == sft_dir
    assert trained.steps == 2 and [step for step, _ in trained.losses] == [1, 2]
    train_loss = json.loads((sft_dir / "train_results.json").read_text())["train_loss"]
    assert trained.mean_loss == train_loss == pytest.approx(sum(loss for _, loss in trained.losses) / 2, abs=1e-3)
    assert trained.reward_accuracy is None  # SFT logs no rewards
    config = json.loads((sft_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model)
    assert _lora_b_norm(sft_dir) > 0  # LoRA B starts at zero: the SFT adapter really moved the model

    # ---- DPO from the SFT adapter
    dpo = render_recipe("dpo", "tiny", FAST, output_dir=dpo_dir, adapter_name_or_path=sft_dir, **common)
    trained = _llamafactory(write_recipe(dpo, work / "dpo.yaml", base_dir=work), work)
    log = trained.log_path.read_text()
    assert "Merged 1 adapter(s)." in log
    assert f"Loaded adapter(s): {sft_dir}" in log
    assert (dpo_dir / "adapter_model.safetensors").is_file()
    first = trained.log_history[0]
    assert trained.reward_accuracy == trained.log_history[1]["rewards/accuracies"]
    # Step 1: the new adapter is zero, so the policy is exactly the SFT model. Rewards of 0 and a loss
    # of log 2 mean the reference is that same model; a raw-base reference would give non-zero rewards
    # (the SFT adapter above is non-zero).
    assert first["rewards/chosen"] == pytest.approx(0.0, abs=1e-6)
    assert first["rewards/rejected"] == pytest.approx(0.0, abs=1e-6)
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-3)

    # ---- reward model on the same pairs
    rm = render_recipe("rm", "tiny", FAST, output_dir=rm_dir, **common)
    _llamafactory(write_recipe(rm, work / "rm.yaml", base_dir=work), work)
    assert (rm_dir / "value_head.safetensors").is_file()
    assert (rm_dir / "adapter_model.safetensors").is_file()

    # ---- export: merge SFT + DPO into a plain model
    export = render_recipe("export", "tiny", adapter_name_or_path=[sft_dir, dpo_dir], output_dir=merged)
    exported = _llamafactory(write_recipe(export, work / "export.yaml", base_dir=work), work)
    assert exported.command == "export" and exported.output_dir == merged and exported.steps == 0

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(merged)
    model = AutoModelForCausalLM.from_pretrained(merged)
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    changed = [
        name
        for name, p in model.named_parameters()
        if "q_proj" in name and not torch.equal(p, dict(base.named_parameters())[name])
    ]
    assert changed, "merged model equals the base: the adapters were not merged"
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "How many players?"}], add_generation_prompt=True, return_tensors="pt"
    )
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6, do_sample=False)
    assert out.shape[1] > prompt.shape[1]

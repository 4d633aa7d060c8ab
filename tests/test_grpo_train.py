"""`lfkit grpo train` on the tiny model: the SFT merge, prompts, guarded rewards, 2 steps, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from lfkit.cli import main
from lfkit.grpo.data import render_prompts
from lfkit.grpo.rewards import guarded
from lfkit.grpo.start import prepare_start_model
from lfkit.recipes.grpo import dump_grpo_config, render_grpo
from lfkit.recipes.grpo_config import parse_grpo_config
from lfkit.train import merge_adapter


def make_adapter(model_dir: Path, out: Path) -> Path:
    """A LoRA with random (non-zero) B on the tiny model: merging it changes the weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    peft.save_pretrained(out)
    return out


def test_merge_is_base_plus_adapter_and_done_once(tiny_model: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = make_adapter(tiny_model, tmp_path / "sft")
    merged = merge_adapter(tiny_model, adapter, tmp_path / "sft-merged")
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        want = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), str(adapter))(ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_model)(ids).logits
        got = AutoModelForCausalLM.from_pretrained(merged)(ids).logits
    assert torch.allclose(got, want, atol=1e-4) and not torch.allclose(got, base, atol=1e-3)
    assert (merged / "lfkit_model.json").is_file()  # the template travels with the merged model
    config = render_grpo("tiny", dataset="d.jsonl", sft_adapter=adapter)
    config["model_name_or_path"] = str(merged)
    settings = parse_grpo_config(config)
    stamp = (merged / "model.safetensors").stat().st_mtime_ns
    assert prepare_start_model(settings) == merged
    assert (merged / "model.safetensors").stat().st_mtime_ns == stamp  # up to date: not merged again


def test_prompts_use_the_llamafactory_template(tmp_path: Path) -> None:
    from lfkit.generate.prompts import PromptEncoder
    from lfkit.models.embedded import prepare_model

    encoder = PromptEncoder(prepare_model("smollm2-135m"), "smollm2")
    rows = render_prompts([{"prompt": [{"role": "user", "content": "hi"}], "gold_sql": "SELECT 1"}], encoder)
    # LLaMA-Factory's smollm2 template (SFT saw it); the tokenizer's own chat template lacks the full stop
    assert rows[0]["prompt"].startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by")
    assert "Hugging Face.<|im_end|>" in rows[0]["prompt"]
    assert rows[0]["prompt"].endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def test_a_raising_reward_scores_zero_and_is_counted() -> None:
    errors: dict[str, int] = {}

    def broken(prompts, completions, **columns):
        raise RuntimeError("boom")

    def partial(prompts, completions, **columns):
        return [None, float("nan"), 0.5]

    assert guarded(broken, errors)(None, ["a", "b"]) == [0.0, 0.0]
    assert errors == {"broken": 1}
    assert guarded(partial, errors)(None, ["a", "b", "c"]) == [0.0, 0.0, 0.5]
    assert guarded(partial, errors).__name__ == "partial"


@pytest.mark.slow
def test_tiny_grpo_two_steps_best_model_and_resume(tiny_model: Path, demo_corpus: Path, tmp_path: Path) -> None:
    from lfkit.data.grpo import grpo_rows_from_bird
    from lfkit.data.prompts import SchemaPromptBuilder
    from lfkit.io import write_rows

    train = grpo_rows_from_bird(demo_corpus, "train", SchemaPromptBuilder(n_examples=0), limit=7)
    bad = {"prompt": train[0]["prompt"], "question_id": "bad", "db_id": "lahman", "type": "sql"}  # no db, no gold
    write_rows(tmp_path / "train.jsonl", [*train, bad])
    write_rows(
        tmp_path / "dev.jsonl", grpo_rows_from_bird(demo_corpus, "dev", SchemaPromptBuilder(n_examples=0), limit=4)
    )
    adapter = make_adapter(tiny_model, tmp_path / "sft")
    out = tmp_path / "out"
    overrides = {
        "max_steps": 2,
        "max_completion_length": 16,
        "save_steps": 1,
        "lfkit.dev_file": str(tmp_path / "dev.jsonl"),
        "lfkit.dev_every": 1,
        "lfkit.dev_size": 4,
        "lfkit.dev_max_new_tokens": 8,
        "lfkit.reward_workers": 0,
    }
    config = render_grpo("tiny", overrides, dataset=tmp_path / "train.jsonl", output_dir=out, sft_adapter=adapter)
    cfg = tmp_path / "grpo.yaml"
    cfg.write_text(dump_grpo_config(config))

    res = CliRunner().invoke(main, ["grpo", "train", str(cfg)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "lfkit_grpo_summary.json").read_text())
    assert summary["steps"] == 2 and summary["reward_errors"] == {}
    assert (out / "adapter_model.safetensors").is_file()  # the GRPO LoRA, on top of the merged SFT model
    assert (tmp_path / "sft-merged" / "config.json").is_file()
    assert (out / "best_model" / "adapter_model.safetensors").is_file()
    best = json.loads((out / "best_model" / "lfkit_best.json").read_text())
    assert [d["step"] for d in summary["dev"]] == [0, 1, 2]
    # best_model/ is the first evaluation with the highest dev EX (a later tie does not replace it)
    top = max(d["ex"] for d in summary["dev"])
    assert best["dev_n"] == 4 and best["dev_ex"] == top
    assert best["step"] == next(d["step"] for d in summary["dev"] if d["ex"] == top)
    log = [json.loads(line) for line in (out / "grpo_log.jsonl").read_text().splitlines()]
    trained = [r for r in log if "reward" in r]
    assert [r["step"] for r in trained] == [1, 2]
    # the logged total is the config's weighted sum of the logged per-reward means
    weights = dict(zip(config["reward_funcs"], config["reward_weights"], strict=True))
    for r in trained:
        parts = {name.rsplit(".", 1)[-1].removesuffix("_reward"): w for name, w in weights.items()}
        assert r["reward"] == pytest.approx(sum(w * r[f"rewards/{n}/mean"] for n, w in parts.items()), abs=1e-5)
    assert (out / "samples.jsonl").read_text().strip()
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()

    # resume from the checkpoint for one more step
    raw = yaml.safe_load(cfg.read_text())
    raw["max_steps"] = 3
    cfg3 = tmp_path / "grpo3.yaml"
    cfg3.write_text(yaml.safe_dump(raw, allow_unicode=True))
    res = CliRunner().invoke(main, ["grpo", "train", str(cfg3), "--resume", str(out / "checkpoint-2")])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "lfkit_grpo_summary.json").read_text())
    assert summary["steps"] == 3 and summary["resumed_from"].endswith("checkpoint-2")
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3

    # the best model, evaluated: EX by difficulty and the seed's metrics
    report_path = tmp_path / "evaluation_report.json"
    args = ["grpo", "eval", "--model", str(tmp_path / "sft-merged"), "--adapter", str(out / "best_model")]
    args += ["--test-file", str(tmp_path / "dev.jsonl"), "--output", str(report_path), "--max-new-tokens", "8"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    report = json.loads(report_path.read_text())
    assert report["summary"]["n"] == report["summary"]["ex_n"] == 4
    assert set(report["summary"]["ex_by_difficulty"]) <= {"simple", "moderate", "challenging"}
    metrics = ("type_accuracy", "sql_validity", "reasoning_quality", "self_assessment_accuracy", "issue_detection_rate")
    for key in metrics:
        assert 0.0 <= report["summary"][key] <= 100.0
    assert len(report["examples"]) == 4 and "error_analysis" in report


def test_gold_guide_puts_the_gold_answer_in_every_all_wrong_group(
    tiny_model: Path, demo_corpus: Path, tmp_path: Path
) -> None:
    """The tiny random model never answers right, so every group with a gold gets the gold as its
    last completion (reward 1.0); the row without a gold is left as sampled."""
    from lfkit.data.grpo import grpo_rows_from_bird
    from lfkit.data.prompts import SchemaPromptBuilder
    from lfkit.grpo.guide import gold_completion
    from lfkit.io import write_rows

    train = grpo_rows_from_bird(demo_corpus, "train", SchemaPromptBuilder(n_examples=0), limit=3)
    bad = {"prompt": train[0]["prompt"], "question_id": "bad", "db_id": "lahman", "type": "sql"}  # no db, no gold
    write_rows(tmp_path / "train.jsonl", [*train, bad])
    out = tmp_path / "out"
    overrides = {
        "max_steps": 1,
        "max_completion_length": 96,  # room for the gold answer (a longer gold is not guided)
        "per_device_train_batch_size": 16,
        "num_generations": 4,
        "lfkit.gold_guide": True,
        "warmup_ratio": 0.0,  # a one-step run: warmup would make its only learning rate 0
        "lfkit.samples_per_log": 16,
        "lfkit.reward_workers": 0,
    }
    config = render_grpo("tiny", overrides, dataset=tmp_path / "train.jsonl", output_dir=out)
    cfg = tmp_path / "grpo.yaml"
    cfg.write_text(dump_grpo_config(config))

    res = CliRunner().invoke(main, ["grpo", "train", str(cfg)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "lfkit_grpo_summary.json").read_text())
    assert summary["guided_groups"] == 3 and summary["reward_errors"] == {}
    step = next(r for r in map(json.loads, (out / "grpo_log.jsonl").read_text().splitlines()) if "reward" in r)
    assert step["guided/groups"] == 3.0
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()][:16]  # step 1's
    golds = {gold_completion(row["gold_sql"]) for row in train}
    guided = [s for s in samples if s["completion"] in golds]
    assert len(guided) == 3 and all(s["rewards"]["execution"] == 1.0 for s in guided)
    assert all(s["rewards"]["execution"] < 1.0 for s in samples if s not in guided)
    # the logged reward is the samples' (all 16 logged): the guided golds raised it above 0
    mean = sum(s["rewards"]["execution"] for s in samples) / len(samples)
    assert step["rewards/execution/mean"] == pytest.approx(mean, abs=1e-4) and mean >= 3 / 16
    # and the policy moved: LoRA B starts at zero, so a non-zero B is a gradient step from the golds
    from safetensors.torch import load_file

    lora_b = [t for name, t in load_file(out / "adapter_model.safetensors").items() if "lora_B" in name]
    assert lora_b and max(float(t.abs().max()) for t in lora_b) > 0

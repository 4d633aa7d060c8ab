"""GRPO rows: the SFT prompt as chat messages, gold/db/type columns, SFT-row input, the seed's files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lfkit.cli import main
from lfkit.data.grpo import (
    grpo_rows_from_bird,
    grpo_rows_from_sft,
    read_grpo_rows,
    read_seed_rows,
    seed_to_grpo_rows,
    write_seed_rows,
)
from lfkit.data.prompts import SchemaPromptBuilder, chat_messages
from lfkit.io import DataFileError, read_rows


def test_bird_rows_carry_the_sft_prompt_gold_db_and_type(bird_corpus: Path, tmp_path: Path) -> None:
    rows = grpo_rows_from_bird(bird_corpus, "dev", SchemaPromptBuilder(n_examples=0))
    sft = tmp_path / "sft.json"
    res = CliRunner().invoke(main, ["data", "sft", "--bird-dir", str(bird_corpus), "--split", "dev", "--out", str(sft)])
    assert res.exit_code == 0, res.output
    sft_rows = read_rows(sft)
    assert len(rows) == len(sft_rows) == 2
    for row in rows:
        assert set(row) == {"prompt", "question_id", "db_id", "db_path", "gold_sql", "difficulty", "question", "type"}
        assert isinstance(row["question_id"], str)
        assert Path(row["db_path"]).is_absolute() and Path(row["db_path"]).is_file()
        assert row["type"] in ("sql", "多步推理")
        assert row["question"] in row["prompt"][0]["content"]
    # the prompt is exactly the SFT prompt of `lfkit data sft` with the same builder options (n_examples 3 here)
    rows3 = grpo_rows_from_bird(bird_corpus, "dev")
    for row, s in zip(rows3, sft_rows, strict=True):
        assert row["prompt"] == chat_messages(s["instruction"], s["input"])
        assert row["question_id"] == str(s["question_id"])
    # and from the SFT rows themselves: same prompt, gold, db, question
    from_sft = grpo_rows_from_sft(sft, bird_corpus / "dev_databases")
    for a, b in zip(rows3, from_sft, strict=True):
        assert {k: v for k, v in a.items() if k != "difficulty"} == {k: v for k, v in b.items() if k != "difficulty"}
        assert b["difficulty"] == "unknown"


def test_type_is_the_classifiers_label_of_gold(demo_corpus: Path) -> None:
    rows = grpo_rows_from_bird(demo_corpus, "dev", SchemaPromptBuilder(n_examples=0))
    by_sql = {r["gold_sql"]: r["type"] for r in rows}
    multi = [sql for sql, t in by_sql.items() if t == "多步推理"]
    simple = [sql for sql, t in by_sql.items() if t == "sql"]
    assert multi and simple
    # hand-checked: a multi-step gold has a subquery, set operation, HAVING, CTE or 2+ joins
    for sql in multi:
        up = sql.upper()
        assert up.count("SELECT") > 1 or " HAVING " in up or up.count(" JOIN ") >= 2 or up.startswith("WITH")
    for sql in simple:
        assert sql.upper().count("SELECT") == 1 and " HAVING " not in sql.upper()


def test_seed_files_round_trip_and_errors_name_row_and_field(tmp_path: Path) -> None:
    src = tmp_path / "seed.json"
    src.write_text(
        json.dumps(
            [
                {
                    "query": "今年的总线索量是多少？",
                    "response": "<think>\n按年份过滤\n</think>\n\n<answer>\nSELECT COUNT(*) FROM leads WHERE year = 2025\n</answer>",  # noqa: E501
                    "type": "sql",
                },
                {
                    "query": "Q2",
                    "response": "<think>t</think><answer>WITH a AS (SELECT 1) SELECT * FROM a</answer>",
                    "type": "multi-step",
                },
            ],
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    rows = read_seed_rows(src)
    assert [r.type for r in rows] == ["sql", "多步推理"]
    assert rows[0].sql == "SELECT COUNT(*) FROM leads WHERE year = 2025" and rows[0].think == "按年份过滤"
    out = tmp_path / "out.jsonl"
    write_seed_rows(out, rows)
    assert read_seed_rows(out) == rows
    grpo = seed_to_grpo_rows(rows)
    assert grpo[0]["prompt"] == [{"role": "user", "content": "今年的总线索量是多少？"}]
    assert grpo[1]["type"] == "多步推理" and grpo[1]["db_path"] == ""

    bad = tmp_path / "bad.jsonl"
    for row, field in (
        ({"query": "q", "response": "<answer>x</answer>", "type": "sql"}, "response"),
        ({"query": "q", "response": "<think>t</think><answer>x</answer>", "type": "hard"}, "type"),
        ({"query": "", "response": "<think>t</think><answer>x</answer>", "type": "sql"}, "query"),
    ):
        bad.write_text(
            json.dumps({"query": "ok", "response": "<think>a</think><answer>b</answer>", "type": "sql"})
            + "\n"
            + json.dumps(row)
            + "\n"
        )
        with pytest.raises(DataFileError, match=rf"bad.jsonl: row 1: field '{field}'"):
            read_seed_rows(bad)


def test_read_grpo_rows_checks_prompt_and_optionally_gold(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps({"prompt": [{"role": "user", "content": "q"}], "gold_sql": "SELECT 1"}) + "\n")
    assert len(read_grpo_rows(path)) == 1
    with pytest.raises(DataFileError, match="row 0: field 'db_path'"):
        read_grpo_rows(path, require_gold=True)
    path.write_text(json.dumps({"prompt": [{"role": "user"}]}) + "\n")
    with pytest.raises(DataFileError, match="row 0: field 'prompt'"):
        read_grpo_rows(path)


def test_cli_data_grpo(bird_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "grpo.jsonl"
    args = ["data", "grpo", "--bird-dir", str(bird_corpus), "--split", "dev", "--out", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "wrote 2 rows" in res.output and len(read_grpo_rows(out, require_gold=True)) == 2
    res = CliRunner().invoke(main, [*args, "--seed-format", "--out", str(tmp_path / "seed.json")])
    assert res.exit_code == 0, res.output
    assert len(read_seed_rows(tmp_path / "seed.json")) == 2
    res = CliRunner().invoke(main, ["data", "grpo", "--out", str(out)])
    assert res.exit_code != 0 and "either a corpus" in res.output

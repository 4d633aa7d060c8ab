"""`lfkit data sft` and `lfkit data lengths`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from lfkit.cli import main
from lfkit.data.bird import load_bird
from lfkit.data.prompts import SchemaPromptBuilder, format_sql_answer
from lfkit.data.sft import SFTOptions, build_sft, select_examples
from lfkit.io import read_rows
from lfkit.sql import execute_sql, extract_sql
from lfkit.sql.shape import skeleton


def test_rows_match_the_contract(bird_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "sft.json"
    stats = build_sft(bird_corpus, "train", out)
    rows = json.loads(out.read_text(encoding="utf-8"))  # a JSON array by extension
    assert stats["rows"] == 4 and stats["databases"] == 2 and stats["dropped"] == {}
    assert [list(r) for r in rows] == [["instruction", "input", "output", "question_id", "db_id"]] * 4
    examples = load_bird(bird_corpus, "train")
    builder = SchemaPromptBuilder()
    for row, example in zip(rows, examples, strict=True):
        assert (row["instruction"], row["input"]) == builder.build(example)
        assert row["output"] == format_sql_answer(example.gold_sql)
        assert (row["question_id"], row["db_id"]) == (example.question_id, example.db_id)
        # the SQL read back from the target is the gold SQL
        assert extract_sql(row["output"]) == example.gold_sql


def test_check_gold_drops_failing_rows(bird_corpus: Path, tmp_path: Path, caplog) -> None:
    out = tmp_path / "sft.jsonl"
    with caplog.at_level("WARNING", logger="lfkit"):
        stats = build_sft(bird_corpus, "train", out, options=SFTOptions(check_gold=True, workers=0))
    assert stats["rows"] == 3 and stats["dropped"] == {"error": 1}
    assert "dropped 1 of 4 rows whose gold SQL does not execute (error: 1); question_ids: 3" in caplog.text
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["question_id"] for line in lines] == [0, 1, 2]  # JSONL by extension
    for row in read_rows(out):
        db = bird_corpus / "train_databases" / row["db_id"] / f"{row['db_id']}.sqlite"
        assert execute_sql(db, extract_sql(row["output"])).ok


def test_limit_and_seeded_sample(bird_corpus: Path, demo_corpus: Path) -> None:
    examples = load_bird(demo_corpus, "train")
    assert [e.question_id for e in select_examples(examples, 5, None)] == [0, 1, 2, 3, 4]
    a = [e.question_id for e in select_examples(examples, 20, 7)]
    assert a == [e.question_id for e in select_examples(examples, 20, 7)]  # reproducible
    assert a == sorted(a) and a != list(range(20)) and len(set(a)) == 20
    assert a != [e.question_id for e in select_examples(examples, 20, 8)]
    with pytest.raises(ValueError, match="limit must be positive"):
        SFTOptions(limit=0)


def test_by_template_sample_keeps_each_template_in_proportion(demo_corpus: Path, tmp_path: Path) -> None:
    """The rows kept and those left out both hold every template in its share (what --round-questions unseen
    samples); a plain random sample of the same size leaves some templates nearly all in or all out."""
    examples = load_bird(demo_corpus, "train")
    everyone = Counter(skeleton(e.gold_sql) for e in examples)
    limit = len(examples) * 3 // 4

    def spread(kept: list) -> tuple[int, int]:
        counts = Counter(skeleton(e.gold_sql) for e in kept)
        off = [counts[t] - limit * n / len(examples) for t, n in everyone.items()]
        left_out = min(n - counts[t] for t, n in everyone.items())
        return max(abs(x) for x in off), left_out

    strat = select_examples(examples, limit, 0, by_template=True)
    assert len(strat) == limit and strat == select_examples(examples, limit, 0, by_template=True)
    ids = [e.question_id for e in strat]
    assert ids == sorted(ids) and len(set(ids)) == limit
    worst, fewest_left = spread(strat)
    assert worst < 1 and fewest_left >= min(everyone.values()) // 4 >= 2  # every template left out 1/4 of its rows
    plain_worst, _ = spread(select_examples(examples, limit, 0))
    assert plain_worst > 2
    assert ids != [e.question_id for e in select_examples(examples, limit, 1, by_template=True)]
    out = tmp_path / "sft.json"
    args = ["data", "sft", "--bird-dir", str(demo_corpus), "--split", "train", "--out", str(out), "--limit", str(limit)]
    result = CliRunner().invoke(main, [*args, "--sample-seed", "0", "--by-template"])
    assert result.exit_code == 0, result.output
    assert [r["question_id"] for r in read_rows(out)] == ids
    unseeded = CliRunner().invoke(main, [*args, "--by-template"])
    assert unseeded.exit_code == 1 and "by_template draws a seeded sample: give it a limit and a sample_seed" in (
        unseeded.output
    )


def test_output_file_is_replaced_atomically(bird_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "sft.json"
    out.parent.mkdir()
    out.write_text("precious", encoding="utf-8")
    rows = json.loads((bird_corpus / "train.json").read_text(encoding="utf-8"))
    rows[3]["db_id"] = "school_broken"
    (bird_corpus / "train.json").write_text(json.dumps(rows), encoding="utf-8")
    with pytest.raises(Exception, match=r"row 3: field 'db_id': db_id 'school_broken' has no folder"):
        build_sft(bird_corpus, "train", out)
    assert out.read_text(encoding="utf-8") == "precious"  # a failed run never touches the output
    assert list(out.parent.iterdir()) == [out]  # and leaves no temporary file behind
    build_sft(bird_corpus, "dev", out)
    assert len(read_rows(out)) == 2 and list(out.parent.iterdir()) == [out]


def test_cli_sft(bird_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "data" / "sft.json"
    args = ["data", "sft", "--bird-dir", str(bird_corpus), "--split", "train", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--check-gold", "--workers", "0", "--max-chars", "700"])
    assert result.exit_code == 0, result.output
    assert "wrote 3 rows from 2 database(s)" in result.output and "'error': 1" in result.output
    assert "prompts were shortened to fit max_chars=700" in result.output
    assert len(read_rows(out)) == 3
    limited = CliRunner().invoke(main, [*args, "--limit", "2", "--sample-seed", "1"])
    assert limited.exit_code == 0 and "wrote 2 rows" in limited.output
    missing = CliRunner().invoke(main, [*args[:-4], "--split", "test", "--out", str(out)])
    assert missing.exit_code == 1 and "test.json: file not found" in missing.output
    assert "Traceback" not in missing.output
    no_tok = CliRunner().invoke(main, [*args, "--max-tokens", "100"])
    assert no_tok.exit_code == 2 and "--max-tokens needs --tokenizer" in no_tok.output


def test_lengths_match_llamafactory_tokenization(demo_corpus: Path, tiny_model: Path, tmp_path: Path) -> None:
    """Lengths with --template are the lengths LLaMA-Factory's SFT preprocessing produces."""
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.data.processor import SupervisedDatasetProcessor
    from llamafactory.hparams import DataArguments
    from transformers import AutoTokenizer

    from lfkit.data.lengths import length_report
    from lfkit.data.prompts import chat_messages

    sft = tmp_path / "sft.json"
    build_sft(demo_corpus, "dev", sft, SchemaPromptBuilder(n_examples=0), SFTOptions(limit=12))
    rows = read_rows(sft)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    data_args = DataArguments(template="qwen3_nothink", cutoff_len=100_000)
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    processor = SupervisedDatasetProcessor(template=template, tokenizer=tokenizer, processor=None, data_args=data_args)
    lf_lengths = []
    for r in rows:
        messages = chat_messages(r["instruction"], r["input"], r["output"])
        input_ids, _labels = processor._encode_data_example(messages[:1], messages[1:], "", "", [], [], [])
        lf_lengths.append(len(input_ids))
    cutoff = sorted(lf_lengths)[6]
    (report,) = length_report([sft], tiny_model, cutoff, template="qwen3_nothink")
    assert (report.rows, report.min, report.max) == (12, min(lf_lengths), max(lf_lengths))
    assert report.over_cutoff == sum(n > cutoff for n in lf_lengths) > 0


def test_cli_lengths(demo_corpus: Path, tiny_model: Path, tmp_path: Path) -> None:
    sft = tmp_path / "sft.json"
    dpo = tmp_path / "dpo.jsonl"
    build_sft(demo_corpus, "dev", sft, SchemaPromptBuilder(n_examples=0), SFTOptions(limit=8))
    pairs = [
        {**{k: r[k] for k in ("instruction", "input")}, "chosen": r["output"], "rejected": "```sql\nSELECT 1\n```"}
        for r in read_rows(sft)
    ]
    dpo.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    args = ["data", "lengths", "--file", str(sft), "--file", str(dpo), "--tokenizer", str(tiny_model)]
    result = CliRunner().invoke(main, [*args, "--cutoff", "64", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [r["rows"] for r in report] == [8, 8] and [r["over_cutoff"] for r in report] == [8, 8]
    table = CliRunner().invoke(main, [*args, "--cutoff", "100000"])
    assert table.exit_code == 0 and "over cutoff" in table.output and "lose the end" not in table.output
    bad = CliRunner().invoke(main, [*args[:-2], "--tokenizer", "no-such-model", "--cutoff", "10"])
    assert bad.exit_code == 2 and "neither a folder nor an embedded model" in bad.output

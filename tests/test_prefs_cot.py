"""lfkit prefs cot: only traces whose final SQL executes to gold's result become CoT rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from prefs_canned import CannedBackend, gold_by_prompt, variants

from lfkit.cli import main
from lfkit.io import read_rows
from lfkit.prefs import COT_INSTRUCTION, CotConfig, JobError, build_cot, format_trace, split_trace
from lfkit.prefs.cot import REFERENCE_NOTE
from lfkit.registry import validate_data_file
from lfkit.sql import execute_sql, extract_sql, results_match


def traces(gold: str) -> list[str]:
    v = variants(gold)
    return [
        # correct, written differently from gold
        "<think>\nThe question names one team and one season, so filter Teams on both.\n</think>\n\n"
        + v["correct_rewrite"],
        # wrong result
        f"<think>Maybe nothing matches.</think>\n{v['wrong']}",
        # right SQL but no reasoning block: not a CoT trace
        v["correct_rewrite"],
        # empty reasoning
        f"<think>\n\n</think>\n{v['correct_rewrite']}",
        # reasoning, then a broken query
        f"<think>\nUse the salaries table.\n</think>\n{v['error']}",
        # reasoning without any SQL
        "<think>\nHard to say.\n</think>\nI cannot write this query.",
    ]


def canned(demo_sft: Path) -> CannedBackend:
    golds = gold_by_prompt(demo_sft)

    def answer(user_text: str, j: int) -> str:
        # the CoT prompt swaps the instruction: find the question by its input part
        key = next(k for k in golds if k.split("\n", 1)[1] in user_text)
        return traces(golds[key])[j % 6]

    return CannedBackend(answer)


def make_cfg(demo_sft: Path, demo_corpus: Path, tmp_path: Path, **kw) -> CotConfig:
    base = dict(
        sft_data=str(demo_sft),
        db_root=str(demo_corpus / "train_databases"),
        output=str(tmp_path / "cot.json"),
        pairs_output=str(tmp_path / "cot_pairs.jsonl"),
        num_samples=6,
        max_samples=5,
        workers=0,
    )
    return CotConfig(**{**base, **kw})


def test_split_trace() -> None:
    assert split_trace("<think>\n a \n</think>\nSELECT 1") == ("a", "\nSELECT 1")
    assert split_trace("opened in the prompt</think>SELECT 1") == ("opened in the prompt", "SELECT 1")
    assert split_trace("<think></think>SELECT 1") is None
    assert split_trace("SELECT 1") is None
    assert format_trace(" r ", "SELECT 1") == "<think>\nr\n</think>\n\n```sql\nSELECT 1\n```"


def test_only_execution_correct_traces_are_kept(demo_sft: Path, demo_corpus: Path, tmp_path: Path) -> None:
    cfg = make_cfg(demo_sft, demo_corpus, tmp_path)
    backend = canned(demo_sft)
    summary = build_cot(cfg, backend, progress=False)
    sft, pairs = read_rows(cfg.output), read_rows(cfg.pairs_output)
    golds = {r["question_id"]: extract_sql(r["output"]) for r in read_rows(demo_sft)}
    db = demo_corpus / "train_databases" / "lahman" / "lahman.sqlite"

    assert summary.labels["correct"] == 5 and summary.labels["wrong"] == 5 and summary.labels["error"] == 5
    assert summary.labels["malformed"] == 10 and summary.labels["no_sql"] == 5
    assert len(sft) == summary.rows == 5 and summary.extra["questions_without_correct_trace"] == 0
    for row in sft:
        assert list(row) == ["instruction", "input", "output", "question_id", "db_id"]
        assert row["instruction"] == COT_INSTRUCTION
        reasoning, _ = split_trace(row["output"])
        assert reasoning.startswith("The question names one team")
        sql = extract_sql(row["output"])
        assert sql.startswith("SELECT * FROM (") and sql != golds[row["question_id"]]
        assert results_match(execute_sql(db, sql), execute_sql(db, golds[row["question_id"]]))
    assert validate_data_file(cfg.output, "cot") == 5

    # pairs: the correct trace against each wrong / broken one (2 per question)
    assert len(pairs) == summary.pairs == 10
    for row in pairs:
        assert row["source"] == "cot" and row["chosen"].startswith("<think>") and row["rejected"].startswith("<think>")
        gold = execute_sql(db, golds[row["question_id"]])
        assert results_match(execute_sql(db, extract_sql(row["chosen"])), gold)
        assert not results_match(execute_sql(db, extract_sql(row["rejected"])), gold)
    assert validate_data_file(cfg.pairs_output, "preference") == 10


def test_reference_is_shown_to_the_model_but_never_written(demo_sft: Path, demo_corpus: Path, tmp_path: Path) -> None:
    cfg = make_cfg(demo_sft, demo_corpus, tmp_path, reference=True, max_samples=2)
    backend = canned(demo_sft)
    build_cot(cfg, backend, progress=False)
    golds = [extract_sql(r["output"]) for r in read_rows(demo_sft)[:2]]
    for chat, gold in zip(backend.chats, golds, strict=True):
        assert REFERENCE_NOTE in chat[0]["content"] and chat[0]["content"].endswith(gold)
    text = Path(cfg.output).read_text() + Path(cfg.pairs_output).read_text()
    assert "Reference SQL" not in text
    # the reference changes the samples: a journal made with it is not resumed without it
    with pytest.raises(JobError, match="reference: True -> False"):
        build_cot(make_cfg(demo_sft, demo_corpus, tmp_path, max_samples=2), canned(demo_sft), progress=False)


def test_cot_cli_help_mentions_its_outputs() -> None:
    result = CliRunner().invoke(main, ["prefs", "cot", "--help"])
    assert result.exit_code == 0
    for text in ("--pairs-output", "--reference", "--num-traces", "<think>", "Example"):
        assert text in result.output

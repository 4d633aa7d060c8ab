"""`lfkit grpo eval`'s report on hand-written answers against a real SQLite database (hand-computed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lfkit.grpo.evaluate import evaluation_report, read_test_rows
from lfkit.sql import Verifier

GOLD = "SELECT name FROM singer WHERE country = 'France'"


def row(db: Path, difficulty: str, gold: str = GOLD, type_: str = "sql", question: str = "From France?") -> dict:
    return {
        "prompt": [{"role": "user", "content": question}],
        "question_id": difficulty,
        "db_id": "toy",
        "db_path": str(db),
        "gold_sql": gold,
        "difficulty": difficulty,
        "question": question,
        "type": type_,
    }


def test_report_values_by_hand(toy_sqlite: Path) -> None:
    rows = [row(toy_sqlite, "simple"), row(toy_sqlite, "moderate"), row(toy_sqlite, "challenging")]
    rows.append({**row(toy_sqlite, "simple"), "db_path": "", "question_id": "nodb"})  # no EX for this one
    completions = [
        # correct, simple type, no issues; reasoning names none -> self-assessment 1.0
        "<think>\nFirst read singer, then filter country.\n</think>\n\n<answer>\nSELECT name FROM singer WHERE country = 'France'\n</answer>",  # noqa: E501
        # runs but wrong; issue missing_where (0.3) named in the reasoning ("缺少WHERE") -> detected and named
        "<think>\n缺少WHERE条件\n</think>\n\n<answer>\nSELECT name FROM singer\n</answer>",
        # does not parse: invalid SQL; no reasoning
        "<answer>SELECT (name FROM singer</answer>",
        # nothing extracted
        "I do not know.",
    ]
    with Verifier(workers=0, timeout=2.0) as v:
        report = evaluation_report(rows, completions, verifier=v)
    s = report["summary"]
    assert s["n"] == 4 and s["ex_n"] == 3
    assert s["ex"] == pytest.approx(33.33)
    assert s["ex_by_difficulty"] == {"challenging": 0.0, "moderate": 0.0, "simple": 100.0}
    # predicted types: 'sql', 'sql', tokens of the broken SQL: 'sql' (one SELECT), none -> 3 of 4
    assert s["type_accuracy"] == 75.0
    assert s["sql_validity"] == 50.0  # two parse
    assert s["executes"] == pytest.approx(66.67)  # correct + wrong ran; the broken one errors
    # self-assessment: row 0 -> 1.0 (nothing detected, nothing named); row 1 -> 1.0 ({missing_where} both)
    assert s["self_assessment_accuracy"] == 100.0
    assert report["metrics"]["issue_detection_rate"] == {"value": 100.0, "n": 1, "named": 1}
    assert report["error_analysis"]["labels"] == {"correct": 1, "error": 1, "wrong": 1}
    assert report["error_analysis"]["issues_in_failures"] == {"missing_where": 1, "unclosed_parenthesis": 1}
    assert report["complexity_distribution"] == {"predicted": {"sql": 3}, "gold": {"sql": 4}, "no_sql": 1}
    # execution reward: 1.0, 0.1, 0, 0 -> mean 0.275
    assert report["rewards"]["execution"] == 0.275
    assert report["examples"][1]["label"] == "wrong" and report["examples"][1]["issues"] == ["missing_where"]
    assert len(report["error_analysis"]["failures"]) == 2
    json.dumps(report, ensure_ascii=False)  # the report is JSON


def test_seed_rows_evaluate_without_execution(tmp_path: Path) -> None:
    path = tmp_path / "seed.json"
    path.write_text(
        json.dumps(
            [{"query": "多少?", "response": "<think>t</think><answer>SELECT 1</answer>", "type": "sql"}],
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    rows = read_test_rows(path)
    report = evaluation_report(rows, ["<think>plan</think><answer>SELECT a FROM t WHERE b = 1</answer>"])
    assert report["summary"]["ex_n"] == 0 and report["summary"]["type_accuracy"] == 100.0
    assert report["summary"]["sql_validity"] == 100.0

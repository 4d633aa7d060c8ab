"""Pair files, pair kinds and the metrics of `lfkit rm eval` (no model needed)."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

import lfkit.eval.select
import lfkit.reward.rm_eval
from lfkit.reward.rm_eval import PairRow, RmEvalError, pair_kind, read_candidates, read_pairs, summarize


def test_module_doctests() -> None:
    assert doctest.testmod(lfkit.reward.rm_eval).failed == 0
    assert doctest.testmod(lfkit.eval.select).failed == 0


def test_lfkit_and_resqlver_rows(tmp_path: Path) -> None:
    gold = tmp_path / "dev.json"
    gold.write_text(json.dumps([{"question_id": 7, "db_id": "d", "SQL": "SELECT 1", "difficulty": "challenging"}]))
    rows = [
        # lfkit preference row: the prompt is instruction + "\n" + input, difficulty from the gold file
        {"instruction": "Write SQL.", "input": "Q?", "chosen": "a", "rejected": "b", "question_id": 7,
         "source": "rejects"},
        # ReSQLver shard row: prompt as the user turn, revision distances
        {"prompt": "P", "chosen": "c", "rejected": "d", "question_id": 8, "chosen_dist": 1, "rejected_dist": 2,
         "system": "S", "difficulty": "simple"},
        {"prompt": "P", "chosen": "c", "rejected": "e", "chosen_label": "wrong", "rejected_label": "error"},
    ]  # fmt: skip
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = read_pairs(path, lfkit.reward.rm_eval.difficulty_map(gold))
    assert pairs[0].messages == [{"role": "user", "content": "Write SQL.\nQ?"}]
    assert (pairs[0].difficulty, pairs[0].kind, pairs[0].question_id) == ("challenging", "correct_vs_wrong", "7")
    assert pairs[1].messages == [{"role": "system", "content": "S"}, {"role": "user", "content": "P"}]
    assert (pairs[1].difficulty, pairs[1].kind) == ("simple", "wrong_vs_wrong:d1-d2")
    assert (pairs[2].difficulty, pairs[2].kind) == ("unknown", "error_vs_wrong_result")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("[]", "no rows"),
        (json.dumps([{"chosen": "a", "rejected": "b"}]), "row 0: field 'instruction' (lfkit) or 'prompt' (ReSQLver)"),
        (json.dumps([{"prompt": "p", "chosen": "a", "rejected": ""}]), "row 0: field 'rejected' is empty"),
        (json.dumps([{"prompt": "p", "chosen": ["a"], "rejected": "b"}]), "row 0: field 'chosen' is not text: list"),
        (json.dumps([{"prompt": "p", "chosen": "a", "rejected": "b"}, 3]), "row 1: expected a JSON object"),
    ],
)
def test_bad_pair_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "pairs.json"
    path.write_text(content)
    with pytest.raises(RmEvalError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_pairs(path)


def test_bad_candidate_file(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"question_id": 1, "prompt": "p", "candidates": [{"sql": "SELECT 1"}]}) + "\n")
    with pytest.raises(RmEvalError, match=r"row 0: candidates\[0\]: field 'text' is missing"):
        read_candidates(path)


def test_pair_kinds() -> None:
    assert pair_kind({"chosen_label": "correct", "rejected_label": "wrong"}) == "correct_vs_wrong"
    assert pair_kind({"chosen_label": "correct", "rejected_label": "no_sql"}) == "correct_vs_error"
    assert pair_kind({"chosen_label": "error", "rejected_label": "wrong"}) == "error_vs_wrong_result"
    assert pair_kind({"chosen_label": "error", "rejected_label": "timeout"}) == "unknown"
    assert pair_kind({"kind": "correct_vs_wrong", "chosen_dist": 0, "rejected_dist": 3}) == "correct_vs_wrong"
    assert pair_kind({"chosen_dist": 2, "rejected_dist": 999}) == "wrong_vs_wrong:d2-dnone"
    assert pair_kind({"source": "test"}) == "unknown"


def test_summary_by_kind_and_difficulty() -> None:
    pairs = [
        PairRow(0, [], "a", "b", "1", "simple", "correct_vs_wrong"),
        PairRow(1, [], "a", "b", "2", "simple", "wrong_vs_wrong:d1-d2"),
        PairRow(2, [], "a", "b", "3", "moderate", "correct_vs_wrong"),
        PairRow(3, [], "a", "b", "4", "unknown", "correct_vs_wrong"),
    ]
    s = summarize(pairs, [(2.0, 1.0), (0.0, 1.0), (1.0, 1.0 + 1e-7), (3.0, 0.0)])
    assert (s["n"], s["correct"], s["ties"], s["accuracy"]) == (4, 2, 1, 0.5)
    assert s["avg_margin"] == pytest.approx((1.0 - 1.0 - 1e-7 + 3.0) / 4)
    assert list(s["by_difficulty"]) == ["simple", "moderate", "unknown"]
    assert s["by_kind"]["correct_vs_wrong"] == pytest.approx(
        {"n": 3, "accuracy": 2 / 3, "correct": 2, "ties": 1, "avg_margin": (1.0 - 1e-7 + 3.0) / 3}
    )
    assert s["by_kind"]["wrong_vs_wrong:d1-d2"]["accuracy"] == 0.0


@pytest.mark.slow
def test_resqlver_spellings_and_dtype_are_recorded(tiny_model: Path, tmp_path: Path) -> None:
    """ReSQLver's evaluate.py flags work as aliases; --dtype picks the weights' dtype and the report names it."""
    import torch
    from click.testing import CliRunner

    from lfkit.cli import main
    from lfkit.reward.model import RewardModel

    pairs = tmp_path / "final_data_test.json"
    rows = [{"prompt": f"Question {i}?", "chosen": f"SELECT {i}", "rejected": f"SELECT {i} + 1"} for i in range(4)]
    pairs.write_text(json.dumps(rows))
    reports = {}
    for dtype in ("bf16", None):
        out = tmp_path / f"eval_{dtype}.json"
        args = ["rm", "eval", "--base_model", str(tiny_model), "--adapters", "none", "--test_data", str(pairs)]
        args += ["--batch_size", "2", "--output_file", str(out), "--no-progress"]
        result = CliRunner().invoke(main, [*args, *(["--dtype", dtype] if dtype else [])])
        assert result.exit_code == 0, result.output
        (reports[dtype],) = json.loads(out.read_text())
        assert reports[dtype]["n"] == 4
    assert reports["bf16"]["dtype"] == "bf16" and reports[None]["dtype"] == "fp32"  # the CPU default
    # the dtype is really what the weights score in: bf16 rounds the same model's scores differently
    lines = {d: (tmp_path / f"eval_{d}.pairs.jsonl").read_text().splitlines() for d in reports}
    scores = {d: [json.loads(x)["chosen_score"] for x in v] for d, v in lines.items()}
    assert scores["bf16"] != scores[None]
    rm = RewardModel.load(tiny_model, "none", dtype="bf16")
    assert next(rm.body.parameters()).dtype == torch.bfloat16 and rm.describe()["dtype"] == "bf16"

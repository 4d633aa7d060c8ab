"""lfkit.data.rows: one Question type keyed by its id's text; the SFT and preference row builders."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

import lfkit.data.rows
from lfkit.data.bird import load_bird, read_gold_sql
from lfkit.data.rows import DIFFICULTIES, UNKNOWN_DIFFICULTY, Question, preference_row, question_key, sft_row
from lfkit.eval.formats import match_predictions, read_gold, read_predictions
from lfkit.io import DataFileError


def test_ids_kept_as_given_and_compared_as_text() -> None:
    a, b = Question(7, "db"), Question("7", "db")
    assert a.question_id == 7 and b.question_id == "7"
    assert a.key == b.key == question_key(" 7") == "7"
    assert a.difficulty == UNKNOWN_DIFFICULTY and a.db_path is None
    assert DIFFICULTIES == ("simple", "moderate", "challenging")


def test_row_builders_fix_the_field_order() -> None:
    q = Question(5, "shop")
    assert list(sft_row(q, "I", "Q", "O")) == ["instruction", "input", "output", "question_id", "db_id"]
    row = preference_row(q, "I", "Q", "good", "bad", "cot", 2, note="x")
    assert row == {
        "instruction": "I",
        "input": "Q",
        "chosen": "good",
        "rejected": "bad",
        "question_id": 5,
        "db_id": "shop",
        "source": "cot",
        "round": 2,
        "note": "x",
    }
    assert list(row)[-1] == "note"
    with pytest.raises(ValueError, match="extra field 'db_id'"):
        preference_row(q, "I", "Q", "good", "bad", "cot", 2, db_id="other")


def test_one_gold_sql_reader(tmp_path: Path) -> None:
    gold = tmp_path / "dev_gold.sql"
    gold.write_text("SELECT 'a\tb' FROM t\tshop\n\nSELECT 2\tshop\n", encoding="utf-8")
    assert read_gold_sql(gold) == [("SELECT 'a\tb' FROM t", "shop"), ("SELECT 2", "shop")]  # split at the last tab
    gold.write_text("SELECT 1\tshop\nSELECT 2\t \n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"dev_gold.sql: line 2: expected 'SQL<TAB>db_id'"):
        read_gold_sql(gold)
    gold.write_text("SELECT 1\tshop\n", encoding="utf-8")
    (q,) = read_gold(gold)  # eval reads gold through the same reader
    assert (q.question_id, q.key, q.gold_sql, q.index) == (0, "0", "SELECT 1", 0)


def test_bird_and_eval_give_the_same_questions(bird_corpus: Path) -> None:
    """load_bird (with databases) and eval's read_gold (ids only) describe the same questions."""
    loaded = load_bird(bird_corpus, "dev")
    gold = read_gold(bird_corpus / "dev.json")
    from_sql = read_gold(bird_corpus / "dev_gold.sql", difficulties=bird_corpus / "dev.json")
    assert gold == from_sql
    assert [(q.question_id, q.db_id, q.gold_sql, q.difficulty) for q in loaded] == [
        (q.question_id, q.db_id, q.gold_sql, q.difficulty) for q in gold
    ]
    assert all(q.db_path is not None and q.db_path.is_file() for q in loaded)
    assert [q.index for q in loaded] == list(range(len(loaded)))


def test_predictions_file_pairs_int_and_string_ids(tmp_path: Path) -> None:
    gold_file = tmp_path / "gold.jsonl"
    gold_file.write_text(
        '{"question_id": 3, "db_id": "d", "sql": "SELECT 1"}\n{"question_id": "q9", "db_id": "d", "sql": "SELECT 2"}\n'
    )
    pred_file = tmp_path / "pred.json"
    pred_file.write_text('{" 3": "SELECT 1\\t----- bird -----\\td", "q9": "SELECT 5"}')
    gold = read_gold(gold_file)
    assert [q.question_id for q in gold] == [3, "q9"]
    paired = match_predictions(read_predictions(pred_file), gold)
    assert [p.sql for p in paired] == ["SELECT 1", "SELECT 5"]


def test_module_doctest() -> None:
    assert doctest.testmod(lfkit.data.rows).failed == 0

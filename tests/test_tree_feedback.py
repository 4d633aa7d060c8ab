"""lfkit.tree.feedback: the revision prompt shows the wrong SQL's own outcome, never gold's rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from tree_canned import GOLD, GOLD_NAMES, make_db

from lfkit.data.prompts import INSTRUCTION, SchemaPromptBuilder, chat_messages
from lfkit.data.rows import Question
from lfkit.sql import ExecResult, execute_sql
from lfkit.tree.feedback import execution_feedback, question_chat, revision_chat, revision_input


@pytest.fixture
def shop(tmp_path: Path) -> tuple[Path, str, str]:
    """(db path, SFT instruction, SFT input) built by the SFT prompt builder (no example values)."""
    root = make_db(tmp_path / "dbs")
    db = root / "shop" / "shop.sqlite"
    ex = Question(1, "shop", "Which items cost more than 10?", "price is in dollars", GOLD, "simple", db)
    instruction, input_text = SchemaPromptBuilder(n_examples=0).build(ex)
    assert not any(name in input_text for name in GOLD_NAMES)  # the schema alone shows no rows
    return db, instruction, input_text


WRONG = [
    ("SELECT name FROM items WHERE price < 10", "returned 2 rows with 1 column", "'plain_a'"),
    ("SELECT id, price FROM items ORDER BY id", "returned 4 rows with 2 columns", "(1, 50)"),
    ("SELECT name FROM items WHERE price > 1000", "returned no rows", None),
    ("SELECT nme FROM items", "failed with an error: no such column: nme", None),
    ("SELECT count(*) FROM items", "returned 1 row with 1 column", "(4)"),
]


@pytest.mark.parametrize(("sql", "says", "shows"), WRONG)
def test_feedback_is_the_wrong_sqls_own_outcome(shop, sql: str, says: str, shows: str | None) -> None:
    db, instruction, input_text = shop
    gold = execute_sql(db, GOLD)
    assert {r[0] for r in gold.rows} == set(GOLD_NAMES)
    for count in (None, len(gold.rows)):
        text = execution_feedback(execute_sql(db, sql), gold_row_count=count)
        assert says in text
        if shows:
            assert shows in text
        chat = revision_chat(instruction, input_text, sql, text)
        whole = "\n".join(m["content"] for m in chat)
        for name in GOLD_NAMES:  # gold's rows never reach the model
            assert name not in whole
        assert ("The correct result has 2 rows." in text) == (count is not None)


def test_revision_prompt_extends_the_sft_prompt(shop) -> None:
    _, instruction, input_text = shop
    assert instruction == INSTRUCTION
    first = question_chat(instruction, input_text)
    assert first == chat_messages(instruction, input_text)  # depth 1: exactly the SFT row's prompt
    chat = revision_chat(instruction, input_text, "SELECT nme FROM items", "The query failed with an error: x")
    assert len(chat) == 1 and chat[0]["role"] == "user"
    user = chat[0]["content"]
    assert user.startswith(first[0]["content"] + "\n\n")  # same instruction, schema, evidence, question
    assert "```sql\nSELECT nme FROM items\n```" in user
    assert user.rstrip().endswith("Write a corrected query.")


def test_feedback_cases_without_rows() -> None:
    assert execution_feedback(None) == "No SQL query could be found in the answer."
    assert "did not finish" in execution_feedback(ExecResult("timeout", error="timed out after 30s"))
    assert "too many rows" in execution_feedback(ExecResult("too_many_rows", error="more than 10000 rows"))
    long = execution_feedback(ExecResult("ok", rows=(("x" * 500,),) * 10))
    assert "10 rows" in long and len(long) < 400  # three rows shown, each value shortened
    # a fence inside the wrong SQL cannot end the code block early
    assert revision_input("Q", "SELECT 1 ```", "fb").count("```") == 2

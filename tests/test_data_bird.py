"""BIRD loading and the schema prompt builder, on a corpus in BIRD's real layout."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

import lfkit.data.prompts as prompts
from lfkit.data.bird import load_bird, load_descriptions, resolve_db_path, split_db_root
from lfkit.data.prompts import (
    INSTRUCTION,
    SchemaPromptBuilder,
    chat_messages,
    format_sql_answer,
)
from lfkit.io import DataFileError
from lfkit.sql import execute_sql, extract_sql


def test_load_train_assigns_stable_ids_and_paths(bird_corpus: Path) -> None:
    examples = load_bird(bird_corpus, "train")
    assert [e.question_id for e in examples] == [0, 1, 2, 3]  # the index, as add_question_id.py did
    assert [e.db_id for e in examples] == ["shop", "shop", "school", "school"]
    assert {e.difficulty for e in examples} == {"unknown"}
    assert examples[1].evidence == "large order means amount > 50"
    assert examples[0].db_path == bird_corpus / "train_databases" / "shop" / "shop.sqlite"
    assert execute_sql(examples[0].db_path, examples[0].gold_sql).rows == ((2,),)


def test_load_dev_keeps_ids_and_difficulty(bird_corpus: Path) -> None:
    examples = load_bird(bird_corpus, "dev")
    assert [(e.question_id, e.difficulty) for e in examples] == [(100, "simple"), (101, "moderate")]
    assert split_db_root(bird_corpus, "dev") == bird_corpus / "dev_databases"
    assert resolve_db_path(bird_corpus / "dev_databases", "school").name == "school.sqlite"


def test_sql_from_gold_file_when_json_lacks_it(bird_corpus: Path) -> None:
    rows = json.loads((bird_corpus / "dev.json").read_text(encoding="utf-8"))
    for r in rows:
        del r["SQL"]
    (bird_corpus / "dev.json").write_text(json.dumps(rows), encoding="utf-8")
    assert [e.gold_sql for e in load_bird(bird_corpus, "dev")][1] == "SELECT name FROM students WHERE grade = 9"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda rows: rows[2].update(db_id="library"),
            r"train\.json: row 2: field 'db_id': db_id 'library' has no folder",
        ),
        (lambda rows: rows[1].pop("question"), r"train\.json: row 1: field 'question' is missing"),
        (lambda rows: rows[3].update(question="  "), r"train\.json: row 3: field 'question' is empty"),
        (lambda rows: rows[0].update(SQL=42), r"train\.json: row 0: field 'SQL' must be a string"),
        (lambda rows: rows[0].update(question_id=7), r"train\.json: row 1: field 'question_id' is missing"),
    ],
)
def test_bad_rows_name_file_row_and_field(bird_corpus: Path, edit, message: str) -> None:
    path = bird_corpus / "train.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    edit(rows)
    path.write_text(json.dumps(rows), encoding="utf-8")
    with pytest.raises(DataFileError, match=message):
        load_bird(bird_corpus, "train")


def test_duplicate_and_non_integer_ids(bird_corpus: Path) -> None:
    path = bird_corpus / "dev.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    rows[1]["question_id"] = 100
    path.write_text(json.dumps(rows), encoding="utf-8")
    with pytest.raises(DataFileError, match=r"row 1: field 'question_id' 100 repeats row 0"):
        load_bird(bird_corpus, "dev")
    rows[1]["question_id"] = "q2"
    path.write_text(json.dumps(rows), encoding="utf-8")
    with pytest.raises(DataFileError, match=r"row 1: field 'question_id' must be an integer"):
        load_bird(bird_corpus, "dev")


def test_malformed_json_and_missing_things(bird_corpus: Path) -> None:
    (bird_corpus / "train.json").write_text('[{"db_id": "shop",\n "question": }]', encoding="utf-8")
    with pytest.raises(DataFileError, match=r"train\.json: invalid JSON at line 2"):
        load_bird(bird_corpus, "train")
    with pytest.raises(DataFileError, match=r"test\.json: file not found.*splits found: dev, train"):
        load_bird(bird_corpus, "test")
    (bird_corpus / "dev_databases" / "shop" / "shop.sqlite").unlink()
    with pytest.raises(
        DataFileError, match=r"dev\.json: row 0: field 'db_id': database file .*shop\.sqlite is missing"
    ):
        load_bird(bird_corpus, "dev")


def test_descriptions_bom_cp1252_missing(bird_corpus: Path) -> None:
    desc = load_descriptions(bird_corpus / "train_databases" / "shop" / "shop.sqlite")
    assert desc["customers"]["full name"].column_description == "name of the customer — given name first"
    assert desc["customers"]["id"].original_column_name == "id"  # the BOM is not part of the header
    assert desc["orders"]["amount"].column_description == "montant payé in euros"  # cp1252
    assert desc["orders"]["customer_id"].column_name == "customer id"  # trailing space in the name
    assert load_descriptions(bird_corpus / "train_databases" / "school" / "school.sqlite") == {}
    bad = bird_corpus / "train_databases" / "shop" / "database_description" / "orders.csv"
    bad.write_text("name,description\namount,money\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"orders\.csv: row 0: field 'original_column_name' is missing"):
        load_descriptions(bird_corpus / "train_databases" / "shop" / "shop.sqlite")


def test_prompt_has_ddl_keys_descriptions_examples_evidence(bird_corpus: Path) -> None:
    example = load_bird(bird_corpus, "train")[1]
    instruction, text = SchemaPromptBuilder().build(example)
    assert instruction == INSTRUCTION
    assert "CREATE TABLE customers (" in text and "CREATE TABLE orders (" in text
    assert "  `full name` TEXT, -- name of the customer — given name first, example: ['Zoë Keller'," in text
    assert "  PRIMARY KEY (order_id),\n  FOREIGN KEY (customer_id) REFERENCES customers (id)\n);" in text
    assert "(commonsense evidence: large order means amount > 50)" in text
    assert "  `order date` TEXT -- " not in text  # not the last definition: keeps its comma
    assert text.endswith("\n\nEvidence: large order means amount > 50\nQuestion: List the ids of large orders.")
    # the DDL lfkit prints is valid SQLite that recreates the same tables
    schema = text.split("\n\nEvidence:")[0]
    conn = sqlite3.connect(":memory:")
    conn.executescript(schema)
    assert [r[1] for r in conn.execute("PRAGMA table_info(orders)")] == [
        "order_id",
        "customer_id",
        "amount",
        "order date",
    ]
    assert conn.execute("PRAGMA foreign_key_list(orders)").fetchone()[2:5] == ("customers", "customer_id", "id")


def test_no_evidence_line_when_empty(bird_corpus: Path) -> None:
    _, text = SchemaPromptBuilder().build(load_bird(bird_corpus, "train")[2])
    assert "Evidence:" not in text and text.endswith("\n\nQuestion: How many students are in grade 10?")
    assert "-- example: [9, 10]" in text  # no description file: example values only


def test_schema_read_once_per_database(bird_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = prompts.read_schema

    def counting(db_path, n_examples):
        calls.append(Path(db_path))
        return real(db_path, n_examples)

    monkeypatch.setattr(prompts, "read_schema", counting)
    builder = SchemaPromptBuilder()
    examples = load_bird(bird_corpus, "train")
    for _ in range(50):
        for e in examples:
            builder.build(e)
    assert sorted(p.name for p in calls) == ["school.sqlite", "shop.sqlite"]


def test_example_values_are_bounded(tmp_path: Path) -> None:
    """A big table costs the same as a small one: examples come from the first rows only."""
    db = tmp_path / "big" / "big.sqlite"
    db.parent.mkdir()
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (k INTEGER, note TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i % 7, None if i < 5000 else "late") for i in range(60_000)])
    conn.commit()
    conn.close()
    tables = prompts.read_schema(db, n_examples=3)
    assert tables[0].columns[0].examples == [0, 1, 2]
    assert tables[0].columns[1].examples == []  # only NULLs in the scanned prefix: no full scan


def test_budget_shortens_examples_and_descriptions_first(bird_corpus: Path, caplog) -> None:
    examples = load_bird(bird_corpus, "train")
    full = SchemaPromptBuilder()
    full_len = max(len(INSTRUCTION) + 1 + len(full.build(e)[1]) for e in examples[:2])
    builder = SchemaPromptBuilder(max_chars=full_len - 120)
    texts = [builder.build(e)[1] for e in examples]
    assert builder.n_cut == 2 and builder.n_over_budget == 0  # the two shop prompts; school fits
    for text in texts[:2]:
        assert len(INSTRUCTION) + 1 + len(text) <= full_len - 120
        for name in ("customers", "orders", "`full name`", "`order date`", "customer_id", "amount"):
            assert name in text  # tables and columns are never dropped
    with caplog.at_level(logging.WARNING, logger="lfkit"):
        builder.warn_if_cut()
    assert "2 of 4 prompts were shortened to fit max_chars=" in caplog.text
    tight = SchemaPromptBuilder(max_chars=300)
    _, bare = tight.build(examples[0])
    assert "example" not in bare and "--" not in bare and tight.n_over_budget == 1
    assert "still exceed it" in tight.report()


def test_token_budget(bird_corpus: Path) -> None:
    def words(text: str) -> int:
        return len(text.split())

    example = load_bird(bird_corpus, "train")[0]
    full_words = words(INSTRUCTION + "\n" + SchemaPromptBuilder().build(example)[1])
    builder = SchemaPromptBuilder(max_tokens=full_words - 10, count_tokens=words)
    _, text = builder.build(example)
    assert words(INSTRUCTION + "\n" + text) <= full_words - 10 and builder.n_cut == 1
    with pytest.raises(ValueError, match="needs count_tokens"):
        SchemaPromptBuilder(max_tokens=100)


def test_answer_format_round_trips_through_sql_extraction() -> None:
    sql = "SELECT T1.`full name` FROM customers AS T1 WHERE T1.id = 1"
    answer = format_sql_answer(sql + "\n")
    assert answer == f"```sql\n{sql}\n```"
    assert extract_sql(answer) == sql


def test_chat_messages_match_llamafactory_alpaca_converter() -> None:
    """The user turn is exactly what LLaMA-Factory's AlpacaDatasetConverter builds."""
    from llamafactory.data.converter import AlpacaDatasetConverter
    from llamafactory.data.parser import DatasetAttr
    from llamafactory.hparams import DataArguments

    attr = DatasetAttr("file", dataset_name="x.json")
    attr.join({"columns": {"prompt": "instruction", "query": "input", "response": "output"}})
    converter = AlpacaDatasetConverter(attr, DataArguments())
    row = {
        "instruction": INSTRUCTION,
        "input": "CREATE TABLE t (a INTEGER);\n\nQuestion: q?",
        "output": "```sql\nX\n```",
    }
    converted = converter(row)
    assert converted["_prompt"] + converted["_response"] == chat_messages(
        row["instruction"], row["input"], row["output"]
    )
    assert converter({**row, "instruction": ""})["_prompt"] == chat_messages("", row["input"])

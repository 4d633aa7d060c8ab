"""Broken inputs a user can hand lfkit: a database file that is no database, a JSON file of the wrong shape.

Each must stop the command with one `Error:` line naming the file, never a traceback, and
never a silent success (a 0-byte .sqlite used to give prompts with no schema at all).
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from lfkit.cli import main
from lfkit.data.prompts import SchemaPromptBuilder, read_schema
from lfkit.io import DataFileError, read_rows
from lfkit.sql import DatabaseFileError

# The three commands that read a corpus's databases to build prompts (the openai backend at a
# closed port: the database must be refused before any model or server is needed).
COMMANDS = {
    "data sft": ["data", "sft", "--out", "{out}/sft.json"],
    "data grpo": ["data", "grpo", "--out", "{out}/grpo.jsonl"],
    "eval predict": ["eval", "predict", "--out", "{out}/predict.json", "--backend", "openai", "--base-model", "m",
                     "--base-url", "http://127.0.0.1:9/v1"],
}  # fmt: skip
BREAKAGES = {
    "text": (b"id,name\n1,Ada\n", r"not a SQLite database \(the file starts with b'id,name"),
    "empty": (b"", r"the database file is empty \(0 bytes\)"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_broken_database_file_is_one_error_line_naming_it(
    bird_corpus: Path, tmp_path: Path, command: str, breakage: str
) -> None:
    db = bird_corpus / "train_databases" / "school" / "school.sqlite"
    content, message = BREAKAGES[breakage]
    db.write_bytes(content)
    args = [a.format(out=tmp_path) for a in COMMANDS[command]]
    result = CliRunner().invoke(main, [*args, "--bird-dir", str(bird_corpus), "--split", "train"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and str(db) in errors[0], result.output
    assert re.search(message, errors[0]), errors[0]
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert not list(tmp_path.glob("sft.json")) and not list(tmp_path.glob("grpo.jsonl"))


def test_a_database_without_tables_gives_no_prompt(tmp_path: Path) -> None:
    db = tmp_path / "empty.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 1")  # a real SQLite file with its header and no table
    conn.commit()
    conn.close()
    assert db.read_bytes().startswith(b"SQLite format 3\x00")
    with pytest.raises(DatabaseFileError, match=rf"{db}: the database has no tables"):
        read_schema(db, 3)


def test_a_damaged_database_is_named(toy_sqlite: Path) -> None:
    data = bytearray(toy_sqlite.read_bytes())
    data[100:] = b"\xff" * (len(data) - 100)  # header intact, the schema page overwritten
    toy_sqlite.write_bytes(bytes(data))
    with pytest.raises(DatabaseFileError, match=rf"{toy_sqlite}: cannot read the schema: .*malformed"):
        SchemaPromptBuilder().tables(toy_sqlite)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "rows.json",
            json.dumps({"data": [{"a": 1}], "version": 2}, indent=2),
            r"rows\.json: found one JSON object over several lines \(keys: 'data', 'version'\); "
            r"expected a JSON array of row objects .* or JSONL",
        ),
        (
            "rows.jsonl",
            json.dumps({"instruction": "i", "output": "o"}, indent=2),
            r"rows\.jsonl: found one JSON object over several lines .*; expected JSONL: one JSON object per line",
        ),
        (
            "rows.jsonl",
            json.dumps([{"a": 1}, {"a": 2}], indent=2),
            r"rows\.jsonl: found a JSON array over several lines; expected JSONL.*name the file \.json",
        ),
        ("rows.jsonl", '{"a": 1}\n{"a": \n', r"rows\.jsonl: line 2: invalid JSON"),  # a real syntax error
    ],
    ids=["object-in-json", "object-in-jsonl", "array-in-jsonl", "syntax-error"],
)
def test_json_of_the_wrong_shape_says_what_was_found_and_expected(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataFileError, match=message):
        read_rows(path)


def test_the_cli_reports_a_pretty_printed_object_given_for_rows(tmp_path: Path) -> None:
    sft = tmp_path / "sft.json"
    sft.write_text(json.dumps({"instruction": "i", "input": "q", "output": "SELECT 1"}, indent=2))
    args = ["register", "--dataset-info", str(tmp_path / "dataset_info.json"), "--name", "x", "--file", str(sft)]
    result = CliRunner().invoke(main, [*args, "--kind", "sft"])
    assert result.exit_code == 1
    assert f"Error: {sft}: found one JSON object over several lines" in result.output, result.output

"""`lfkit register`: entries from one definition per kind, validated data, the user's file kept safe."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from lfkit.cli import main
from lfkit.errors import LfkitError
from lfkit.io import DataFileError
from lfkit.registry import (
    KIND_COLUMNS,
    KINDS,
    RegistryError,
    backup_file,
    entry_for,
    register,
    register_dataset,
    standard_entries,
    validate_data_file,
    validate_entry,
)
from lfkit.resources import resource_dir

# Data field names where LLaMA-Factory expects its column keys: every response ends up empty.
WRONG_COLUMNS = {"instruction": "instruction", "input": "input", "output": "output"}


def _sft_rows(n: int = 3) -> list[dict]:
    return [
        {
            "instruction": "Write SQL.",
            "input": f"CREATE TABLE t (a INTEGER);\n\nQuestion: q{i}?",
            "output": f"```sql\nSELECT {i}\n```",
            "question_id": i,
            "db_id": "toy",
        }
        for i in range(n)
    ]


def _pref_rows(n: int = 3) -> list[dict]:
    return [
        {
            **{k: r[k] for k in ("instruction", "input", "question_id", "db_id")},
            "chosen": r["output"],
            "rejected": "```sql\nSELECT a FROM t\n```",
            "source": "test",
            "round": 0,
        }
        for r in _sft_rows(n)
    ]


def _write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return path


def test_one_mapping_per_kind() -> None:
    assert KIND_COLUMNS["sft"] == {"prompt": "instruction", "query": "input", "response": "output"}
    assert KIND_COLUMNS["cot"] == KIND_COLUMNS["sft"]
    assert KIND_COLUMNS["preference"] == {
        "prompt": "instruction",
        "query": "input",
        "chosen": "chosen",
        "rejected": "rejected",
    }
    assert entry_for("preference", "p.jsonl") == {
        "file_name": "p.jsonl",
        "formatting": "alpaca",
        "ranking": True,
        "columns": KIND_COLUMNS["preference"],
    }
    for kind in KINDS:
        validate_entry(entry_for(kind, "x.json"))
    with pytest.raises(RegistryError, match="unknown dataset kind 'kto'"):
        entry_for("kto", "x.json")
    with pytest.raises(LfkitError):  # the CLI prints lfkit's diagnosed errors as one line
        entry_for("kto", "x.json")


def test_shipped_entries_and_schema_are_in_sync() -> None:
    folder = resource_dir("dataset_info")
    assert json.loads((folder / "dataset_info.json").read_text(encoding="utf-8")) == standard_entries()
    schema = json.loads((folder / "entry.schema.json").read_text(encoding="utf-8"))
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"columns": WRONG_COLUMNS}, r"'columns': 'instruction' is not one of"),
        ({"ranking": True}, r"'columns': 'chosen' is a required property"),
        ({"file_name": "data.csv"}, r"'file_name': 'data.csv' does not match"),
        ({"formatting": "sharegpt"}, r"'formatting': 'alpaca' was expected"),
        (
            {"columns": {"prompt": "instruction", "query": "input", "response": ""}},
            r"'columns/response': '' should be non-empty",
        ),
        ({"hf_hub_url": "x/y"}, r"Additional properties are not allowed"),
    ],
)
def test_schema_rejects_bad_entries(entry: dict, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        validate_entry({**entry_for("sft", "data.json"), **entry})


@pytest.mark.parametrize(
    ("kind", "edit", "message"),
    [
        ("sft", lambda rows: rows[1].pop("output"), r"row 1: field 'output' is missing"),
        ("sft", lambda rows: rows[2].update(input=3), r"row 2: field 'input' must be a string or null, got number"),
        ("sft", lambda rows: rows[1].update(output=None), r"row 1: field 'output' must be a string, got null"),
        ("sft", lambda rows: rows[0].update(output=["SELECT 1"]), r"row 0: field 'output' must be a string, got array"),
        (
            "sft",
            lambda rows: rows[2].update(question_id="2"),
            r"row 2: field 'question_id' is a string but row 0 has a number",
        ),
        (
            "preference",
            lambda rows: rows[1].update(rejected=rows[1]["chosen"] + "\n"),
            r"row 1: field 'rejected' equals 'chosen'",
        ),
        ("preference", lambda rows: rows[0].update(chosen=None), r"row 0: field 'chosen' must be a string, got null"),
        ("cot", lambda rows: None, r"row 0: field 'output' must start with <think>"),
    ],
)
def test_data_file_errors_name_row_and_field(tmp_path: Path, kind: str, edit, message: str) -> None:
    rows = _pref_rows() if kind == "preference" else _sft_rows()
    edit(rows)
    path = _write(tmp_path / "data.json", rows)
    with pytest.raises(DataFileError, match=f"{path.name}: {message}"):
        validate_data_file(path, kind)


def test_data_file_shapes(tmp_path: Path) -> None:
    assert validate_data_file(_write(tmp_path / "a.json", _sft_rows(5)), "sft") == 5
    assert validate_data_file(_write(tmp_path / "p.jsonl", _pref_rows(4)), "preference") == 4
    cot = _sft_rows(2)
    for r in cot:
        r["output"] = "<think>Count the rows of t.</think>\n\n" + r["output"]
    assert validate_data_file(_write(tmp_path / "c.json", cot), "cot") == 2
    cot[1]["output"] = "<think>  </think>```sql\nSELECT 1\n```"
    with pytest.raises(DataFileError, match=r"row 1: field 'output' needs reasoning inside <think>"):
        validate_data_file(_write(tmp_path / "c.json", cot), "cot")
    with pytest.raises(DataFileError, match=r"not '\.csv'"):
        validate_data_file(_write(tmp_path / "a.csv", _sft_rows()), "sft")
    with pytest.raises(DataFileError, match="no rows"):
        validate_data_file(_write(tmp_path / "e.json", []), "sft")
    (tmp_path / "broken.jsonl").write_text(json.dumps(_sft_rows(1)[0]) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"broken\.jsonl: line 2: invalid JSON"):
        validate_data_file(tmp_path / "broken.jsonl", "sft")


def test_prompt_fields_may_be_empty_null_or_absent_as_in_llamafactory(tmp_path: Path) -> None:
    """LLaMA-Factory's alpaca converter skips a falsy instruction / input (tests/test_registry_llamafactory.py
    loads such rows through it); only a column absent from every row breaks its loader (KeyError)."""
    rows = _sft_rows(4)
    rows[0]["input"] = ""
    rows[1]["input"] = None
    del rows[2]["input"]
    rows[3]["instruction"] = "   "
    assert validate_data_file(_write(tmp_path / "a.jsonl", rows), "sft") == 4
    pairs = _pref_rows(2)
    pairs[0]["input"] = ""
    del pairs[1]["instruction"]
    assert validate_data_file(_write(tmp_path / "p.jsonl", pairs), "preference") == 2
    no_input = [{k: v for k, v in r.items() if k != "input"} for r in _sft_rows(2)]
    with pytest.raises(DataFileError, match=r"a\.json: field 'input' is in no row .*KeyError"):
        validate_data_file(_write(tmp_path / "a.json", no_input), "sft")


def test_backups_are_never_overwritten(tmp_path: Path) -> None:
    info = tmp_path / "dataset_info.json"
    info.write_bytes(b"\xef\xbb\xbf{}\r\n")  # byte for byte, BOM and CRLF included
    when = 1_764_750_900.0  # one fixed second: the counter tells the copies apart
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    first = backup_file(info, when=when)
    info.write_text("{}\n")
    second = backup_file(info, when=when)
    third = backup_file(info, when=when)
    assert [first.name, second.name, third.name] == [
        f"dataset_info.json.{stamp}.bak",
        f"dataset_info.json.{stamp}-2.bak",
        f"dataset_info.json.{stamp}-3.bak",
    ]
    assert first.read_bytes() == b"\xef\xbb\xbf{}\r\n" and second.read_bytes() == third.read_bytes() == b"{}\n"


def test_register_creates_file_with_relative_path(tmp_path: Path) -> None:
    data = _write(tmp_path / "corpus" / "sft.json", _sft_rows())
    info = tmp_path / "lf" / "data" / "dataset_info.json"
    result = register(info, "text2sql_sft", data, "sft")
    assert result.action == "added" and result.rows == 3 and result.backup is None
    saved = json.loads(info.read_text(encoding="utf-8"))
    assert saved == {"text2sql_sft": entry_for("sft", "../../corpus/sft.json")}
    assert (info.parent / saved["text2sql_sft"]["file_name"]).resolve() == data.resolve()


def test_register_keeps_other_entries_order_and_makes_backup(tmp_path: Path) -> None:
    info = tmp_path / "dataset_info.json"
    original = (
        '{\n  "alpaca_en_demo": {"file_name": "alpaca_en_demo.json"},\n'
        '  "hub_set": {"hf_hub_url": "x/y", "ranking": true},\n  "zeta": {"file_name": "z.json"}\n}\n'
    )
    info.write_text(original, encoding="utf-8")
    first = register(info, "text2sql_sft", _write(tmp_path / "sft.json", _sft_rows()), "sft")
    result = register(info, "text2sql_dpo", _write(tmp_path / "dpo.jsonl", _pref_rows()), "preference")
    saved = json.loads(info.read_text(encoding="utf-8"))
    assert list(saved) == ["alpaca_en_demo", "hub_set", "zeta", "text2sql_sft", "text2sql_dpo"]
    assert saved["hub_set"] == {"hf_hub_url": "x/y", "ranking": True}
    assert saved["text2sql_dpo"] == entry_for("preference", "dpo.jsonl")
    # every backup is kept: the original file, then the file with text2sql_sft
    assert sorted(tmp_path.glob("dataset_info.json.*.bak")) == sorted([first.backup, result.backup])
    assert re.fullmatch(r"dataset_info\.json\.\d{8}-\d{6}(-\d+)?\.bak", result.backup.name)
    assert first.backup.read_text(encoding="utf-8") == original
    assert "text2sql_dpo" not in json.loads(result.backup.read_text(encoding="utf-8"))
    assert "text2sql_sft" in json.loads(result.backup.read_text(encoding="utf-8"))


def test_register_refuses_a_different_entry_unless_forced(tmp_path: Path) -> None:
    info = tmp_path / "dataset_info.json"
    first, second = _write(tmp_path / "a.json", _sft_rows()), _write(tmp_path / "b.json", _sft_rows(2))
    register(info, "mine", first, "sft")
    info.write_text(info.read_text(encoding="utf-8").replace('"mine"', '"before": {"file_name": "x.json"},\n  "mine"'))
    before = info.read_bytes()
    assert register(info, "mine", first, "sft").action == "unchanged"
    assert info.read_bytes() == before and not list(tmp_path.glob("*.bak"))
    with pytest.raises(RegistryError, match=r"entry 'mine' exists and differs.*pass --force"):
        register(info, "mine", second, "sft")
    assert info.read_bytes() == before
    result = register(info, "mine", second, "sft", force=True)
    assert result.action == "replaced" and result.previous["file_name"] == "a.json"
    saved = json.loads(info.read_text(encoding="utf-8"))
    assert list(saved) == ["before", "mine"] and saved["mine"]["file_name"] == "b.json"  # replaced in place
    assert result.backup is not None and result.backup.read_bytes() == before


def test_check_writes_nothing(tmp_path: Path) -> None:
    info = tmp_path / "dataset_info.json"
    data = _write(tmp_path / "sft.json", _sft_rows())
    assert register_dataset(info, "x", data, "sft", check=True) == entry_for("sft", "sft.json")
    assert not info.exists()
    bad = _write(tmp_path / "bad.json", [{"instruction": "i", "input": "q", "output": ""}])
    with pytest.raises(DataFileError, match="row 0: field 'output' is empty"):
        register_dataset(info, "x", bad, "sft", check=True)


def test_malformed_dataset_info_is_never_touched(tmp_path: Path) -> None:
    info = tmp_path / "dataset_info.json"
    info.write_text('{"a": {"file_name": "a.json"},', encoding="utf-8")
    with pytest.raises(DataFileError, match=r"dataset_info\.json: invalid JSON at line 1"):
        register(info, "x", _write(tmp_path / "sft.json", _sft_rows()), "sft")
    assert info.read_text(encoding="utf-8") == '{"a": {"file_name": "a.json"},'
    info.write_text("[]", encoding="utf-8")
    with pytest.raises(DataFileError, match="expected a JSON object"):
        register(info, "x", tmp_path / "sft.json", "sft")
    for name in ("a,b", "with space", ""):
        with pytest.raises(RegistryError, match="dataset name"):
            register(info, name, tmp_path / "sft.json", "sft")
    with pytest.raises(RegistryError, match=r"named dataset_info\.json"):
        register(tmp_path / "info.json", "x", tmp_path / "sft.json", "sft")


def test_cli_register(tmp_path: Path) -> None:
    info = tmp_path / "data" / "dataset_info.json"
    data = _write(tmp_path / "data" / "dpo.jsonl", _pref_rows())
    base = ["register", "--dataset-info", str(info), "--name", "dpo", "--file", str(data)]
    checked = CliRunner().invoke(main, [*base, "--kind", "preference", "--check"])
    assert checked.exit_code == 0 and "ok:" in checked.output and not info.exists()
    added = CliRunner().invoke(main, [*base, "--kind", "preference"])
    assert added.exit_code == 0 and "added 'dpo' (3 rows)" in added.output and '"ranking": true' in added.output
    wrong_kind = CliRunner().invoke(main, [*base, "--kind", "sft"])
    assert wrong_kind.exit_code == 1 and "row 0: field 'output' is missing" in wrong_kind.output
    assert "Traceback" not in wrong_kind.output
    help_text = CliRunner().invoke(main, ["register", "--help"]).output
    assert "Examples:" in help_text and "preference" in help_text

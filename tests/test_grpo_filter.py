"""`lfkit grpo filter`: pass counts from really labelled samples, the keep bands, both file formats."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from lfkit.cli import main
from lfkit.data.grpo import grpo_rows_from_bird, write_grpo_rows
from lfkit.data.prompts import SchemaPromptBuilder
from lfkit.grpo.filter import FilterError, filter_grpo_data, pass_counts
from lfkit.io import read_rows
from lfkit.sql import Verifier
from lfkit.sql.label import label_candidates


def fence(sql: str) -> str:
    return f"```sql\n{sql}\n```"


@pytest.fixture
def grpo_data(demo_corpus: Path, tmp_path: Path) -> tuple[Path, list[dict]]:
    rows = grpo_rows_from_bird(demo_corpus, "dev", SchemaPromptBuilder(n_examples=0))[:3]
    path = tmp_path / "grpo.jsonl"
    write_grpo_rows(path, rows)
    return path, rows


def labelled(rows: list[dict], texts: list[list[str]]) -> list[dict]:
    """Candidate records as `lfkit eval predict --n` writes them, labelled by the shared labelling step."""
    questions = [SimpleNamespace(db_path=r["db_path"], gold_sql=r["gold_sql"]) for r in rows]
    with Verifier(workers=0) as verifier:
        labels = label_candidates(questions, texts, verifier)
    records = []
    for r, cs in zip(rows, labels, strict=True):
        candidates = [{"text": c.text, "sql": c.sql, "label": c.label} for c in cs]
        records.append({"question_id": int(r["question_id"]), "candidates": candidates})
    return records


def texts_for(rows: list[dict]) -> list[list[str]]:
    # question 0: one right, one wrong -> mixed; 1: never solved; 2: always solved
    wrong = fence("SELECT 1 FROM People WHERE 0")
    return [
        [fence(rows[0]["gold_sql"]), wrong],
        [wrong, fence("SELECT no_such_column FROM People")],
        [fence(rows[2]["gold_sql"]), fence(rows[2]["gold_sql"] + " ")],
    ]


def test_keep_bands_from_real_labels(grpo_data: tuple[Path, list[dict]], tmp_path: Path) -> None:
    data, rows = grpo_data
    records = labelled(rows, texts_for(rows))
    assert [[c["label"] for c in r["candidates"]] for r in records] == [
        ["correct", "wrong"],
        ["wrong", "error"],
        ["correct", "correct"],
    ]
    cands = tmp_path / "cands.jsonl"
    cands.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert pass_counts([cands]) == ({"0": (1, 2), "1": (0, 2), "2": (2, 2)}, 0)

    expected = {"mixed": ["0"], "solvable": ["0", "2"], "unsolved": ["0", "1"], "all": ["0", "1", "2"]}
    for keep, ids in expected.items():
        out = tmp_path / f"{keep}.jsonl"
        summary = filter_grpo_data(data, [cands], out, keep)
        kept = read_rows(out)
        assert [r["question_id"] for r in kept] == ids, keep
        assert summary["kept"] == len(ids) and summary["by_correct"] == {"0/2": 1, "1/2": 1, "2/2": 1}
        for r in kept:
            original = next(x for x in rows if x["question_id"] == r["question_id"])
            # the row is unchanged but for the two added columns
            assert {k: v for k, v in r.items() if not k.startswith("pass_")} == original
            assert r["pass_samples"] == 2 and r["pass_rate"] == {"0": 0.5, "1": 0.0, "2": 1.0}[r["question_id"]]


def test_journal_shards_add_up_and_failed_gold_is_dropped(grpo_data: tuple[Path, list[dict]], tmp_path: Path) -> None:
    data, rows = grpo_data
    records = labelled(rows, texts_for(rows))
    header = {"lfkit_journal": 1, "settings": {"num_samples": 2}}
    # shard A has question 1 solved once more (now 1/3: mixed); shard B marks question 2's gold as failed
    extra = labelled(rows[1:2], [[fence(rows[1]["gold_sql"])]])[0]
    shard_a = tmp_path / "a.candidates.jsonl"
    shard_a.write_text("".join(json.dumps(r) + "\n" for r in [header, records[0], records[1], extra]))
    shard_b = tmp_path / "b.candidates.jsonl"
    shard_b.write_text("".join(json.dumps(r) + "\n" for r in [header, {**records[2], "gold_status": "error"}]))
    counts, gold_failed = pass_counts([shard_a, shard_b])
    assert counts == {"0": (1, 2), "1": (1, 3)} and gold_failed == 1
    summary = filter_grpo_data(data, [shard_a, shard_b], tmp_path / "out.json")
    assert [r["question_id"] for r in read_rows(tmp_path / "out.json")] == ["0", "1"]
    assert summary["unsampled"] == 1 and summary["gold_failed"] == 1


def test_bad_input_names_file_record_and_field(grpo_data: tuple[Path, list[dict]], tmp_path: Path) -> None:
    data, _ = grpo_data
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question_id": 0, "candidates": [{"text": "x"}]}) + "\n")
    with pytest.raises(FilterError, match=r"bad.jsonl: record 0: candidates\[0\]: field 'label'"):
        pass_counts([bad])
    bad.write_text(json.dumps({"candidates": []}) + "\n")
    with pytest.raises(FilterError, match=r"bad.jsonl: record 0: field 'question_id'"):
        pass_counts([bad])
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"question_id": 999, "candidates": [{"label": "correct"}]}) + "\n")
    with pytest.raises(FilterError, match="no row's question_id appears in"):
        filter_grpo_data(data, [other], tmp_path / "o.jsonl")
    never = tmp_path / "never.jsonl"
    never.write_text(json.dumps({"question_id": 0, "candidates": [{"label": "wrong"}]}) + "\n")
    with pytest.raises(FilterError, match=r"no question is kept with --keep mixed \(pass counts \{'0/1': 1\}\)"):
        filter_grpo_data(data, [never], tmp_path / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists()


def test_cli_on_eval_predict_output_of_the_tiny_model(demo_corpus: Path, tmp_path: Path) -> None:
    """The real `lfkit eval predict --n` file feeds the filter; a random model solves nothing."""
    runner = CliRunner()
    data = tmp_path / "grpo.jsonl"
    args = ["data", "grpo", "--bird-dir", str(demo_corpus), "--split", "dev", "--out", str(data), "--n-examples", "0"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    cands = tmp_path / "cands.jsonl"
    predict = ["eval", "predict", "--bird-dir", str(demo_corpus), "--split", "dev", "--base-model", "tiny",
               "--n-examples", "0", "--limit", "2", "--max-new-tokens", "4", "--no-progress", "--n", "2",
               "--workers", "0", "--out", str(cands)]  # fmt: skip
    result = runner.invoke(main, predict)
    assert result.exit_code == 0, result.output
    out = tmp_path / "all.jsonl"
    result = runner.invoke(main, ["grpo", "filter", "--data", str(data), "--candidates", str(cands), "--out", str(out),
                                  "--keep", "all"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["kept"] == summary["sampled"] == 2 and summary["by_correct"] == {"0/2": 2}
    assert [r["pass_rate"] for r in read_rows(out)] == [0.0, 0.0]
    result = runner.invoke(main, ["grpo", "filter", "--data", str(data), "--candidates", str(cands), "--out", str(out)])
    assert result.exit_code == 1 and result.output.startswith("Error: ") and "no question is kept" in result.output

"""Parallel shards (issue 26): ``prefs rejects`` and ``tree build`` with ``--num-shards 2``, both
shards running at the same time as separate ``lfkit`` processes (hf backend, tiny model), one of
them SIGKILLed mid-run and re-run, then ``prefs merge`` / ``tree merge``: the same rows and labels
as one process, none lost, none twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lfkit.io import read_rows, write_rows
from lfkit.prefs import merge_outputs

LFKIT = str(Path(sys.executable).with_name("lfkit"))
QUESTIONS = 8


def journal_records(path: Path) -> list[dict]:
    """Finished records of an lfkit journal (header line skipped, a torn last line ignored)."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines(keepends=True)
    return [json.loads(line) for line in lines[1:] if line.endswith("\n")]


def canon(rows: list[dict]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


def start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def finish(proc: subprocess.Popen) -> None:
    _out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err.decode()[-3000:]


def run_sharded_with_a_kill(cmd, journal, victim: int = 1) -> None:
    """Both shards at once; shard ``victim`` SIGKILLed after its first journal record, then re-run."""
    procs = {k: start(cmd(k)) for k in (0, 1)}
    deadline = time.monotonic() + 600
    while not journal_records(journal(victim)):
        assert procs[victim].poll() is None, procs[victim].stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "shard never journalled a record"
        time.sleep(0.05)
    os.killpg(procs[victim].pid, signal.SIGKILL)
    procs[victim].wait()
    killed_at = len(journal_records(journal(victim)))
    assert procs[0].poll() is None or victim == 0, "the other shard should still be running: both ran at once"
    procs[victim] = start(cmd(victim))  # the same command resumes from the journal
    for proc in procs.values():
        finish(proc)
    assert len(journal_records(journal(victim))) > killed_at or killed_at == QUESTIONS // 2


def test_merge_keeps_distinct_no_sql_rejects(tmp_path: Path) -> None:
    # --reject-no-sql pairs of one question differ only in the model's prose: all are kept, as
    # `prefs rejects` kept them; a repeat (the same pair in two shard files) is dropped
    row = {"instruction": "q", "input": "", "chosen": "```sql\nSELECT 1\n```", "question_id": 3, "source": "rejects"}
    a, b = {**row, "rejected": "china rss Passing"}, {**row, "rejected": "Kes Mỹ_ag"}
    write_rows(tmp_path / "s0.jsonl", [a, b])
    write_rows(tmp_path / "s1.jsonl", [b])
    stats = merge_outputs([tmp_path / "s0.jsonl", tmp_path / "s1.jsonl"], tmp_path / "all.jsonl")
    assert read_rows(tmp_path / "all.jsonl") == [a, b] and stats["duplicates"] == 1


@pytest.mark.slow
def test_prefs_rejects_two_parallel_shards_one_killed_equal_one_process(
    tiny_model: Path, demo_sft: Path, demo_corpus: Path, tmp_path: Path
) -> None:
    def cmd(out: str, shard: int | None = None) -> list[str]:
        args = [LFKIT, "prefs", "rejects", "--base-model", str(tiny_model), "--sft-data", str(demo_sft)]
        args += ["--db-root", str(demo_corpus / "train_databases"), "--output", out, "--num-rejects", "2"]
        # --batch-size 1: each question decoded alone, so a sample cannot depend on which shard drew it
        args += ["--max-samples", str(QUESTIONS), "--max-new-tokens", "8", "--batch-size", "1", "--workers", "0"]
        args += ["--reject-no-sql", "--quiet"]
        return args + (["--num-shards", "2", "--shard-id", str(shard)] if shard is not None else [])

    straight = tmp_path / "one" / "dpo.jsonl"
    subprocess.run(cmd(str(straight)), check=True, capture_output=True)

    sharded = str(tmp_path / "sharded" / "dpo.shard{shard_id}.jsonl")
    shard_out = [Path(sharded.format(shard_id=k)) for k in (0, 1)]
    run_sharded_with_a_kill(lambda k: cmd(sharded, k), lambda k: Path(str(shard_out[k]) + ".candidates.jsonl"))
    merged = tmp_path / "sharded" / "dpo.jsonl"
    subprocess.run([LFKIT, "prefs", "merge", *map(str, shard_out), "--output", str(merged)], check=True)

    one, both = read_rows(straight), read_rows(merged)
    assert len(one) > 0 and len(both) == len(one) and canon(both) == canon(one)  # set-equal, no row twice
    # labels: every question's labelled candidates are the ones one process gave
    labelled = journal_records(Path(str(straight) + ".candidates.jsonl"))
    shard_labelled = [r for p in shard_out for r in journal_records(Path(str(p) + ".candidates.jsonl"))]
    assert len(labelled) == len(shard_labelled) == QUESTIONS
    assert canon(shard_labelled) == canon(labelled)


@pytest.mark.slow
def test_tree_build_two_parallel_shards_one_killed_equal_one_process(
    tiny_model: Path, demo_sft: Path, demo_corpus: Path, tmp_path: Path
) -> None:
    def cmd(out_dir: Path, shard: int | None = None) -> list[str]:
        args = [LFKIT, "tree", "build", "--base-model", str(tiny_model), "--sft-data", str(demo_sft)]
        args += ["--db-root", str(demo_corpus / "train_databases"), "--output-dir", str(out_dir)]
        args += ["--max-samples", str(QUESTIONS), "--max-depth", "2", "--sample-num", "2", "--max-new-tokens", "8"]
        args += ["--batch-size", "1", "--wave-size", "1", "--workers", "0", "--quiet"]
        return args + (["--num-shards", "2", "--shard-id", str(shard)] if shard is not None else [])

    one_dir, shard_dir = tmp_path / "one", tmp_path / "sharded"
    subprocess.run(cmd(one_dir), check=True, capture_output=True)
    run_sharded_with_a_kill(lambda k: cmd(shard_dir, k), lambda k: shard_dir / f"trees_{k}.jsonl")
    merged = shard_dir / "all_trees.json"
    shards = [str(shard_dir / f"trees_{k}.jsonl") for k in (0, 1)]
    subprocess.run([LFKIT, "tree", "merge", "--kind", "trees", "--output", str(merged), *shards], check=True)

    one = journal_records(one_dir / "trees_0.jsonl")
    both = read_rows(merged)
    assert len(one) == len(both) == QUESTIONS
    assert canon(both) == canon(one)  # every tree, node and label as one process built it

"""A prefs run killed midway (SIGKILL to a real process) and restarted with the same command
ends with exactly the rows of an uninterrupted run: none lost, none twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lfkit.io import read_rows

TESTS = Path(__file__).resolve().parent

SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from prefs_canned import CannedBackend, cycle_answers
from lfkit.prefs import RejectsConfig, build_rejects

sft, db_root, out, delay = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
kinds = ["wrong", "correct_rewrite", "error", "prose"]
backend = CannedBackend(cycle_answers(sft, kinds), delay=delay)
cfg = RejectsConfig(sft_data=sft, db_root=db_root, output=out, num_samples=4, max_samples=12, batch_size=2, workers=0)
summary = build_rejects(cfg, backend, progress=False)
print(json.dumps({{"asked": len(backend.chats), "resumed": summary.resumed, "pairs": summary.pairs}}))
"""


def journal_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines(keepends=True)
    return [json.loads(line) for line in lines[1:] if line.endswith("\n")]


def kill_after(cmd: list[str], journal: Path, records: int, limit: float = 300) -> subprocess.Popen:
    """Start ``cmd`` in its own process group and SIGKILL the group once the journal holds ``records``."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + limit
    while len(journal_records(journal)) < records:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the run did not reach the kill point in time"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc


def test_killed_run_resumes_without_lost_or_duplicate_rows(demo_sft: Path, demo_corpus: Path, tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT.format(tests=str(TESTS)))
    db_root = str(demo_corpus / "train_databases")
    out = tmp_path / "run" / "dpo.jsonl"
    journal = Path(str(out) + ".candidates.jsonl")
    cmd = [sys.executable, str(script), str(demo_sft), db_root, str(out)]

    proc = kill_after([*cmd, "0.4"], journal, records=4)
    assert proc.returncode == -signal.SIGKILL
    before = journal_records(journal)
    assert 4 <= len(before) < 12, "killed midway"
    assert not out.exists()  # the output is written only from a finished journal

    done = subprocess.run([*cmd, "0"], capture_output=True, text=True, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["resumed"] == len(before) and report["asked"] == 12 - len(before)
    after = journal_records(journal)
    ids = [r["question_id"] for r in after]
    assert len(ids) == len(set(ids)) == 12
    assert after[: len(before)] == before  # what was journalled is kept as it was

    straight = tmp_path / "straight" / "dpo.jsonl"
    subprocess.run([sys.executable, str(script), str(demo_sft), db_root, str(straight), "0"], check=True)
    rows = read_rows(out)
    assert rows == read_rows(straight) and len(rows) == report["pairs"] > 0
    assert len({json.dumps(r, sort_keys=True) for r in rows}) == len(rows)


@pytest.mark.slow
def test_killed_cli_run_with_the_hf_backend_resumes(
    tiny_model: Path, demo_sft: Path, demo_corpus: Path, tmp_path: Path
) -> None:
    lfkit = str(Path(sys.executable).with_name("lfkit"))

    def cmd(out: Path) -> list[str]:
        args = [lfkit, "prefs", "rejects", "--base-model", str(tiny_model), "--sft-data", str(demo_sft)]
        args += ["--db-root", str(demo_corpus / "train_databases"), "--output", str(out), "--num-rejects", "2"]
        # --batch-size 1: each question decoded alone, so samples cannot depend on the restart point
        return [*args, "--max-samples", "6", "--max-new-tokens", "6", "--batch-size", "1", "--workers", "0", "--quiet"]

    out = tmp_path / "a" / "dpo.json"
    journal = Path(str(out) + ".candidates.jsonl")
    kill_after(cmd(out), journal, records=2)
    before = journal_records(journal)
    assert 2 <= len(before) < 6
    subprocess.run(cmd(out), check=True, capture_output=True)
    after = journal_records(journal)
    assert [r["question_id"] for r in after] == [r["question_id"] for r in read_rows(demo_sft)[:6]]

    straight = tmp_path / "b" / "dpo.json"
    subprocess.run(cmd(straight), check=True, capture_output=True)
    assert after == journal_records(Path(str(straight) + ".candidates.jsonl"))
    assert read_rows(out) == read_rows(straight)

    # another precision would sample other candidates: resuming in it is refused, naming the setting
    other = subprocess.run([*cmd(out), "--dtype", "bfloat16"], capture_output=True, text=True)
    assert other.returncode == 1 and "other settings (dtype: 'auto' -> 'bfloat16')" in other.stderr, other.stderr
    assert journal_records(journal) == after

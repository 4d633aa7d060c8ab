"""lfkit.tree.build with a scripted backend: breadth-first waves, own-outcome feedback, resume, shards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from tree_canned import GOLD_NAMES, THRESHOLDS, ScriptedBackend, make_db, make_sft

from lfkit.cli import main
from lfkit.jobs import JobError
from lfkit.registry import validate_data_file
from lfkit.tree.build import TreeBuildConfig, build_trees
from lfkit.tree.model import load_trees
from lfkit.tree.verify import verify_trees

TESTS = Path(__file__).parent


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, Path]:
    db_root = make_db(tmp_path / "dbs")
    return make_sft(tmp_path / "sft.json", db_root), db_root


def config(corpus, out: Path, **kw) -> TreeBuildConfig:
    sft, db_root = corpus
    kw = {"max_depth": 3, "sample_num": 2, "workers": 0, **kw}
    return TreeBuildConfig(sft_data=str(sft), db_root=str(db_root), output_dir=str(out), **kw)


def test_breadth_first_across_questions(corpus, tmp_path: Path) -> None:
    backend = ScriptedBackend.make()
    summary = build_trees(config(corpus, tmp_path / "out"), backend, progress=False)
    n = len(THRESHOLDS)
    # one generate call per depth for ALL questions: n, then 2n, then 3n frontier prompts
    assert [len(c) for c in backend.calls] == [n, 2 * n, 3 * n]
    assert summary["generate_calls"] == 3 and summary["prompts"] == 6 * n
    assert summary["trees"] == n and summary["nodes"] == 12 * n
    assert summary["nodes_per_depth"] == {
        "depth_1": {"total": 2 * n, "correct": 0},
        "depth_2": {"total": 4 * n, "correct": n},
        "depth_3": {"total": 6 * n, "correct": n},
    }
    assert summary["rescued_by_revision"] == n and summary["correct_at_depth_1"] == 0
    trees = load_trees(tmp_path / "out" / "all_trees.json")
    assert [t.question_id for t in trees] == list(range(n))
    tree = trees[0]
    dist = {nid: node.revision_distance for nid, node in tree.nodes.items()}
    assert dist == {
        "node_1_1": 1, "node_1_2": 999, "node_2_1": 0, "node_2_2": 1, "node_2_3": 999, "node_2_4": 999,
        "node_3_1": 0, "node_3_2": 999, "node_3_3": 999, "node_3_4": 999, "node_3_5": 999, "node_3_6": 999,
    }  # fmt: skip
    assert tree.nodes["node_1_2"].label == "error" and tree.nodes["node_2_3"].label == "wrong"
    assert tree.nodes["node_1_1"].execution_feedback == "The query ran and returned no rows."
    assert "no such column: nme" in tree.nodes["node_1_2"].execution_feedback
    assert tree.nodes["node_1_1"].input_seq.startswith(tree.initial_input_seq)  # SFT prompt, extended
    assert tree.nodes["node_2_1"].input_seq == "" and tree.nodes["node_3_2"].input_seq == ""  # not expanded
    assert tree.nodes["node_2_2"].parent_id == "node_1_1" and tree.nodes["node_1_1"].parent_id == "node_initial"
    assert tree.question == f"Which items cost more than {THRESHOLDS[0]}?"
    # nothing the model was shown holds gold's rows
    for call in backend.calls:
        for chat in call:
            assert not any(name in m["content"] for m in chat for name in GOLD_NAMES)
    report = verify_trees(trees, corpus[1], workers=0)
    assert report.ok, report.problems[:3]
    assert report.checks["feedback_leak"]["checked"] > 0  # every wrong node's own-outcome feedback
    assert not report.warnings  # input_seq exactly on the expanded nodes


def test_gold_row_count_and_prune(corpus, tmp_path: Path) -> None:
    backend = ScriptedBackend.make()
    build_trees(config(corpus, tmp_path / "out", gold_row_count=True, prune=True), backend, progress=False)
    revisions = [c[-1]["content"] for call in backend.calls[1:] for c in call]
    assert all("The correct result has " in r for r in revisions)
    assert "The correct result has 2 rows." in revisions[0]  # question 0: gold returns 2 rows
    trees = load_trees(tmp_path / "out" / "all_trees.json")
    assert set(trees[0].nodes) == {"node_1_1", "node_2_1", "node_2_2", "node_3_1"}
    assert verify_trees(trees, corpus[1], workers=0).ok


def test_resume_after_kill(corpus, tmp_path: Path) -> None:
    sft, db_root = corpus
    out = tmp_path / "killed"
    script = tmp_path / "run.py"
    script.write_text(
        "import sys\n"
        f"sys.path[:0] = [{str(TESTS)!r}]\n"
        "from tree_canned import ScriptedBackend\n"
        "from lfkit.tree.build import TreeBuildConfig, build_trees\n"
        f"cfg = TreeBuildConfig(sft_data={str(sft)!r}, db_root={str(db_root)!r}, output_dir={str(out)!r},\n"
        "                      max_depth=3, sample_num=2, wave_size=1, workers=0)\n"
        "build_trees(cfg, ScriptedBackend.make(delay=0.3), progress=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent)}
    proc = subprocess.Popen([sys.executable, str(script)], env=env)
    trees_file = out / "trees_0.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if trees_file.exists() and trees_file.read_text().count("\n") >= 3:  # header + 2 trees
            break
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = trees_file.read_text().count("\n") - 1
    assert 2 <= done_before < len(THRESHOLDS)

    backend = ScriptedBackend.make()
    summary = build_trees(config(corpus, out, wave_size=1), backend, progress=False)
    assert summary["resumed"] == done_before and summary["built"] == len(THRESHOLDS) - done_before
    lines = trees_file.read_text().splitlines()
    qids = [json.loads(line)["question_id"] for line in lines[1:]]
    assert sorted(qids) == list(range(len(THRESHOLDS)))  # none lost, none twice

    fresh = tmp_path / "fresh"
    build_trees(config(corpus, fresh, wave_size=1), ScriptedBackend.make(), progress=False)
    assert json.loads((out / "all_trees.json").read_text()) == json.loads((fresh / "all_trees.json").read_text())


def test_resume_refuses_other_settings(corpus, tmp_path: Path) -> None:
    build_trees(config(corpus, tmp_path / "out", max_samples=2), ScriptedBackend.make(), progress=False)
    with pytest.raises(JobError, match=r"other settings.*max_depth: 3 -> 4"):
        build_trees(config(corpus, tmp_path / "out", max_samples=2, max_depth=4), ScriptedBackend.make())


def test_shards_merge_verify_pairs_register(corpus, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for shard_id in (0, 1):
        cfg = config(corpus, out, num_shards=2, shard_id=shard_id, wave_size=2)
        summary = build_trees(cfg, ScriptedBackend.make(), progress=False)
        assert summary["trees"] == 3 and "all_trees" not in summary
    runner = CliRunner()
    all_trees = out / "all_trees.json"
    res = runner.invoke(
        main, ["tree", "merge", "--kind", "trees", "--output", str(all_trees), str(out / "trees_1.jsonl"),
               str(out / "trees_0.jsonl")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert [t.question_id for t in load_trees(all_trees)] == list(range(6))
    pairs = out / "tree_pairs.jsonl"
    res = runner.invoke(
        main, ["tree", "pairs", "--trees", str(all_trees), "--output", str(pairs), "--test-fraction", "0.2"]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        main, ["tree", "verify", "--tree-file", str(all_trees), "--db-root", str(corpus[1]), "--workers", "0",
               "--pairs", str(pairs)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    info = out / "dataset_info.json"
    res = runner.invoke(
        main, ["register", "--dataset-info", str(info), "--name", "text2sql_tree", "--file", str(pairs),
               "--kind", "preference"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(info.read_text())["text2sql_tree"]["ranking"] is True
    assert validate_data_file(pairs, "preference") > 0


@pytest.mark.slow
def test_tiny_model_end_to_end(tiny_model: Path, demo_sft: Path, demo_corpus: Path, corpus, tmp_path: Path) -> None:
    """The real CLI and hf backend build, resume and verify trees; tree pairs load through LF's rm stage."""
    out = tmp_path / "trees"
    db_root = demo_corpus / "train_databases"
    args = ["tree", "build", "--preset", "tiny", "--sft-data", str(demo_sft), "--db-root", str(db_root)]
    args += ["--output-dir", str(out), "--max-samples", "3", "--max-depth", "2", "--sample-num", "2"]
    args += ["--max-new-tokens", "8", "--workers", "0", "--quiet"]
    runner = CliRunner()
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output[res.output.index("{") :])
    # a random model writes no SQL: every node is labelled and expanded down to max depth
    assert summary["trees"] == 3 and summary["nodes"] == 3 * (2 + 4) and summary["generate_calls"] == 2
    res = runner.invoke(main, args)  # re-run: everything resumed, nothing generated
    again = json.loads(res.output[res.output.index("{") :])
    assert again["resumed"] == 3 and again["built"] == 0 and again["generate_calls"] == 0
    all_trees = out / "all_trees.json"
    res = runner.invoke(main, ["tree", "verify", "--tree-file", str(all_trees), "--db-root", str(db_root)])
    assert res.exit_code == 0, res.output

    # pairs of (scripted) trees: registered, then read by LLaMA-Factory's own rm preprocessing
    from lf_load import lf_dataset

    build_trees(config(corpus, tmp_path / "scripted"), ScriptedBackend.make(), progress=False)
    data = tmp_path / "data"
    pairs = data / "tree_pairs.jsonl"
    res = runner.invoke(
        main, ["tree", "pairs", "--trees", str(tmp_path / "scripted" / "all_trees.json"), "--output", str(pairs),
               "--test-fraction", "0"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        main, ["register", "--dataset-info", str(data / "dataset_info.json"), "--name", "t2s_tree", "--file",
               str(pairs), "--kind", "preference"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    dataset, tok = lf_dataset(data, "t2s_tree", "rm", tiny_model, "qwen3_nothink", tmp_path)
    n_rows = len(pairs.read_text().splitlines())
    assert len(dataset) == n_rows > 0
    assert "```sql" in tok.decode(dataset[0]["chosen_input_ids"])


def test_merge_refuses_an_unfinished_shard(corpus, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for shard_id in (0, 1):
        build_trees(config(corpus, out, num_shards=2, shard_id=shard_id), ScriptedBackend.make(), progress=False)
    shard1 = out / "trees_1.jsonl"
    lines = shard1.read_text().splitlines(keepends=True)
    shard1.write_text("".join(lines[:-1]))  # as if killed before its last tree
    res = CliRunner().invoke(
        main, ["tree", "merge", "--kind", "trees", "--output", str(out / "all.json"), str(out / "trees_0.jsonl"),
               str(shard1)],
    )  # fmt: skip
    assert res.exit_code == 1 and "trees_1.jsonl is unfinished: 1 of its 3 questions" in res.output
    build_trees(config(corpus, out, num_shards=2, shard_id=1), ScriptedBackend.make(), progress=False)  # finish it
    res = CliRunner().invoke(
        main, ["tree", "merge", "--kind", "trees", "--output", str(out / "all.json"), str(out / "trees_0.jsonl"),
               str(shard1)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["trees"] == 6

"""lfkit.tree.merge: tree and pair shards of one run merge; shards of other settings are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from tree_canned import canned_tree

from lfkit.cli import main
from lfkit.tree.merge import merge_pair_shards, merge_tree_shards
from lfkit.tree.model import TreeError, load_trees, read_sidecar

SETTINGS = {"max_depth": 3, "sample_num": 2, "temperature": 0.7, "seed": 1, "num_shards": 2}


def write_shard(path: Path, shard_id: int, qids: list[int], **changes) -> Path:
    header = {"lfkit_journal": 1, "settings": {**SETTINGS, "shard_id": shard_id, **changes}}
    lines = [header]
    for q in qids:
        tree = canned_tree(q)
        tree.sft_index = q
        lines.append(tree.to_dict())
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_merge_tree_shards_in_sft_order(tmp_path: Path) -> None:
    s0 = write_shard(tmp_path / "trees_0.jsonl", 0, [0, 2, 4])
    s1 = write_shard(tmp_path / "trees_1.jsonl", 1, [1, 3])
    out = tmp_path / "all_trees.json"
    summary = merge_tree_shards([s1, s0], out)
    assert summary["trees"] == 5
    assert [t["question_id"] for t in json.loads(out.read_text())] == [0, 1, 2, 3, 4]
    assert [t.question_id for t in load_trees(out)] == [0, 1, 2, 3, 4]
    side = read_sidecar(out)
    assert side["settings"] == SETTINGS  # shard_id dropped, the rest shared


def test_merge_refuses_other_settings_missing_and_repeated_shards(tmp_path: Path) -> None:
    s0 = write_shard(tmp_path / "a.jsonl", 0, [0])
    other = write_shard(tmp_path / "b.jsonl", 1, [1], temperature=1.0)
    with pytest.raises(TreeError, match=r"other settings .*temperature: 0.7 vs 1.0"):
        merge_tree_shards([s0, other], tmp_path / "out.json")
    with pytest.raises(TreeError, match=r"shard\(s\) 1 of 2 are missing"):
        merge_tree_shards([s0], tmp_path / "out.json")
    assert merge_tree_shards([s0], tmp_path / "out.json", allow_missing=True)["trees"] == 1
    again = write_shard(tmp_path / "c.jsonl", 0, [2])
    with pytest.raises(TreeError, match="are both shard 0"):
        merge_tree_shards([s0, again], tmp_path / "out.json")
    dup_q = write_shard(tmp_path / "d.jsonl", 1, [0])
    with pytest.raises(TreeError, match="question_id 0 is also in"):
        merge_tree_shards([s0, dup_q], tmp_path / "out.json")
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps(canned_tree().to_dict()) + "\n")
    with pytest.raises(TreeError, match="no settings header"):
        merge_tree_shards([bare], tmp_path / "out.json")


def test_pairs_shards_then_merge(tmp_path: Path) -> None:
    runner = CliRunner()
    s0 = write_shard(tmp_path / "trees_0.jsonl", 0, list(range(0, 20, 2)))
    s1 = write_shard(tmp_path / "trees_1.jsonl", 1, list(range(1, 20, 2)))
    rs = tmp_path / "rs"
    for i, shard in enumerate((s0, s1)):
        res = runner.invoke(
            main,
            ["tree", "pairs", "--trees", str(shard), "--output", str(tmp_path / f"p{i}.jsonl"),
             "--test-fraction", "0", "--resqlver-dir", str(rs)],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
    shards = [rs / "final_data_emerge_shard_0.json", rs / "final_data_emerge_shard_1.json"]
    summary = merge_pair_shards(shards, rs, test_fraction=0.1, seed=0)
    assert summary["train_pairs"] + summary["test_pairs"] == 20 * 29 and summary["test_questions"] == 2
    train = json.loads((rs / "final_data_train.json").read_text())
    test = json.loads((rs / "final_data_test.json").read_text())
    assert len(test) == 2 * 29
    assert not {r["question_id"] for r in train} & {r["question_id"] for r in test}
    with pytest.raises(TreeError, match=r"shard\(s\) 1 of 2 are missing"):
        merge_pair_shards(shards[:1], tmp_path / "x")
    # a pairs shard made with other rules is refused
    res = runner.invoke(
        main,
        ["tree", "pairs", "--trees", str(s1), "--output", str(tmp_path / "q.jsonl"), "--test-fraction", "0",
         "--rules", "family", "--resqlver-dir", str(rs)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["tree", "merge", "--kind", "pairs", "--output", str(rs), *map(str, shards)])
    assert res.exit_code == 1 and "other settings" in res.output and "rules" in res.output

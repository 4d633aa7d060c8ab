"""ReSQLver's current trees and shard files (tests/resqlver_current.py, written by its code's rules) are read,
verified for structure with their feedback leak accepted, and paired as ReSQLver pairs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from resqlver_current import write_run
from tree_canned import make_db

from lfkit.cli import main
from lfkit.tree.model import load_trees
from lfkit.tree.pairs import build_pairs


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[Path]]]:
    root = tmp_path_factory.mktemp("resqlver")
    db_root = make_db(root / "dbs")
    return db_root, write_run(root / "output", db_root)


def test_current_trees_are_read_with_the_key_as_node_id(run) -> None:
    _, files = run
    raw = json.loads(files["trees"][0].read_text())
    assert all("node_id" not in node for node in raw["nodes"].values())  # ReSQLver's current TreeNode.to_dict
    first, second = load_trees(files["trees"])
    assert first.question_id == "0" and list(first.nodes) == [n.node_id for n in first.nodes.values()]
    assert first.nodes["node_2_4"].parent_id == "node_1_2" and first.nodes["node_2_4"].children_ids == ["node_3_2"]
    assert (first.nodes["node_1_1"].d, first.nodes["node_1_1"].j) == (1, 1)
    # written by lfkit, the node reads back in ReSQLver's way too: its id is only the key
    assert "node_id" not in first.to_dict()["nodes"]["node_1_1"]
    assert list(second.nodes) == ["node_1_2"]  # node_1_1 had no correct descendant: pruned


def verify(db_root: Path, files: dict[str, list[Path]], out: Path, *extra: str):
    args = ["tree", "verify", "--db-root", str(db_root), "--workers", "0", "--output", str(out)]
    for path in files["trees"]:
        args += ["--tree-file", str(path)]
    for path in [*files["emerge"], *files["baseline"]]:
        args += ["--pairs", str(path)]
    return CliRunner().invoke(main, [*args, *extra])


def test_verify_reports_the_leak_as_its_own_category_and_the_status_rule_as_a_difference(run, tmp_path) -> None:
    db_root, files = run
    out = tmp_path / "report.json"
    result = verify(db_root, files, out)
    assert result.exit_code == 1, result.output
    report = json.loads(out.read_text())
    # the only problems: gold's rows in the feedback of the wrong nodes (their revision prompts show them)
    assert {p["check"] for p in report["problems"]} == {"feedback_leak"}
    assert sorted(p["node_id"] for p in report["problems"]) == ["node_1_1", "node_1_2", "node_2_1", "node_2_4"]
    # question "1": ReSQLver wrote "bad" (node_1_1 pruned) where node_1_2 is correct -- a rule, not a corruption
    rule = [w for w in report["warnings"] if w["check"] == "tree_status_rule"]
    assert [(w["question_id"], w["node_id"]) for w in rule] == [("1", None)]
    assert "ReSQLver's rule (node_1_1 only)" in rule[0]["message"] and "it is 'good'" in rule[0]["message"]
    assert report["labels"] == {"executed": 8, "marked_correct": 4, "verified_correct": 4, "mismatches": 0}
    assert report["pairs"] == 14 and report["checks"]["pair_nodes"] == {"checked": 14, "problems": 0}

    result = verify(db_root, files, out, "--allow", "feedback_leak")
    assert result.exit_code == 0, result.output
    assert "problems 4 (accepted: --allow)" in result.output
    report = json.loads(out.read_text())
    assert report["ok"] is True and report["problems"] == [] and report["allowed"] == ["feedback_leak"]
    assert len(report["accepted"]) == 4


def test_verify_still_fails_a_corrupt_resqlver_tree_under_allow(run, tmp_path) -> None:
    db_root, files = run
    data = json.loads(files["trees"][0].read_text())
    data["nodes"]["node_2_1"]["revision_distance"] = 5
    data["tree_status"] = "bad"  # neither rule gives "bad": node_1_1 reaches a correct answer
    bad = tmp_path / "tree_0.json"
    bad.write_text(json.dumps(data, indent=2))
    out = tmp_path / "report.json"
    result = verify(db_root, {"trees": [bad], "emerge": [], "baseline": []}, out, "--allow", "feedback_leak")
    assert result.exit_code == 1
    problems = json.loads(out.read_text())["problems"]
    assert sorted((p["check"], p["node_id"] or "") for p in problems) == [
        ("revision_distance", ""),  # the tree's status
        ("revision_distance", "node_2_1"),
    ]


def test_pairs_of_current_trees_match_resqlvers_shard(run) -> None:
    _, files = run
    result = build_pairs(load_trees(files["trees"]), test_fraction=0, rules=("family",))
    ours = sorted(json.dumps(r, sort_keys=True) for r in result.resqlver)
    theirs = [row for path in files["emerge"] for row in json.loads(path.read_text())]
    assert len(ours) == len(theirs) == 10
    # ReSQLver's shard row, key for key, plus `prompt` (the same text: its train.py and evaluate.py read it)
    assert ours == sorted(json.dumps({**r, "prompt": r["instruction"]}, sort_keys=True) for r in theirs)

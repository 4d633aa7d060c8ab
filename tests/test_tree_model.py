"""lfkit.tree.model: distances, pruning, JSON round trip, ReSQLver's trees, malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tree_canned import CANNED, DISTANCES, canned_tree

from lfkit.errors import LfkitError
from lfkit.tree.model import (
    INF_DISTANCE,
    INITIAL,
    RevisionTree,
    TreeError,
    TreeNode,
    load_trees,
    revision_distances,
)


def test_distances_match_hand_computed_values() -> None:
    tree = canned_tree()
    assert {nid: n.revision_distance for nid, n in tree.nodes.items()} == DISTANCES
    assert tree.tree_status == "good"
    stats = tree.statistics()
    assert stats["total_nodes"] == 12 and stats["correct_nodes"] == 3
    assert stats["depth_statistics"] == {
        "depth_1": {"total": 2, "correct": 0},
        "depth_2": {"total": 4, "correct": 1},
        "depth_3": {"total": 6, "correct": 2},
    }
    assert stats["rescued"] is True and stats["correct_at_depth_1"] is False
    assert stats["labels"] == {"correct": 3, "wrong": 7, "error": 1, "timeout": 0, "no_sql": 1}


def test_distance_rules_edge_cases() -> None:
    # a wrong leaf is infinite; a correct node with (corrupt) children is still 0; a cycle is infinite
    a = TreeNode("node_1_1", INITIAL, 1, 1, children_ids=["node_2_1"])
    b = TreeNode("node_2_1", "node_1_1", 2, 1, children_ids=["node_1_1"])  # cycle a <-> b
    c = TreeNode("node_1_2", INITIAL, 1, 2, is_correct=True, children_ids=["node_2_2"])
    d = TreeNode("node_2_2", "node_1_2", 2, 2)
    got = revision_distances({n.node_id: n for n in (a, b, c, d)})
    assert got == {"node_1_1": INF_DISTANCE, "node_2_1": INF_DISTANCE, "node_1_2": 0, "node_2_2": INF_DISTANCE}
    # a chain: wrong -> wrong -> wrong -> correct gives 3, 2, 1, 0
    chain = {}
    for k in range(1, 5):
        nid = f"node_{k}_1"
        chain[nid] = TreeNode(
            nid, INITIAL if k == 1 else f"node_{k - 1}_1", k, 1, is_correct=k == 4, children_ids=[f"node_{k + 1}_1"]
        )
    chain["node_4_1"].children_ids = []
    assert revision_distances(chain) == {"node_1_1": 3, "node_2_1": 2, "node_3_1": 1, "node_4_1": 0}
    bad = RevisionTree(1, "db", nodes={"node_1_1": TreeNode("node_1_1", INITIAL, 1, 1)})
    bad.compute_distances()
    assert bad.tree_status == "bad" and bad.nodes["node_1_1"].revision_distance == INF_DISTANCE


def test_prune_keeps_only_paths_to_a_correct_node() -> None:
    tree = canned_tree()
    removed = tree.prune()
    assert removed == 5
    assert set(tree.nodes) == {"node_1_1", "node_1_2", "node_2_1", "node_2_2", "node_2_4", "node_3_1", "node_3_5"}
    assert tree.nodes["node_1_2"].children_ids == ["node_2_4"]
    assert tree.nodes["node_2_4"].children_ids == ["node_3_5"] and tree.nodes["node_2_4"].children_num == 1
    tree.compute_distances()  # the kept nodes keep their distances
    assert {nid: n.revision_distance for nid, n in tree.nodes.items()} == {nid: DISTANCES[nid] for nid in tree.nodes}


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    tree = canned_tree(question_id="q-7")
    tree.sft_index = 3
    data = tree.to_dict()
    assert set(data) >= {
        "question_id", "db_id", "question", "evidence", "difficulty", "SQL", "node_initial", "nodes",
        "max_depth", "sample_num", "tree_status", "statistics", "instruction", "input",
    }  # fmt: skip
    node = data["nodes"]["node_2_2"]
    # ReSQLver's current TreeNode.to_dict, key for key and in its order (the id is the key of `nodes`),
    # then lfkit's execution_status and label
    assert list(node.items()) == [
        ("parent_id", "node_1_1"),
        ("d", 2),
        ("j", 2),
        ("children_num", 2),
        ("children_ids", ["node_3_1", "node_3_2"]),
        ("generated_sql", CANNED["node_2_2"][1]),
        ("execution_feedback", ""),
        ("is_correct", False),
        ("input_seq", "revision prompt of node_2_2"),
        ("revision_distance", 1),
        ("execution_status", ""),
        ("label", "wrong"),
    ]
    assert data["nodes"]["node_1_1"]["parent_id"] == "node_initial"
    back = RevisionTree.from_dict(json.loads(json.dumps(data)))
    assert back.to_dict() == data
    path = tmp_path / "trees.jsonl"
    path.write_text(json.dumps(data) + "\n" + json.dumps(canned_tree(8).to_dict()) + "\n")
    assert [t.question_id for t in load_trees(path)] == ["q-7", 8]


def resqlver_tree() -> dict:
    """A tree in ReSQLver's first format (commit 4ce398a: nodes carry `node_id`; one builder version wrote
    `depth`). Its current format is in tests/resqlver_current.py."""
    node = {
        "node_id": "node_1_1",
        "parent_id": "node_initial",
        "depth": 1,
        "j": 1,
        "generated_sql": "SELECT name FROM items WHERE price > 10",
        "execution_feedback": "Correct",
        "is_correct": True,
        "input_seq": "",
        "children_ids": [],
        "revision_distance": 0,
    }
    wrong = dict(node, node_id="node_1_2", j=2, generated_sql="SELECT name FROM items", is_correct=False)
    # their builder appends children_ids but leaves children_num at 0, and feeds gold's rows back
    wrong.update(children_ids=["node_2_1"], children_num=0, revision_distance=1, execution_feedback="Incorrect result.")
    wrong["input_seq"] = "You are a SQL debugging expert. ..."
    child = dict(node, node_id="node_2_1", parent_id="node_1_2", depth=2, j=1)
    child["generated_sql"] = "SELECT name FROM items WHERE price >= 11"
    return {
        "question_id": 12,
        "db_id": "shop",
        "question": "Which items cost more than 10?",
        "evidence": "",
        "difficulty": "simple",
        "SQL": "SELECT name FROM items WHERE price > 10",
        "node_initial": {"input_seq": "You are a SQL expert.\nDatabase Schema: ...\nQuestion: Which items?"},
        "nodes": {"node_1_1": node, "node_1_2": wrong, "node_2_1": child},
        "max_depth": 5,
        "sample_num": 2,
        "tree_status": "good",
        "statistics": {"total_nodes": 2},
    }


def test_reads_resqlver_trees_and_their_quirks(tmp_path: Path) -> None:
    # compare.py's quirk: a tree wrapped in a one-element list
    path = tmp_path / "tree_12.json"
    path.write_text(json.dumps([resqlver_tree()]))
    (tree,) = load_trees(path)
    assert tree.nodes["node_1_1"].d == 1 and tree.nodes["node_1_1"].label == ""
    assert tree.nodes["node_1_1"].children_num is None
    assert tree.prompt() == ("You are a SQL expert.", "Database Schema: ...\nQuestion: Which items?")
    single = tmp_path / "single.json"
    single.write_text(json.dumps(resqlver_tree()))
    assert load_trees(single)[0].question_id == 12


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda t: t.pop("nodes"), "(question_id 7): field 'nodes' is missing"),
        (lambda t: t.pop("SQL"), "(question_id 7): field 'SQL' is missing"),
        (lambda t: t.update(max_depth="5"), "field 'max_depth' must be an integer, got a string"),
        (lambda t: t["nodes"]["node_2_1"].update(d="2"), "node 'node_2_1': field 'd' must be an integer"),
        (lambda t: t["nodes"]["node_2_1"].update(is_correct=1), "field 'is_correct' must be true/false"),
        (lambda t: t["nodes"]["node_3_1"].pop("generated_sql"), "node 'node_3_1': field 'generated_sql' is missing"),
        (lambda t: t["nodes"]["node_1_1"].update(children_ids=[1]), "field 'children_ids' item 0 must be a string"),
        (lambda t: t["nodes"]["node_1_1"].update(label="great"), "field 'label' must be one of"),
        (lambda t: t.update(nodes=[]), "field 'nodes' must be an object, got a list"),
    ],
)
def test_malformed_trees_name_the_tree_and_field(tmp_path: Path, mutate, expected: str) -> None:
    data = canned_tree().to_dict()
    mutate(data)
    path = tmp_path / "all_trees.json"
    path.write_text(json.dumps([data]))
    with pytest.raises(TreeError) as exc:
        load_trees(path)
    assert isinstance(exc.value, LfkitError)
    assert str(path) in str(exc.value) and "tree 0" in str(exc.value)
    assert expected in str(exc.value)


def test_not_json_and_not_a_tree(tmp_path: Path) -> None:
    bad = tmp_path / "all_trees.json"
    bad.write_text('[{"question_id": 1,')
    with pytest.raises(TreeError, match=r"all_trees.json: not valid JSON \(line 1"):
        load_trees(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(TreeError, match=r"tree 0: expected a tree \(JSON object\), got an integer"):
        load_trees(bad)
    jl = tmp_path / "trees.jsonl"
    jl.write_text(json.dumps(canned_tree().to_dict()) + "\n{oops\n")
    with pytest.raises(TreeError, match=r"trees.jsonl: line 2: not valid JSON"):
        load_trees(jl)
    with pytest.raises(TreeError, match="tree file not found"):
        load_trees(tmp_path / "missing.json")

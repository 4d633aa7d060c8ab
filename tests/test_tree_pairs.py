"""lfkit.tree.pairs: ReSQLver's family rule, compare.py's correct-vs-wrong rule, dedup, split, formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from tree_canned import DISTANCES, canned_tree

from lfkit.cli import main
from lfkit.data.prompts import format_sql_answer
from lfkit.registry import validate_data_file
from lfkit.tree.model import INITIAL, RevisionTree
from lfkit.tree.pairs import (
    PAIR_RULES,
    PairRuleError,
    build_pairs,
    correct_wrong_pairs,
    family_pairs,
    register_pair_rule,
    split_questions,
    tree_pairs,
)


def ids(pairs) -> set[tuple[str, str]]:
    return {(c.node_id, r.node_id) for c, r in pairs}


# Worked out by hand from the tree in tree_canned.py (chosen, rejected); node_3_6 has no SQL.
FAMILY = {
    ("node_1_1", "node_1_2"),
    ("node_2_1", "node_1_1"),
    ("node_2_1", "node_1_2"),
    ("node_2_2", "node_1_2"),
    ("node_2_1", "node_2_2"),
    ("node_1_1", "node_2_3"),
    ("node_1_2", "node_2_3"),
    ("node_2_4", "node_1_2"),
    ("node_2_4", "node_2_3"),
    ("node_3_1", "node_1_1"),
    ("node_1_1", "node_3_2"),
    ("node_2_1", "node_3_2"),
    ("node_3_1", "node_2_2"),
    ("node_2_2", "node_3_2"),
    ("node_3_1", "node_3_2"),
    ("node_1_2", "node_3_3"),
    ("node_1_2", "node_3_4"),
    ("node_2_4", "node_3_3"),
    ("node_2_4", "node_3_4"),
    ("node_3_5", "node_1_2"),
    ("node_3_5", "node_2_3"),
    ("node_3_5", "node_2_4"),
}
CORRECT_WRONG = {
    ("node_2_1", "node_2_2"),
    ("node_2_1", "node_2_3"),
    ("node_2_1", "node_2_4"),
    ("node_3_1", "node_3_2"),
    ("node_3_1", "node_3_3"),
    ("node_3_1", "node_3_4"),
    ("node_3_5", "node_3_2"),
    ("node_3_5", "node_3_3"),
    ("node_3_5", "node_3_4"),
    ("node_2_1", "node_1_1"),
    ("node_3_1", "node_2_2"),
    ("node_3_5", "node_2_4"),
}


def test_family_rule_matches_hand_computed_pairs() -> None:
    pairs = family_pairs(canned_tree())
    assert len(pairs) == len(FAMILY) == 22
    assert ids(pairs) == FAMILY
    assert all(c.revision_distance < r.revision_distance for c, r in pairs)


def test_correct_vs_wrong_rule_matches_hand_computed_pairs() -> None:
    pairs = correct_wrong_pairs(canned_tree())
    assert ids(pairs) == CORRECT_WRONG and len(pairs) == 12
    assert all(c.is_correct and not r.is_correct for c, r in pairs)


def test_union_is_deduplicated_and_kinds_are_right() -> None:
    pairs, counts = tree_pairs(canned_tree())
    got = {(p.chosen.node_id, p.rejected.node_id) for p in pairs}
    assert got == FAMILY | CORRECT_WRONG and len(pairs) == 29
    assert counts["duplicates"] == 5  # the five correct-vs-wrong pairs the family rule already found
    kinds = {(p.chosen.node_id, p.rejected.node_id): p.kind for p in pairs}
    assert sum(k == "correct_vs_wrong" for k in kinds.values()) == 17
    assert kinds[("node_1_1", "node_1_2")] == "wrong_vs_wrong"
    assert kinds[("node_2_1", "node_2_3")] == "correct_vs_wrong"
    only_family, _ = tree_pairs(canned_tree(), rules=["family"])
    assert len(only_family) == 22


def test_a_registered_rule_adds_its_pairs_after_the_built_ins() -> None:
    tree = canned_tree()

    @register_pair_rule("root_children_test")
    def root_children(tree):
        """The first family pair reversed: the same two answers, so dedup drops it after family."""
        first = family_pairs(tree)[0]
        return [(first[1], first[0])]

    try:
        assert list(PAIR_RULES)[-1] == "root_children_test"
        pairs, counts = tree_pairs(tree)
        assert len(pairs) == 29 and counts["duplicates"] == 6  # found by family first: the later rule loses
        only, _ = tree_pairs(tree, rules=["root_children_test"])
        assert [(p.chosen.node_id, p.rejected.node_id, p.rule) for p in only] == [
            (family_pairs(tree)[0][1].node_id, family_pairs(tree)[0][0].node_id, "root_children_test")
        ]
        result = build_pairs([tree], test_fraction=0.0, seed=0)
        assert result.summary()["by_rule"]["root_children_test"] == 0
    finally:
        del PAIR_RULES["root_children_test"]
    with pytest.raises(PairRuleError, match="unknown pair rule"):
        tree_pairs(tree, rules=["root_children_test"])
    with pytest.raises(PairRuleError, match="already registered"):
        register_pair_rule("family")


def test_dedup_by_normalised_sql_and_same_sql_dropped() -> None:
    tree = RevisionTree(1, "shop", gold_sql="SELECT 1", max_depth=2, sample_num=3)
    a = tree.add_node(INITIAL, 1, generated_sql="SELECT name FROM items", label="wrong")
    tree.add_node(INITIAL, 1, generated_sql="select   NAME from ITEMS", label="wrong")  # same as a, normalised
    c = tree.add_node(INITIAL, 1, generated_sql="SELECT price FROM items", is_correct=True, label="correct")
    tree.add_node(a.node_id, 2, generated_sql="SELECT  name FROM items", label="wrong")  # a's SQL again
    tree.compute_distances()
    pairs, counts = tree_pairs(tree)
    # a vs c and (its duplicate) b vs c are one pair; a vs its respelled child has equal distance
    assert [(p.chosen.node_id, p.rejected.node_id) for p in pairs] == [(c.node_id, a.node_id)]
    assert counts["duplicates"] >= 1
    # a wrong node whose child (same SQL, respelled) is correct: different distances, same SQL: no pair
    t2 = RevisionTree(2, "shop", gold_sql="SELECT 1", max_depth=2, sample_num=1)
    p = t2.add_node(INITIAL, 1, generated_sql="SELECT 1 ", label="wrong")
    t2.add_node(p.node_id, 2, generated_sql="select 1", is_correct=True, label="correct")
    t2.compute_distances()
    pairs2, counts2 = tree_pairs(t2)
    assert pairs2 == [] and counts2["same_sql"] == 2


def test_split_is_by_question_and_stable() -> None:
    test = split_questions(range(100), 0.05, seed=3)
    assert len(test) == 5
    assert test == split_questions(list(range(100))[::-1], 0.05, seed=3)
    assert test != split_questions(range(100), 0.05, seed=4)
    # adding questions never moves an existing one to the other side... unless it is pushed out of
    # the first n_test by rank; ranks themselves are per-question
    assert split_questions(range(5), 0.0, seed=3) == set()
    assert len(split_questions(range(2), 0.05, seed=0)) == 1
    trees = [canned_tree(q) for q in range(20)]
    result = build_pairs(trees, test_fraction=0.1, seed=0)
    train_q = {r["question_id"] for r in result.train}
    test_q = {r["question_id"] for r in result.test}
    assert len(test_q) == 2 and not train_q & test_q and len(train_q | test_q) == 20
    assert len(result.train) + len(result.test) == 20 * 29 == len(result.resqlver)


def test_rows_in_lfkit_and_resqlver_formats(tmp_path: Path) -> None:
    tree = canned_tree(question_id=7)
    result = build_pairs([tree], test_fraction=0.0)
    row = next(r for r in result.train if r["chosen"] == format_sql_answer(tree.nodes["node_1_1"].generated_sql))
    assert row["instruction"] == "INSTRUCTION LINE"
    assert row["input"] == "schema...\nQuestion: Which items cost more than 10?"
    assert row["source"] == "tree" and row["round"] == 1 and row["question_id"] == 7 and row["db_id"] == "shop"
    assert row["chosen_dist"] == DISTANCES["node_1_1"] and row["rejected_dist"] > row["chosen_dist"]
    assert row["kind"] == "wrong_vs_wrong"
    shard = result.resqlver[0]
    # ReSQLver's current DPOExtractor row, in its order, then `prompt` (what its train.py/evaluate.py read)
    assert list(shard) == [
        "question_id", "db_id", "instruction", "question", "evidence", "chosen", "rejected", "chosen_dist",
        "rejected_dist", "prompt",
    ]  # fmt: skip
    assert shard["instruction"] == shard["prompt"] == tree.initial_input_seq and not shard["chosen"].startswith("```")
    out = tmp_path / "pairs.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in result.train))
    assert validate_data_file(out, "preference") == len(result.train)


def test_cli_pairs_writes_registrable_split_files(tmp_path: Path) -> None:
    trees = tmp_path / "all_trees.json"
    trees.write_text(json.dumps([canned_tree(q).to_dict() for q in range(10)]))
    out = tmp_path / "out" / "tree_pairs.jsonl"
    res = CliRunner().invoke(
        main,
        ["tree", "pairs", "--trees", str(trees), "--output", str(out), "--test-fraction", "0.2", "--seed", "1",
         "--resqlver-dir", str(tmp_path / "rs")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["test_questions"] == 2 and summary["pairs"] == 290
    assert summary["by_kind"] == {"correct_vs_wrong": 170, "wrong_vs_wrong": 120}
    test_file = tmp_path / "out" / "tree_pairs.test.jsonl"
    assert validate_data_file(out, "preference") == 232
    assert validate_data_file(test_file, "preference") == 58
    train_q = {json.loads(line)["question_id"] for line in out.read_text().splitlines()}
    test_q = {json.loads(line)["question_id"] for line in test_file.read_text().splitlines()}
    assert not train_q & test_q
    shard = tmp_path / "rs" / "final_data_emerge_shard_0.json"
    assert len(json.loads(shard.read_text())) == 290
    assert json.loads((tmp_path / "rs" / "final_data_emerge_shard_0.json.lfkit.json").read_text())["settings"][
        "rules"
    ] == ["family", "correct_vs_wrong"]

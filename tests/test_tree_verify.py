"""lfkit.tree.verify: a sound tree passes; each hand-made corruption is caught by its check."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_tree_model import resqlver_tree
from tree_canned import GOLD_NAMES, canned_tree, make_db

from lfkit.cli import main
from lfkit.sql import execute_sql
from lfkit.tree.feedback import execution_feedback
from lfkit.tree.model import RevisionTree, load_trees
from lfkit.tree.pairs import build_pairs
from lfkit.tree.verify import TREE_CHECKS, leaked_values, verify_trees


@pytest.fixture(scope="module")
def db_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_db(tmp_path_factory.mktemp("dbs"))


def run(trees: list[RevisionTree], db_root: Path, pairs=None):
    return verify_trees(trees, db_root, pairs, workers=0)


def corrupted(mutate: Callable[[dict], None]) -> RevisionTree:
    data = canned_tree().to_dict()
    mutate(data)
    return RevisionTree.from_dict(json.loads(json.dumps(data)))


def problems(report, check: str) -> list[tuple]:
    return [(p["question_id"], p["node_id"]) for p in report.problems if p["check"] == check]


def with_feedback(tree: RevisionTree, db_root: Path) -> RevisionTree:
    """Every node's execution_feedback as lfkit's builder writes it (its own result, executed)."""
    db = db_root / "shop" / "shop.sqlite"
    for n in tree.nodes.values():
        n.execution_feedback = execution_feedback(execute_sql(db, n.generated_sql) if n.generated_sql else None)
    return tree


def test_sound_tree_and_its_pairs_pass(db_root: Path) -> None:
    tree = with_feedback(canned_tree(), db_root)
    # node_1_1 (SELECT name FROM items) shows its own first rows, gold's two names among them: no leak
    assert "GOLDROW_ALPHA_7731" in tree.nodes["node_1_1"].execution_feedback
    rows = build_pairs([tree], test_fraction=0).train
    report = run([tree], db_root, rows)
    assert report.ok, report.problems
    assert report.checks["label"]["checked"] == 12  # wrong and correct nodes alike
    assert report.labels == {"executed": 12, "marked_correct": 3, "verified_correct": 3, "mismatches": 0}
    assert all(report.checks[c]["checked"] >= 12 for c in TREE_CHECKS)
    assert report.checks["pair_order"]["checked"] == len(rows) == 29


def node(data: dict, nid: str) -> dict:
    return data["nodes"][nid]


def test_unique_ids_duplicate_key_in_the_file(db_root: Path, tmp_path: Path) -> None:
    text = json.dumps(canned_tree().to_dict())
    # the same node id twice in `nodes` (json.loads alone would silently keep the last one)
    dup = json.dumps(node(canned_tree().to_dict(), "node_3_2"))
    text = text.replace('"node_3_2": {', f'"node_3_2": {dup}, "node_3_2": {{', 1)
    path = tmp_path / "t.json"
    path.write_text(text)
    report = run(load_trees(path), db_root)
    assert (7, "node_3_2") in problems(report, "unique_ids")


def messages(report, check: str) -> list[tuple]:
    return [(p["question_id"], p["node_id"], p["message"]) for p in report.problems if p["check"] == check]


def test_unique_ids_key_and_id_disagree(db_root: Path) -> None:
    # two different rules of the check, told apart by their messages: the key vs node_id ...
    report = run([corrupted(lambda t: node(t, "node_2_2").update(node_id="node_2_9"))], db_root)
    assert messages(report, "unique_ids") == [
        (7, "node_2_2", "stored under key 'node_2_2' but its node_id is 'node_2_9'")
    ]
    # ... and node_id vs its own d and j (key and node_id still agree)
    report = run([corrupted(lambda t: node(t, "node_2_2").update(j=5))], db_root)
    assert messages(report, "unique_ids") == [(7, "node_2_2", "node_id does not match d=2, j=5")]


def test_parent_exists(db_root: Path) -> None:
    report = run([corrupted(lambda t: node(t, "node_3_2").update(parent_id="node_2_9"))], db_root)
    assert (7, "node_3_2") in problems(report, "parent_exists")


def test_depth_step(db_root: Path) -> None:
    def move(t: dict) -> None:  # node_3_1 hangs under a depth-1 node, consistently listed
        node(t, "node_3_1")["parent_id"] = "node_1_1"
        node(t, "node_2_2")["children_ids"].remove("node_3_1")
        node(t, "node_2_2")["children_num"] = 1
        node(t, "node_1_1")["children_ids"].append("node_3_1")
        node(t, "node_1_1")["children_num"] = 3

    report = run([corrupted(move)], db_root)
    assert problems(report, "depth_step") == [(7, "node_3_1")]
    assert not problems(report, "children_agree") and not problems(report, "parent_exists")


def test_children_agree(db_root: Path) -> None:
    report = run([corrupted(lambda t: node(t, "node_1_1")["children_ids"].remove("node_2_2"))], db_root)
    assert problems(report, "children_agree") == [(7, "node_2_2")]  # not listed by its parent
    # children_num no longer matches: a warning only (ReSQLver's trees never update it)
    assert [(w["question_id"], w["node_id"]) for w in report.warnings] == [(7, "node_1_1")]
    report = run([corrupted(lambda t: node(t, "node_1_2")["children_ids"].append("node_3_1"))], db_root)
    assert (7, "node_1_2") in problems(report, "children_agree")  # lists another node's child


def test_no_cycle(db_root: Path) -> None:
    def cycle(t: dict) -> None:
        node(t, "node_1_1")["parent_id"] = "node_2_1"
        node(t, "node_2_1")["children_ids"] = ["node_1_1"]
        node(t, "node_2_1")["children_num"] = 1

    report = run([corrupted(cycle)], db_root)
    assert problems(report, "no_cycle") == [(7, "node_1_1")]


def test_max_depth(db_root: Path) -> None:
    report = run([corrupted(lambda t: t.update(max_depth=2))], db_root)
    assert {nid for _, nid in problems(report, "max_depth")} == {f"node_3_{j}" for j in range(1, 7)}


def test_label_wrong_node_marked_correct(db_root: Path) -> None:
    def flip(t: dict) -> None:
        node(t, "node_2_2").update(is_correct=True, label="correct", revision_distance=0)
        node(t, "node_1_1")["revision_distance"] = 1

    report = run([corrupted(flip)], db_root)
    assert problems(report, "label") == [(7, "node_2_2")]
    assert report.labels["mismatches"] == 1


def test_label_correct_node_marked_wrong(db_root: Path) -> None:
    # ReSQLver's eval.py re-executes only nodes marked correct: this one it never looks at
    report = run([corrupted(lambda t: node(t, "node_3_5").update(is_correct=False, label="wrong"))], db_root)
    assert (7, "node_3_5") in problems(report, "label")


def test_label_field_disagrees(db_root: Path) -> None:
    report = run([corrupted(lambda t: node(t, "node_2_3").update(label="wrong"))], db_root)  # it errors
    assert problems(report, "label") == [(7, "node_2_3")]


def test_label_gold_does_not_execute(db_root: Path) -> None:
    report = run([corrupted(lambda t: t.update(SQL="SELECT nope FROM items"))], db_root)
    assert (7, None) in problems(report, "label")


def test_revision_distance(db_root: Path) -> None:
    report = run([corrupted(lambda t: node(t, "node_1_2").update(revision_distance=1))], db_root)
    assert problems(report, "revision_distance") == [(7, "node_1_2")]
    report = run([corrupted(lambda t: t.update(tree_status="bad"))], db_root)
    assert problems(report, "revision_distance") == [(7, None)]


RESQLVER_FEEDBACK = (  # tree/sql_utils.py's feedback for SELECT name FROM items (gold: price > 10)
    "Incorrect result.\nRow count mismatch: Expected 2 rows, but got 4 rows.\n"
    "Unexpected rows (example): [('plain_a',), ('plain_b',)]\n"
    "Expected result sample: [('GOLDROW_ALPHA_7731',), ('GOLDROW_BETA_9154',)]\n"
    "Actual result sample: [('GOLDROW_ALPHA_7731',), ('plain_a',), ('GOLDROW_BETA_9154',)]"
)


def test_feedback_leak_resqlver_style(db_root: Path, tmp_path: Path) -> None:
    raw = resqlver_tree()
    raw["nodes"]["node_1_2"]["execution_feedback"] = RESQLVER_FEEDBACK
    path = tmp_path / "all_trees.json"
    path.write_text(json.dumps([raw]))
    report = run(load_trees(path), db_root)
    assert problems(report, "feedback_leak") == [(12, "node_1_2")]
    assert "GOLDROW_ALPHA_7731" in report.problems[0]["message"]
    # the same wrong node with lfkit's feedback (its own first rows hold gold's names too): no leak
    (tree,) = load_trees(path)
    tree.nodes["node_1_2"].execution_feedback = execution_feedback(
        execute_sql(db_root / "shop" / "shop.sqlite", "SELECT name FROM items")
    )
    report = run([tree], db_root)
    assert report.ok and report.checks["feedback_leak"]["checked"] == 3  # every node with feedback


@pytest.mark.parametrize(
    ("feedback", "own", "leaked"),
    [
        ("Missing rows (example): [('GOLDROW_BETA_9154',)]", [("plain_a",)], ["GOLDROW_BETA_9154"]),
        ('expected ["GOLDROW_ALPHA_7731"]', [], ["GOLDROW_ALPHA_7731"]),  # JSON-written rows too
        # a value of the own first rows, written once per own occurrence: not a leak
        ("Its first rows:\n('plain_a',)\n('GOLDROW_ALPHA_7731',)", [("plain_a",), ("GOLDROW_ALPHA_7731",)], []),
        # own row 4 is not among the rows a feedback shows: writing it is showing gold's
        ("rows: ('GOLDROW_ALPHA_7731',)", [("a",), ("b",), ("c",), ("GOLDROW_ALPHA_7731",)], ["GOLDROW_ALPHA_7731"]),
        ("The query ran and returned 2 rows with 2 columns. The correct result has 2 rows.", [], []),  # counts
    ],
)
def test_leaked_values(feedback: str, own: list[tuple], leaked: list) -> None:
    gold = [(GOLD_NAMES[0], 2), (GOLD_NAMES[1], 2)]
    assert leaked_values(feedback, gold, own) == leaked


def test_leaked_numbers_only_as_row_cells() -> None:
    gold = [(42,)]
    assert leaked_values("Expected result sample: [(42,)]", gold, []) == [42]
    assert leaked_values("Row count mismatch: Expected 42 rows, but got 1 rows.", gold, []) == []


def test_input_seq_exactly_on_expanded_nodes_is_a_warning(db_root: Path) -> None:
    def mutate(t: dict) -> None:
        node(t, "node_2_2")["input_seq"] = ""  # expanded, but no revision prompt recorded
        node(t, "node_2_1")["input_seq"] = "a prompt nobody answered"  # a correct leaf

    report = run([corrupted(mutate)], db_root)
    assert report.ok  # warnings, not problems
    found = sorted((w["check"], w["node_id"]) for w in report.warnings)
    assert found == [("input_seq", "node_2_1"), ("input_seq", "node_2_2")]


def test_pairs_checks(db_root: Path) -> None:
    tree = canned_tree()
    rows = build_pairs([tree], test_fraction=0).train
    rows[0] = dict(rows[0], chosen_dist=rows[0]["rejected_dist"], rejected_dist=rows[0]["chosen_dist"])
    rows[1] = dict(rows[1], rejected="")
    rows[2] = dict(rows[2], chosen="```sql\nSELECT 42\n```")
    rows[3] = dict(rows[3], chosen_dist="0")
    report = run([tree], db_root, rows)
    by_check = {(p["check"], p["row"]) for p in report.problems}
    assert by_check >= {("pair_order", 0), ("pair_sql", 1), ("pair_nodes", 2), ("pair_order", 3)}
    assert not [p for p in report.problems if p.get("row") not in (0, 1, 2, 3)]


def test_reads_resqlver_trees(db_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "all_trees.json"
    path.write_text(json.dumps([resqlver_tree()]))
    report = run(load_trees(path), db_root)
    assert report.ok, report.problems
    assert report.labels["executed"] == 3  # their eval.py would execute only the two marked correct
    assert [w["node_id"] for w in report.warnings] == ["node_1_2"]  # their stale children_num


def test_cli_exit_status_and_report(db_root: Path, tmp_path: Path) -> None:
    good = tmp_path / "all_trees.json"
    good.write_text(json.dumps([canned_tree(1).to_dict(), canned_tree(2).to_dict()]))
    out = tmp_path / "verification_report.json"
    args = ["tree", "verify", "--tree-file", str(good), "--db-root", str(db_root), "--workers", "0"]
    res = CliRunner().invoke(main, [*args, "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["ok"] is True
    bad_tree = corrupted(lambda t: node(t, "node_1_2").update(revision_distance=1)).to_dict()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([bad_tree]))
    res = CliRunner().invoke(main, [*args[:3], str(bad), *args[4:]])
    assert res.exit_code == 1
    assert "[revision_distance] question 7 node_1_2" in res.output
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps([{**canned_tree().to_dict(), "nodes": {"node_1_1": {"node_id": "node_1_1"}}}]))
    res = CliRunner().invoke(
        main, ["tree", "verify", "--tree-file", str(broken), "--db-root", str(db_root), "--workers", "0"]
    )
    assert res.exit_code == 1
    assert "tree 0 (question_id 7): node 'node_1_1': field 'parent_id' is missing" in res.output
    assert "Traceback" not in res.output

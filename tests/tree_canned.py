"""A hand-made database and a hand-made revision tree for the lfkit.tree tests.

The database ``shop`` has one table ``items``; gold returns the two items priced over
10, whose names (``GOLDROW_...``) appear in no other answer's result, so any leak of
gold's rows into feedback is visible. Every SQL of the tree is executed for real.

The tree (max_depth 3, sample_num 2), with hand-computed revision distances::

    node_1_1 wrong      d=1  -> node_2_1 correct (0), node_2_2 wrong (1)
    node_1_2 wrong      d=2  -> node_2_3 error (999), node_2_4 wrong (1)
    node_2_2 -> node_3_1 correct (0), node_3_2 wrong (999)
    node_2_3 -> node_3_3 wrong (999), node_3_4 wrong (999)
    node_2_4 -> node_3_5 correct (0), node_3_6 no SQL (999)
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lfkit.tree.model import INITIAL, RevisionTree

GOLD = "SELECT name FROM items WHERE price > 10"
GOLD_NAMES = ("GOLDROW_ALPHA_7731", "GOLDROW_BETA_9154")

# node id -> (parent id, SQL, is_correct, label)
CANNED: dict[str, tuple[str, str, bool, str]] = {
    "node_1_1": (INITIAL, "SELECT name FROM items", False, "wrong"),
    "node_1_2": (INITIAL, "SELECT id FROM items", False, "wrong"),
    "node_2_1": ("node_1_1", "SELECT name FROM items WHERE price > 10", True, "correct"),
    "node_2_2": ("node_1_1", "SELECT name FROM items WHERE price > 100", False, "wrong"),
    "node_2_3": ("node_1_2", "SELECT nme FROM items", False, "error"),
    "node_2_4": ("node_1_2", "SELECT price FROM items", False, "wrong"),
    "node_3_1": ("node_2_2", "SELECT name FROM items WHERE price >= 11", True, "correct"),
    "node_3_2": ("node_2_2", "SELECT name FROM items WHERE price < 5", False, "wrong"),
    "node_3_3": ("node_2_3", "SELECT id, name FROM items", False, "wrong"),
    "node_3_4": ("node_2_3", "SELECT name FROM items LIMIT 1", False, "wrong"),
    "node_3_5": ("node_2_4", "SELECT name FROM items WHERE NOT price <= 10", True, "correct"),
    "node_3_6": ("node_2_4", "", False, "no_sql"),
}
DISTANCES = {
    "node_1_1": 1,
    "node_1_2": 2,
    "node_2_1": 0,
    "node_2_2": 1,
    "node_2_3": 999,
    "node_2_4": 1,
    "node_3_1": 0,
    "node_3_2": 999,
    "node_3_3": 999,
    "node_3_4": 999,
    "node_3_5": 0,
    "node_3_6": 999,
}


def make_db(root: Path, db_id: str = "shop") -> Path:
    """``root/<db_id>/<db_id>.sqlite`` with table items(id, name, price); returns root."""
    folder = root / db_id
    folder.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(folder / f"{db_id}.sqlite")
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price INTEGER)")
    conn.executemany(
        "INSERT INTO items VALUES (?, ?, ?)",
        [(1, GOLD_NAMES[0], 50), (2, "plain_a", 5), (3, GOLD_NAMES[1], 20), (4, "plain_b", 1)],
    )
    conn.commit()
    conn.close()
    return root


def canned_tree(question_id: int | str = 7, db_id: str = "shop") -> RevisionTree:
    """The tree above, with distances computed (lfkit's fields filled in)."""
    tree = RevisionTree(
        question_id=question_id,
        db_id=db_id,
        question="Which items cost more than 10?",
        evidence="price is in dollars",
        difficulty="simple",
        gold_sql=GOLD,
        initial_input_seq="INSTRUCTION LINE\nschema...\nQuestion: Which items cost more than 10?",
        max_depth=3,
        sample_num=2,
        instruction="INSTRUCTION LINE",
        input="schema...\nQuestion: Which items cost more than 10?",
    )
    for nid, (parent, sql, correct, label) in CANNED.items():
        d = int(nid.split("_")[1])
        node = tree.add_node(parent, d, generated_sql=sql, is_correct=correct, label=label)
        assert node.node_id == nid
    for nid, node in tree.nodes.items():
        if not node.is_correct and node.children_ids:
            node.input_seq = f"revision prompt of {nid}"
    tree.compute_distances()
    return tree

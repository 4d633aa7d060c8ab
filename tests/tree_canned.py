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


# ----------------------------------------------------------------------------- tree build


THRESHOLDS = (10, 4, 0, 19, 30, 45)  # question k: "Which items cost more than THRESHOLDS[k]?"


def make_sft(path: Path, db_root: Path, thresholds=THRESHOLDS) -> Path:
    """SFT rows (built by the SFT prompt builder, no example values) for the shop questions."""
    from lfkit.data.prompts import SchemaPromptBuilder, format_sql_answer
    from lfkit.data.rows import Question, sft_row
    from lfkit.io import write_rows

    builder = SchemaPromptBuilder(n_examples=0)
    db = db_root / "shop" / "shop.sqlite"
    rows = []
    for k, t in enumerate(thresholds):
        gold = f"SELECT name FROM items WHERE price > {t}"
        q = Question(k, "shop", f"Which items cost more than {t}?", "", gold, "simple", db, index=k)
        instruction, input_text = builder.build(q)
        rows.append(sft_row(q, instruction, input_text, format_sql_answer(gold)))
    return write_rows(path, rows)


def policy(user_text: str, j: int) -> str:
    """A scripted model: what sample ``j`` answers, from the question and the feedback it is shown.

    Depth 1: [no rows, error]. After "no rows": [correct, no rows]; after an error:
    [rows of ids, error]; after rows: [no rows (other query), error]. So, per question with
    max_depth 3: 12 nodes, correct ones at depth 2 and 3, a hopeless error branch.
    """
    import re

    t = int(re.findall(r"Which items cost more than (\d+)\?", user_text)[-1])
    if "A previous answer" not in user_text:
        options = ["SELECT name FROM items WHERE price > 1000", "SELECT nme FROM items"]
    elif "returned no rows" in user_text:
        options = [f"SELECT name FROM items WHERE price >= {t + 1}", "SELECT name FROM items WHERE price < 0"]
    elif "failed with an error" in user_text:
        options = ["SELECT id FROM items", "SELECT nme FROM items"]
    else:
        options = ["SELECT id FROM items WHERE id < 0", "SELECT nme FROM items"]
    return f"```sql\n{options[j % 2]}\n```"


class ScriptedBackend:
    """Factory for a GenerationBackend subclass answering with :func:`policy`; logs each call."""

    @staticmethod
    def make(delay: float = 0.0):
        import time

        from lfkit.generate import GenerationBackend

        class Scripted(GenerationBackend):
            name = "scripted"

            def __init__(self) -> None:
                super().__init__()
                self.calls: list[list[list[dict[str, str]]]] = []

            def _generate(self, chats, cfg, seeds):
                if delay:
                    time.sleep(delay)
                self.calls.append(chats)
                return [[policy(c[-1]["content"], j) for j in range(cfg.n)] for c in chats]

        return Scripted()

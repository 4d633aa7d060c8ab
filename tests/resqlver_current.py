"""ReSQLver's current output, written by the rules of its code -- not by lfkit's writer.

Read from the public repository ``oGYCo/ReSQLver`` (the snapshot whose ``tree/tree_node.py`` is
commit c7d0b92, "second version"; ``tree/run_pipeline.py`` 4c1f3e9), and re-stated here in our
own words, rule by rule:

* ``tree/run_parallel.sh`` -> ``tree/run_parallel.py`` starts one ``tree.run_pipeline`` per GPU
  with ``--shard_id i --num_shards K``; a shard is a *contiguous* chunk of the questions
  (``ceil(n / K)`` each). Every shard writes each tree to ``<output_dir>/tree_<question_id>.json``
  (``json.dump(tree.to_dict(), indent=2)``, one tree object per file, one folder for all
  shards) and its pairs to ``final_data_emerge_shard_<i>.json`` (``DPOExtractor.extract_pairs``)
  and ``final_data_baseline_shard_<i>.json`` (``extract_baseline_pairs``). Nothing in the current
  repository merges them (its first version's ``compare/date_emerge.py`` concatenated the JSON
  lists of a folder).
* ``TreeBuilder.build_tree``: level by level, every frontier node gets ``sample_num`` answers;
  a node's id is ``node_{d}_{j}`` with ``j`` = the nodes already at depth ``d`` + 1; a wrong
  answer at ``max_depth`` is dropped, not added; a wrong answer above it gets a revision prompt
  as ``input_seq`` and is expanded; a correct one gets ``input_seq = ""``. Then the tree is
  pruned to the paths that end at a correct node, then distances are computed.
* ``SQLExecutor.execute_sql`` feedback: ``"Correct"`` when the row *sets* are equal;
  ``"SQL Execution Error: <sqlite message>"``; ``"Error: No valid SQL found in response"`` for an
  answer without SQL (``generated_sql = ""``); otherwise ``"Incorrect result."`` followed by
  column-count and row-count mismatch lines, ``Missing rows (example)``, ``Unexpected rows
  (example)``, ``Expected result sample`` (gold's first 3 rows) and ``Actual result sample``.
  (Their missing/unexpected lists come from Python sets, in hash order; here they are sorted.)
* ``RevisionTree.calculate_revision_distance``: 0 correct; a wrong node 1 + the minimum over its
  children, 999 when none is finite; ``tree_status`` is "good" only when ``node_1_1`` exists with
  a finite distance.
* ``TreeNode.to_dict`` has no ``node_id`` (the id is the key of ``nodes``) and writes
  ``children_num = len(children_ids)``; ``RevisionTree.to_dict`` has no ``difficulty``,
  ``sample_num`` or ``statistics``; ``question_id`` is a string.
* ``DPOExtractor.extract_pairs``: per node, the family {self, parent, children, siblings
  (same parent_id, depth-1 nodes included)}; every unordered pair once, when distances differ
  (lower chosen) and both have SQL. ``extract_baseline_pairs``: the deepest correct nodes x the
  shallowest wrong nodes, ``"type": "baseline"``. (Their family is a Python set; here sorted.)
"""

from __future__ import annotations

import json
import math
import sqlite3
from itertools import combinations
from pathlib import Path
from typing import Any

INF = 999

# question_id -> (gold SQL, max_depth, sample_num, {parent id: answers in order}); "" = no SQL in the answer.
# Question "0" ends with a full tree whose node_1_1 reaches a correct answer at depth 3; question "1"
# has node_1_1 pruned (no correct descendant) while node_1_2 is correct: ReSQLver writes "bad".
SCRIPT: dict[str, tuple[str, int, int, dict[str, list[str]]]] = {
    "0": (
        "SELECT name FROM items WHERE price > 10",
        3,
        2,
        {
            "node_initial": ["SELECT name FROM items", "SELECT id FROM items"],
            "node_1_1": ["SELECT name FROM items WHERE price > 100", "SELECT nme FROM items"],
            "node_1_2": ["SELECT name FROM items WHERE price > 10", "SELECT price FROM items"],
            "node_2_1": ["SELECT name FROM items WHERE price < 5", "SELECT name FROM items WHERE price >= 11"],
            "node_2_2": ["SELECT id, name FROM items", ""],
            "node_2_4": ["SELECT name FROM items WHERE NOT price <= 10", "SELECT 1"],
        },
    ),
    "1": (
        "SELECT name FROM items WHERE price > 10",
        3,
        2,
        {
            "node_initial": ["SELECT id FROM items WHERE id > 100", "SELECT name FROM items WHERE price > 10"],
            "node_1_1": ["SELECT id FROM items WHERE id > 50", "SELECT price FROM items WHERE id > 50"],
            "node_2_1": ["SELECT 2", "SELECT 3"],
            "node_2_2": ["SELECT 4", "SELECT 5"],
        },
    ),
}


def _run(db: Path, sql: str) -> tuple[list[tuple], list[str]]:
    conn = sqlite3.connect(db)
    try:
        cur = conn.execute(sql)
        return cur.fetchall(), [d[0] for d in cur.description or ()]
    finally:
        conn.close()


def feedback(sql: str, gold: str, db: Path) -> tuple[bool, str]:
    """(is_correct, execution_feedback) by ReSQLver's SQLExecutor rules (module docstring)."""
    if not sql:
        return False, "Error: No valid SQL found in response"
    gold_rows, gold_cols = _run(db, gold)
    try:
        rows, cols = _run(db, sql)
    except sqlite3.Error as exc:
        return False, f"SQL Execution Error: {exc}"
    if set(rows) == set(gold_rows):
        return True, "Correct"
    lines = ["Incorrect result."]
    if len(cols) != len(gold_cols):
        lines.append(
            f"Column count mismatch: Expected {len(gold_cols)} columns ({', '.join(gold_cols)}), "
            f"but got {len(cols)} columns ({', '.join(cols)})."
        )
    if len(rows) != len(gold_rows):
        lines.append(f"Row count mismatch: Expected {len(gold_rows)} rows, but got {len(rows)} rows.")
    missing, extra = sorted(set(gold_rows) - set(rows)), sorted(set(rows) - set(gold_rows))
    if missing:
        lines.append(f"Missing rows (example): {missing[:3]}")
    if extra:
        lines.append(f"Unexpected rows (example): {extra[:3]}")
    lines.append(f"Expected result sample: {gold_rows[:3]}")
    lines.append(f"Actual result sample: {rows[:3]}")
    return False, "\n".join(lines)


def initial_input_seq(question: str) -> str:
    return (
        "You are a SQLite expert.\nDatabase Schema:\nCREATE TABLE items (id INTEGER, name TEXT, price INTEGER)\n"
        f"Question:\n{question}\nInstructions:\nAnswer with one SQL query in a ```sql block."
    )


def build_tree(question_id: str, question: str, db: Path) -> dict[str, Any]:
    """One tree by TreeBuilder.build_tree's rules, as RevisionTree.to_dict writes it."""
    gold, max_depth, sample_num, answers = SCRIPT[question_id]
    nodes: dict[str, dict[str, Any]] = {}
    frontier = ["node_initial"]
    for depth in range(1, max_depth + 1):
        expand = []
        for parent in frontier:
            for sql in answers[parent][:sample_num]:
                correct, text = feedback(sql, gold, db)
                if depth == max_depth and not correct:
                    continue  # a wrong answer at the last depth is not added
                j = sum(n["d"] == depth for n in nodes.values()) + 1
                nid = f"node_{depth}_{j}"
                nodes[nid] = {"parent_id": parent, "d": depth, "j": j, "children_ids": [], "generated_sql": sql,
                              "execution_feedback": text, "is_correct": correct, "input_seq": ""}  # fmt: skip
                if parent != "node_initial":
                    nodes[parent]["children_ids"].append(nid)
                if not correct and depth < max_depth:
                    prompt = f"Fix this SQLite query.\nQuestion: {question}\nPrevious SQL:\n{sql}\n"
                    nodes[nid]["input_seq"] = prompt + f"Execution feedback:\n{text}"
                    expand.append(nid)
        frontier = expand
    # prune: keep only nodes on a path to a correct node
    keep: set[str] = set()
    for nid, node in nodes.items():
        if node["is_correct"]:
            cur = nid
            while cur in nodes:
                keep.add(cur)
                cur = nodes[cur]["parent_id"]
    nodes = {nid: n for nid, n in nodes.items() if nid in keep}
    for n in nodes.values():
        n["children_ids"] = [c for c in n["children_ids"] if c in keep]
    # distances, deepest first
    for d in range(max((n["d"] for n in nodes.values()), default=0), 0, -1):
        for n in (n for n in nodes.values() if n["d"] == d):
            best = min((nodes[c]["revision_distance"] for c in n["children_ids"]), default=INF)
            n["revision_distance"] = 0 if n["is_correct"] else (INF if best == INF else best + 1)
    first = nodes.get("node_1_1")
    status = "good" if first and first["revision_distance"] < INF else "bad"
    keys = ("parent_id", "d", "j", "children_num", "children_ids", "generated_sql", "execution_feedback",
            "is_correct", "input_seq", "revision_distance")  # fmt: skip
    written = {
        nid: {k: len(n["children_ids"]) if k == "children_num" else n[k] for k in keys} for nid, n in nodes.items()
    }
    return {
        "question_id": question_id, "db_id": "shop", "evidence": "", "question": question, "SQL": gold,
        "node_initial": {"input_seq": initial_input_seq(question)}, "nodes": written, "max_depth": max_depth,
        "tree_status": status,
    }  # fmt: skip


def _pair(tree: dict[str, Any], chosen: dict[str, Any], rejected: dict[str, Any]) -> dict[str, Any]:
    return {
        "question_id": tree["question_id"], "db_id": tree["db_id"], "instruction": tree["node_initial"]["input_seq"],
        "question": tree["question"], "evidence": tree["evidence"], "chosen": chosen["generated_sql"],
        "rejected": rejected["generated_sql"], "chosen_dist": chosen["revision_distance"],
        "rejected_dist": rejected["revision_distance"],
    }  # fmt: skip


def emerge_pairs(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """DPOExtractor.extract_pairs' rule (module docstring)."""
    nodes, pairs, seen = tree["nodes"], [], set()
    for center, node in nodes.items():
        family = {center, *[c for c in node["children_ids"] if c in nodes]}
        family |= {nid for nid, n in nodes.items() if n["parent_id"] == node["parent_id"]}
        if node["parent_id"] in nodes:
            family.add(node["parent_id"])
        for a, b in combinations(sorted(family), 2):
            if (a, b) in seen:
                continue
            seen.add((a, b))
            da, db_ = nodes[a]["revision_distance"], nodes[b]["revision_distance"]
            if da == db_ or not nodes[a]["generated_sql"] or not nodes[b]["generated_sql"]:
                continue
            chosen, rejected = (nodes[a], nodes[b]) if da < db_ else (nodes[b], nodes[a])
            pairs.append(_pair(tree, chosen, rejected))
    return pairs


def baseline_pairs(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """DPOExtractor.extract_baseline_pairs' rule (module docstring)."""
    nodes = [n for n in tree["nodes"].values() if n["generated_sql"]]
    correct, wrong = [n for n in nodes if n["is_correct"]], [n for n in nodes if not n["is_correct"]]
    if not correct or not wrong:
        return []
    deepest = max(n["d"] for n in correct)
    shallowest = min(n["d"] for n in wrong)
    return [
        {**_pair(tree, c, r), "type": "baseline"}
        for c in correct
        if c["d"] == deepest
        for r in wrong
        if r["d"] == shallowest
    ]


def write_run(output_dir: Path, db_root: Path, num_shards: int = 2) -> dict[str, list[Path]]:
    """What ``run_parallel.sh`` leaves in ``output_dir`` for the questions of :data:`SCRIPT`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    db = db_root / "shop" / "shop.sqlite"
    questions = [(qid, f"Which items cost more than 10? (question {qid})") for qid in SCRIPT]
    chunk = math.ceil(len(questions) / num_shards)
    files: dict[str, list[Path]] = {"trees": [], "emerge": [], "baseline": []}
    for shard_id in range(num_shards):
        emerge, baseline = [], []
        for qid, question in questions[shard_id * chunk : (shard_id + 1) * chunk]:
            tree = build_tree(qid, question, db)
            path = output_dir / f"tree_{qid}.json"
            path.write_text(json.dumps(tree, indent=2))
            files["trees"].append(path)
            emerge += emerge_pairs(tree)
            baseline += baseline_pairs(tree)
        for kind, rows in (("emerge", emerge), ("baseline", baseline)):
            path = output_dir / f"final_data_{kind}_shard_{shard_id}.json"
            path.write_text(json.dumps(rows, indent=2))
            files[kind].append(path)
    return files

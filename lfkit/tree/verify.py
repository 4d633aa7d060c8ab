"""``lfkit tree verify``: check revision trees (lfkit's or ReSQLver's) and their pairs.

ReSQLver's ``eval.py`` re-executes only the nodes marked correct, checks no structure and
reads a ``depth`` field its nodes do not have. This checks, per tree:

=================  ==========================================================================
check              rule
=================  ==========================================================================
unique_ids         no node id repeats in ``nodes``; each key equals its node's ``node_id``;
                   ``node_id`` is ``node_{d}_{j}`` of its own ``d`` and ``j``
parent_exists      ``parent_id`` is ``node_initial`` or a node of the tree
depth_step         ``d`` = 1 under ``node_initial``, else the parent's ``d`` + 1
children_agree     every ``children_ids`` entry exists, names this node as parent, appears
                   once; every node is listed by its parent
no_cycle           following ``parent_id`` from any node reaches ``node_initial``
max_depth          1 <= ``d`` <= the tree's ``max_depth``
label              every node's SQL (wrong *and* correct ones) executed and compared with
                   gold's result (:class:`lfkit.sql.Verifier`) agrees with ``is_correct``,
                   and with lfkit's ``label`` when present; gold itself must execute
revision_distance  each ``revision_distance`` equals the one recomputed from ``is_correct``
                   and ``children_ids``; ``tree_status`` agrees with them
feedback_leak      no node's ``execution_feedback`` shows gold's result values (ReSQLver's
                   "Expected result sample" / "Missing rows"): see :func:`leaked_values`
=================  ==========================================================================

and per row of an optional pairs file (lfkit's rows or ReSQLver's shard rows):
``pair_order`` (integer distances, ``chosen_dist < rejected_dist``), ``pair_sql`` (both
sides hold SQL) and ``pair_nodes`` (each side is a node of its question's tree with
that distance, when the tree is among those verified).

The report counts what each check examined and found, and lists every problem with its
check, tree (``question_id``) and node id (or pairs row). ``allow`` names checks whose findings
are *accepted*: listed and counted, but they do not fail the report -- ``feedback_leak`` to
verify ReSQLver's trees (whose feedback shows gold's rows by design) for structure and labels.
Three findings are *warnings*, not problems: a ``tree_status`` that follows ReSQLver's rule
(``tree_status_rule``: it looks only at ``node_1_1``, lfkit at every depth-1 node, so a pruned
``node_1_1`` makes ReSQLver say "bad" where a correct answer is reachable; see
:func:`lfkit.tree.model.resqlver_status_of`), a ``children_num`` that differs from the
number of ``children_ids`` (ReSQLver's first builder never updated ``children_num``, nor did
its pruning, so those trees carry stale counts; its current ``to_dict`` writes
``len(children_ids)``), and an ``input_seq`` (the revision prompt) present on a node without children or
absent from a node with children (``input_seq`` is set exactly for expanded nodes).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfkit.tree.model import (
    INF_DISTANCE,
    INITIAL,
    RevisionTree,
    TreeError,
    TreeNode,
    loads,
    node_id_for,
    resqlver_status_of,
    revision_distances,
)

TREE_CHECKS = (
    "unique_ids",
    "parent_exists",
    "depth_step",
    "children_agree",
    "no_cycle",
    "max_depth",
    "label",
    "revision_distance",
    "feedback_leak",
)
PAIR_CHECKS = ("pair_order", "pair_sql", "pair_nodes")
_NODE_ID = re.compile(r"node_(\d+)_(\d+)")


@dataclass
class VerifyReport:
    """Counts per check and every problem found."""

    trees: int = 0
    nodes: int = 0
    pairs: int | None = None
    checks: dict[str, dict[str, int]] = field(
        default_factory=lambda: {c: {"checked": 0, "problems": 0} for c in TREE_CHECKS}
    )
    labels: dict[str, int] = field(
        default_factory=lambda: {"executed": 0, "marked_correct": 0, "verified_correct": 0, "mismatches": 0}
    )
    problems: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    allowed: tuple[str, ...] = ()  # checks whose findings are accepted (listed, not failing)
    accepted: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def checked(self, check: str, n: int = 1) -> None:
        self.checks.setdefault(check, {"checked": 0, "problems": 0})["checked"] += n

    def problem(self, check: str, question_id: Any, node_id: str | None, message: str, **extra: Any) -> None:
        self.checks.setdefault(check, {"checked": 0, "problems": 0})["problems"] += 1
        entry = {"check": check, "question_id": question_id, "node_id": node_id, "message": message}
        (self.accepted if check in self.allowed else self.problems).append({**entry, **extra})

    def warn(self, question_id: Any, node_id: str | None, message: str, check: str = "") -> None:
        self.warnings.append({"check": check, "question_id": question_id, "node_id": node_id, "message": message})

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "trees": self.trees,
            "nodes": self.nodes,
            "pairs": self.pairs,
            "checks": self.checks,
            "labels": self.labels,
            "problems": self.problems,
            "allowed": list(self.allowed),
            "accepted": self.accepted,
            "warnings": self.warnings,
        }


# ----------------------------------------------------------------------------- structure


def _check_structure(tree: RevisionTree, report: VerifyReport) -> None:
    qid, nodes = tree.question_id, tree.nodes
    for nid in tree.duplicate_ids:
        report.problem("unique_ids", qid, nid, f"node id {nid!r} appears more than once in 'nodes'")
    for key, node in nodes.items():
        report.checked("unique_ids")
        if node.node_id != key:
            report.problem("unique_ids", qid, key, f"stored under key {key!r} but its node_id is {node.node_id!r}")
        elif node.node_id != node_id_for(node.d, node.j):
            report.problem("unique_ids", qid, key, f"node_id does not match d={node.d}, j={node.j}")

        report.checked("parent_exists")
        parent = nodes.get(node.parent_id)
        if node.parent_id != INITIAL and parent is None:
            report.problem("parent_exists", qid, key, f"parent_id {node.parent_id!r} is not a node of the tree")

        report.checked("depth_step")
        if node.parent_id == INITIAL and node.d != 1:
            report.problem("depth_step", qid, key, f"d={node.d} under node_initial (expected 1)")
        elif parent is not None and node.d != parent.d + 1:
            report.problem("depth_step", qid, key, f"d={node.d} but parent {node.parent_id} has d={parent.d}")

        report.checked("max_depth")
        if not 1 <= node.d <= tree.max_depth:
            report.problem("max_depth", qid, key, f"d={node.d} outside 1..max_depth={tree.max_depth}")

        report.checked("children_agree")
        seen: set[str] = set()
        for cid in node.children_ids:
            child = nodes.get(cid)
            if cid in seen:
                report.problem("children_agree", qid, key, f"child {cid!r} is listed twice")
            elif child is None:
                report.problem("children_agree", qid, key, f"child {cid!r} is not a node of the tree")
            elif child.parent_id != key:
                report.problem("children_agree", qid, key, f"child {cid!r} has parent_id {child.parent_id!r}")
            seen.add(cid)
        if node.children_num is not None and node.children_num != len(node.children_ids):
            report.warn(
                qid, key, f"children_num={node.children_num} but {len(node.children_ids)} children_ids", "children_num"
            )
        if bool(node.input_seq) != bool(node.children_ids):
            has = "has an input_seq but no children" if node.input_seq else "has children but no input_seq"
            report.warn(qid, key, f"{has} (input_seq is the revision prompt of an expanded node)", "input_seq")
        if parent is not None and key not in parent.children_ids:
            report.problem("children_agree", qid, key, f"not listed in the children_ids of its parent {node.parent_id}")

    # no_cycle: walk parent links; a node whose walk revisits a node sits on or under a cycle
    state: dict[str, int] = {}  # 1: being walked, 2: reaches node_initial or a missing parent
    for start in nodes:
        report.checked("no_cycle")
        path, cur = [], start
        while cur in nodes and state.get(cur) != 2:
            if state.get(cur) == 1:
                cycle = path[path.index(cur) :]
                links = " -> ".join([*cycle, cur])
                report.problem("no_cycle", qid, min(cycle), f"parent_id links form a cycle: {links}")
                break
            state[cur] = 1
            path.append(cur)
            cur = nodes[cur].parent_id
        for nid in path:
            state[nid] = 2


def _check_distances(tree: RevisionTree, report: VerifyReport) -> None:
    expected = revision_distances(tree.nodes)
    for nid, node in tree.nodes.items():
        report.checked("revision_distance")
        if node.revision_distance != expected[nid]:
            report.problem(
                "revision_distance",
                tree.question_id,
                nid,
                f"revision_distance={node.revision_distance}, recomputed {expected[nid]}",
            )
    status = "good" if any(n.d == 1 and expected[nid] < INF_DISTANCE for nid, n in tree.nodes.items()) else "bad"
    recomputed = {
        nid: TreeNode(nid, n.parent_id, n.d, n.j, revision_distance=expected[nid]) for nid, n in tree.nodes.items()
    }
    report.checked("revision_distance")
    if tree.tree_status == status:
        return
    if tree.tree_status == resqlver_status_of(recomputed):  # a different rule, not a corrupt tree
        report.warn(
            tree.question_id,
            None,
            f"tree_status={tree.tree_status!r} follows ReSQLver's rule (node_1_1 only); by lfkit's rule "
            f"(any depth-1 node reaches a correct answer) it is {status!r}",
            "tree_status_rule",
        )
        return
    report.problem(
        "revision_distance", tree.question_id, None, f"tree_status={tree.tree_status!r}, recomputed {status!r}"
    )


# ----------------------------------------------------------------------------- labels


def _check_labels(
    trees: Sequence[RevisionTree], db_root: str | os.PathLike[str], report: VerifyReport, verifier: Any
) -> None:
    from lfkit.data.bird import resolve_db_path
    from lfkit.sql.label import label_of

    items, where = [], []
    for tree in trees:
        try:
            db_path = resolve_db_path(db_root, tree.db_id)
        except (FileNotFoundError, ValueError) as exc:
            report.problem("label", tree.question_id, None, f"cannot re-derive labels: {exc}")
            continue
        for nid, node in tree.nodes.items():
            items.append((db_path, tree.gold_sql, node.generated_sql))
            where.append((tree, nid))
    verdicts = verifier.verify(items) if items else []
    gold_failed: set[int] = set()
    for (tree, nid), verdict in zip(where, verdicts, strict=True):
        node = tree.nodes[nid]
        report.checked("label")
        if verdict.gold.status != "ok":
            if id(tree) not in gold_failed:
                gold_failed.add(id(tree))
                report.problem("label", tree.question_id, None, f"gold SQL does not execute: {verdict.gold.error}")
            continue
        _check_leak(tree, nid, verdict, report)
        report.labels["executed"] += 1
        report.labels["marked_correct"] += node.is_correct
        report.labels["verified_correct"] += node.is_correct and verdict.correct
        correct = bool(node.generated_sql) and verdict.correct
        if node.is_correct != correct:
            report.labels["mismatches"] += 1
            outcome = (verdict.pred.error or f"{len(verdict.pred.rows)} rows") if node.generated_sql else "no SQL"
            report.problem(
                "label",
                tree.question_id,
                nid,
                f"is_correct={node.is_correct} but executing its SQL gives {'correct' if correct else 'wrong'} "
                f"({verdict.status}: {outcome})",
            )
        elif node.label and node.label != label_of(verdict, node.generated_sql):
            report.problem(
                "label",
                tree.question_id,
                nid,
                f"label={node.label!r} but executing its SQL gives {label_of(verdict, node.generated_sql)!r}",
            )


def _renderings(value: Any) -> set[str]:
    """How a result value is written inside a row: Python's repr (ReSQLver's and lfkit's rows), JSON."""
    import json

    out = {repr(value)}
    if isinstance(value, str):
        out.add(json.dumps(value, ensure_ascii=False))
    return out


def _cell_count(text: str, rendering: str) -> int:
    """Occurrences of ``rendering`` as one cell of a written row or list: after ``(``, ``[``, ``,`` or
    a space, before ``,``, ``)`` or ``]``. Counts in prose ("returned 2 rows") never match."""
    if rendering not in text:  # cheap test first: most values are absent
        return 0
    return len(re.findall(r"(?<=[(\[,\s])" + re.escape(rendering) + r"(?=\s*[,)\]])", text))


def leaked_values(
    feedback: str, gold_rows: Sequence[tuple], own_rows: Sequence[tuple], shown_rows: int | None = None
) -> list[Any]:
    """Gold result values that ``feedback`` shows beyond what the node's own result explains.

    A value of gold's rows leaks when it is written as a row cell (see :func:`_cell_count`)
    more often than it occurs among the cells of the node's own first ``shown_rows`` rows
    (:data:`lfkit.tree.feedback.SHOWN_ROWS`, the rows lfkit's feedback shows). Own rows may
    legitimately hold gold values; ReSQLver's feedback writes gold's rows again ("Expected
    result sample", "Missing rows"), so the count exceeds. ``None`` and blobs are not checked.

    >>> gold = [("GOLD_A",), ("GOLD_B",)]
    >>> leaked_values("Expected result sample: [('GOLD_A',), ('GOLD_B',)]", gold, [("x",)])
    ['GOLD_A', 'GOLD_B']
    >>> leaked_values("The query ran and returned 1 row with 1 column. Its row:\\n('GOLD_A',)", gold, [("GOLD_A",)])
    []
    """
    from collections import Counter

    from lfkit.tree.feedback import SHOWN_ROWS

    if not feedback:
        return []
    own = Counter(v for row in own_rows[: SHOWN_ROWS if shown_rows is None else shown_rows] for v in row)
    leaked, seen = [], set()
    for row in gold_rows:
        for value in row:
            if value is None or isinstance(value, bytes | bool) or (value, type(value)) in seen:
                continue
            seen.add((value, type(value)))
            if sum(_cell_count(feedback, r) for r in _renderings(value)) > own[value]:
                leaked.append(value)
    return leaked


def _check_leak(tree: RevisionTree, nid: str, verdict: Any, report: VerifyReport) -> None:
    node = tree.nodes[nid]
    if not node.execution_feedback:
        return
    report.checked("feedback_leak")
    leaked = leaked_values(node.execution_feedback, verdict.gold.rows, verdict.pred.rows if verdict.pred.ok else ())
    if leaked:
        shown = ", ".join(repr(v) for v in leaked[:3]) + (f" (+{len(leaked) - 3} more)" if len(leaked) > 3 else "")
        report.problem(
            "feedback_leak",
            tree.question_id,
            nid,
            f"execution_feedback shows gold's result value(s) {shown} that its own result does not: "
            "the revision prompt leaks the label",
        )


# ----------------------------------------------------------------------------- pairs


def read_pairs(path: str | os.PathLike[str]) -> list[Any]:
    """Rows of a pairs file (JSON array or JSONL); a malformed file raises :class:`TreeError`."""
    import json

    path = Path(path)
    if not path.is_file():
        raise TreeError(f"{path}: pairs file not found")
    text = path.read_text(encoding="utf-8-sig")
    try:
        rows = [loads(line) for line in text.splitlines() if line.strip()] if path.suffix == ".jsonl" else loads(text)
    except json.JSONDecodeError as exc:
        raise TreeError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    if not isinstance(rows, list):
        raise TreeError(f"{path}: expected a JSON array of pairs or JSONL")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise TreeError(f"{path}: row {i}: expected a JSON object")
    return rows


def _check_pairs(rows: Sequence[dict[str, Any]], trees: Sequence[RevisionTree], report: VerifyReport) -> None:
    from lfkit.data.rows import question_key
    from lfkit.sql import extract_sql, normalize_sql

    by_question: dict[str, dict[str, set[int]]] = {}
    for tree in trees:
        index: dict[str, set[int]] = {}
        for node in tree.nodes.values():
            if node.generated_sql:
                index.setdefault(normalize_sql(node.generated_sql), set()).add(node.revision_distance)
        by_question[question_key(tree.question_id)] = index
    report.pairs = len(rows)
    for c in PAIR_CHECKS:
        report.checks.setdefault(c, {"checked": 0, "problems": 0})
    for i, row in enumerate(rows):
        qid = row.get("question_id")
        sides: dict[str, str] = {}
        report.checked("pair_sql")
        for side in ("chosen", "rejected"):
            text = row.get(side)
            sql = extract_sql(text) if isinstance(text, str) else ""
            if not sql:
                report.problem("pair_sql", qid, None, f"row {i}: '{side}' holds no SQL", row=i)
            sides[side] = sql
        report.checked("pair_order")
        dists = [row.get("chosen_dist"), row.get("rejected_dist")]
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in dists):
            report.problem("pair_order", qid, None, f"row {i}: chosen_dist/rejected_dist must be integers", row=i)
            continue
        if not dists[0] < dists[1]:
            report.problem(
                "pair_order", qid, None, f"row {i}: chosen_dist={dists[0]} is not below rejected_dist={dists[1]}", row=i
            )
        index = by_question.get(question_key(qid))
        if index is None:
            continue
        report.checked("pair_nodes")
        for side, dist in zip(("chosen", "rejected"), dists, strict=True):
            if sides[side] and dist not in index.get(normalize_sql(sides[side]), set()):
                report.problem(
                    "pair_nodes", qid, None, f"row {i}: '{side}' is no node of the tree with distance {dist}", row=i
                )


# ----------------------------------------------------------------------------- entry point


def verify_trees(
    trees: Sequence[RevisionTree],
    db_root: str | os.PathLike[str],
    pairs: Sequence[dict[str, Any]] | None = None,
    *,
    comparison: str = "bird",
    timeout: float = 30.0,
    workers: int | None = None,
    verifier: Any = None,
    allow: Sequence[str] = (),
) -> VerifyReport:
    """Run every check on ``trees`` (and ``pairs`` rows when given); never raises on a bad tree.

    ``allow``: checks (of :data:`TREE_CHECKS` / :data:`PAIR_CHECKS`) whose findings are accepted.
    """
    from lfkit.sql import Verifier

    unknown = sorted(set(allow) - set(TREE_CHECKS) - set(PAIR_CHECKS))
    if unknown:
        raise ValueError(f"unknown check(s) to allow: {', '.join(unknown)}")
    report = VerifyReport(trees=len(trees), nodes=sum(len(t.nodes) for t in trees), allowed=tuple(allow))
    for tree in trees:
        _check_structure(tree, report)
        _check_distances(tree, report)
    if verifier is None:
        with Verifier(comparison=comparison, timeout=timeout, workers=workers) as v:
            _check_labels(trees, db_root, report, v)
    else:
        _check_labels(trees, db_root, report, verifier)
    if pairs is not None:
        _check_pairs(pairs, trees, report)
    return report


__all__ = ["PAIR_CHECKS", "TREE_CHECKS", "VerifyReport", "leaked_values", "read_pairs", "verify_trees"]

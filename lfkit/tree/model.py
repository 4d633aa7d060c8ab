"""Revision trees: the node and tree records, their JSON form, distances and pruning.

One tree per question, shaped like ReSQLver's ``RevisionTree.to_dict`` (public as
``oGYCo/ReSQLver``, ``tree/tree_node.py``) so their tools and ours read each other's trees::

    {"question_id", "db_id", "question", "evidence", "difficulty", "SQL",
     "node_initial": {"input_seq"}, "nodes": {node_id: node}, "max_depth", "sample_num",
     "tree_status", "statistics"}

plus lfkit's ``instruction`` / ``input`` (the SFT question prompt the depth-1 answers were
sampled from, written into preference rows), ``sft_index`` (the row's position in the
SFT file) and, only when gold itself failed to run, ``gold_status``. A node is one whole SQL
answer, stored under its id ``node_{d}_{j}`` as ReSQLver's current ``TreeNode.to_dict`` writes it
(the id is the key of ``nodes``, not a field), plus lfkit's ``execution_status`` and ``label``::

    {"parent_id": "node_initial" | node_id, "d", "j", "children_num", "children_ids",
     "generated_sql", "execution_feedback", "is_correct", "input_seq", "revision_distance",
     "execution_status", "label"}

ReSQLver's first version, and lfkit's own trees before it followed the current one, also
carry the id as a field ``node_id``: both are read, and a ``node_id`` field that differs from its key is reported
by ``tree verify``. ``j`` numbers the nodes of depth ``d`` from 1 across the whole tree. ``input_seq`` of a
node is the revision prompt its children answered ("" when it was not expanded).
``label`` is lfkit's execution label (correct / wrong / error / timeout / no_sql).

Reading is strict about types (a wrong type or a missing field raises :class:`TreeError`
naming the file, the tree and the field) and lenient about ReSQLver's quirks: a node's
depth may be called ``depth``, gold may be called ``gold_sql``, ``children_num``,
``execution_status``, ``label``, ``statistics`` may be absent, a file may hold one tree,
a JSON array of trees (``all_trees.json``), a list-wrapped tree, or JSONL.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfkit.errors import LfkitError
from lfkit.sql.label import REJECT_KINDS

INF_DISTANCE = 999  # ReSQLver's "infinite" revision distance: no correct descendant
INITIAL = "node_initial"  # the parent_id of every depth-1 node
NODE_LABELS = ("correct", *REJECT_KINDS)  # a node is answered: correct or a rejectable failure
TREES_HEADER_KEYS = ("lfkit_journal", "lfkit_trees")  # first JSONL line of a tree shard


class TreeError(LfkitError):
    """A tree file is malformed: the message names the file, the tree and the field."""


def node_id_for(d: int, j: int) -> str:
    """The id of node ``j`` at depth ``d``.

    >>> node_id_for(2, 3)
    'node_2_3'
    """
    return f"node_{d}_{j}"


class DuplicateKeys(dict):
    """A JSON object that repeated keys (``json.loads`` would silently keep the last)."""

    duplicates: list[str]


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) == len(keys):
        return dict(pairs)
    out = DuplicateKeys(pairs)
    seen: set[str] = set()
    out.duplicates = [k for k in keys if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
    return out


def loads(text: str) -> Any:
    """``json.loads`` that remembers repeated object keys (duplicate node ids must be reported)."""
    return json.loads(text, object_pairs_hook=_pairs_hook)


# ----------------------------------------------------------------------------- field checks


class _Fields:
    """Typed access to one JSON object; errors name the file, tree and field."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise TreeError(f"{where}: expected a JSON object, got {_kind(data)}")
        self.data = data
        self.where = where

    def get(self, name: str, types: tuple[type, ...], default: Any = ..., *aliases: str) -> Any:
        for key in (name, *aliases):
            if key in self.data:
                value = self.data[key]
                if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                    want = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
                    raise TreeError(f"{self.where}: field '{key}' must be {want}, got {_kind(value)}")
                return value
        if default is ...:
            raise TreeError(f"{self.where}: field '{name}' is missing")
        return default


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true/false", list: "a list", dict: "an object"}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list"}.get(
        type(value), "an object" if isinstance(value, Mapping) else type(value).__name__
    )


# ----------------------------------------------------------------------------- records


@dataclass
class TreeNode:
    """One answer in a revision tree (see the module docstring for the JSON fields)."""

    node_id: str
    parent_id: str
    d: int
    j: int
    generated_sql: str = ""
    is_correct: bool = False
    execution_feedback: str = ""
    execution_status: str = ""
    revision_distance: int = INF_DISTANCE
    input_seq: str = ""
    children_ids: list[str] = field(default_factory=list)
    children_num: int | None = None  # None: absent from the file (written as len(children_ids))
    label: str = ""  # "" when the file has none (ReSQLver's trees)

    def to_dict(self) -> dict[str, Any]:
        """The node as ReSQLver's current ``TreeNode.to_dict`` writes it (no ``node_id``: it is the key),
        then lfkit's ``execution_status`` and ``label``."""
        return {
            "parent_id": self.parent_id,
            "d": self.d,
            "j": self.j,
            "children_num": len(self.children_ids) if self.children_num is None else self.children_num,
            "children_ids": list(self.children_ids),
            "generated_sql": self.generated_sql,
            "execution_feedback": self.execution_feedback,
            "is_correct": self.is_correct,
            "input_seq": self.input_seq,
            "revision_distance": self.revision_distance,
            "execution_status": self.execution_status,
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "node", node_id: str | None = None) -> TreeNode:
        """Read a node; ``where`` prefixes every error (file, tree and node).

        ``node_id``: the key the node is stored under, its id when the node has no ``node_id``
        field (ReSQLver's current format); a field that is present wins, so a mismatch stays visible.
        """
        f = _Fields(data, where)
        children = f.get("children_ids", (list,), [])
        for k, cid in enumerate(children):
            if not isinstance(cid, str):
                raise TreeError(f"{where}: field 'children_ids' item {k} must be a string, got {_kind(cid)}")
        label = f.get("label", (str,), "")
        if label and label not in NODE_LABELS:
            raise TreeError(f"{where}: field 'label' must be one of {', '.join(NODE_LABELS)}, got {label!r}")
        return cls(
            node_id=f.get("node_id", (str,)) if node_id is None else f.get("node_id", (str,), node_id),
            parent_id=f.get("parent_id", (str,)),
            d=f.get("d", (int,), ..., "depth"),  # ReSQLver's builder wrote `depth` in one version
            j=f.get("j", (int,)),
            generated_sql=f.get("generated_sql", (str,)),
            is_correct=f.get("is_correct", (bool,)),
            execution_feedback=f.get("execution_feedback", (str,), ""),
            execution_status=f.get("execution_status", (str,), ""),
            revision_distance=f.get("revision_distance", (int,), INF_DISTANCE),
            input_seq=f.get("input_seq", (str,), ""),
            children_ids=list(children),
            children_num=f.get("children_num", (int,), None),
            label=label,
        )


@dataclass
class RevisionTree:
    """One question's revision tree (see the module docstring)."""

    question_id: Any
    db_id: str
    question: str = ""
    evidence: str = ""
    difficulty: str = "unknown"
    gold_sql: str = ""
    initial_input_seq: str = ""
    nodes: dict[str, TreeNode] = field(default_factory=dict)
    max_depth: int = 5
    sample_num: int = 2
    tree_status: str = "bad"
    instruction: str = ""  # lfkit: the SFT question prompt (alpaca instruction / input)
    input: str = ""
    sft_index: int | None = None
    gold_status: str = "ok"  # lfkit: "error"/"timeout" when gold itself did not run (tree not expanded)
    duplicate_ids: list[str] = field(default_factory=list)  # repeated keys of `nodes` in the file

    # -- structure ------------------------------------------------------------------------
    def add_node(self, parent_id: str, d: int, **fields: Any) -> TreeNode:
        """Append a node at depth ``d`` under ``parent_id`` (``j`` = next free index at ``d``)."""
        j = 1 + max((n.j for n in self.nodes.values() if n.d == d), default=0)
        node = TreeNode(node_id_for(d, j), parent_id, d, j, **fields)
        self.nodes[node.node_id] = node
        if parent_id != INITIAL:
            parent = self.nodes[parent_id]
            parent.children_ids.append(node.node_id)
            parent.children_num = len(parent.children_ids)
        return node

    def at_depth(self, d: int) -> list[TreeNode]:
        return [n for n in self.nodes.values() if n.d == d]

    def compute_distances(self) -> None:
        """Set every node's ``revision_distance`` and the tree's ``tree_status`` (see :func:`revision_distances`)."""
        for nid, dist in revision_distances(self.nodes).items():
            self.nodes[nid].revision_distance = dist
        self.tree_status = status_of(self.nodes)

    def prune(self) -> int:
        """Keep only nodes on a path to a correct node (ReSQLver's pruning); returns nodes removed.

        A kept node's ancestors are kept, so the tree stays connected; ``children_ids`` lose
        the removed nodes. Node ids are not renumbered (ReSQLver neither).
        """
        keep: set[str] = set()
        for node in self.nodes.values():
            if not node.is_correct:
                continue
            cur: TreeNode | None = node
            while cur is not None and cur.node_id not in keep:
                keep.add(cur.node_id)
                cur = self.nodes.get(cur.parent_id)
        removed = len(self.nodes) - len(keep)
        self.nodes = {nid: n for nid, n in self.nodes.items() if nid in keep}
        for n in self.nodes.values():
            n.children_ids = [c for c in n.children_ids if c in keep]
            n.children_num = len(n.children_ids)
        return removed

    def statistics(self) -> dict[str, Any]:
        """ReSQLver's statistics block, plus lfkit's label counts and depth-1 / rescued counts."""
        depth_stats = {}
        for d in range(1, self.max_depth + 1):
            at_d = self.at_depth(d)
            depth_stats[f"depth_{d}"] = {"total": len(at_d), "correct": sum(n.is_correct for n in at_d)}
        labels = {k: sum(n.label == k for n in self.nodes.values()) for k in NODE_LABELS}
        first = any(n.is_correct for n in self.at_depth(1))
        return {
            "total_nodes": len(self.nodes),
            "correct_nodes": sum(n.is_correct for n in self.nodes.values()),
            "tree_status": self.tree_status,
            "depth_statistics": depth_stats,
            "correct_at_depth_1": first,
            "rescued": not first and any(n.is_correct for n in self.nodes.values()),
            "labels": labels,
        }

    # -- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "question_id": self.question_id,
            "db_id": self.db_id,
            "question": self.question,
            "evidence": self.evidence,
            "difficulty": self.difficulty,
            "SQL": self.gold_sql,
            "node_initial": {"input_seq": self.initial_input_seq},
            "nodes": {nid: n.to_dict() for nid, n in self.nodes.items()},
            "max_depth": self.max_depth,
            "sample_num": self.sample_num,
            "tree_status": self.tree_status,
            "statistics": self.statistics(),
            "instruction": self.instruction,
            "input": self.input,
        }
        if self.sft_index is not None:
            out["sft_index"] = self.sft_index
        if self.gold_status != "ok":
            out["gold_status"] = self.gold_status
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "tree") -> RevisionTree:
        """Read a tree (lfkit's or ReSQLver's); errors name ``where``, the tree and the field."""
        if not isinstance(data, Mapping):
            raise TreeError(f"{where}: expected a tree (JSON object), got {_kind(data)}")
        qid = data.get("question_id")
        if isinstance(qid, int | str) and not isinstance(qid, bool):
            where = f"{where} (question_id {qid!r})"
        f = _Fields(data, where)
        qid = f.get("question_id", (int, str))
        initial = f.get("node_initial", (dict,), {})
        init_seq = _Fields(initial, f"{where}: node_initial").get("input_seq", (str,), "")
        raw_nodes = f.get("nodes", (dict,))
        nodes = {}
        for key, raw in raw_nodes.items():
            nodes[key] = TreeNode.from_dict(raw, f"{where}: node {key!r}", node_id=key)
        sft_index = f.get("sft_index", (int,), None)
        return cls(
            question_id=qid,
            db_id=f.get("db_id", (str,)),
            question=f.get("question", (str,), ""),
            evidence=f.get("evidence", (str,), "") or "",
            difficulty=f.get("difficulty", (str,), "unknown"),
            gold_sql=f.get("SQL", (str,), ..., "gold_sql"),
            initial_input_seq=init_seq,
            nodes=nodes,
            max_depth=f.get("max_depth", (int,)),
            sample_num=f.get("sample_num", (int,), 0),
            tree_status=f.get("tree_status", (str,), "bad"),
            instruction=f.get("instruction", (str,), ""),
            input=f.get("input", (str,), ""),
            sft_index=sft_index,
            gold_status=f.get("gold_status", (str,), "ok"),
            duplicate_ids=list(getattr(raw_nodes, "duplicates", [])),
        )

    def prompt(self) -> tuple[str, str]:
        """The ``(instruction, input)`` of the question prompt, for preference rows.

        lfkit trees carry both. For ReSQLver's trees the prompt is ``node_initial.input_seq``:
        it is split at its first newline, which LLaMA-Factory's alpaca converter joins back
        into exactly that user turn.
        """
        if self.instruction:
            return self.instruction, self.input
        head, _, rest = self.initial_input_seq.strip().partition("\n")
        return head, rest


# ----------------------------------------------------------------------------- distances


def revision_distances(nodes: Mapping[str, TreeNode]) -> dict[str, int]:
    """Each node's revision distance from ``is_correct`` and ``children_ids``.

    0 for a correct node; ``1 + min(children)`` for a wrong node with a child of finite
    distance; :data:`INF_DISTANCE` otherwise (a wrong leaf, or only hopeless children).
    Children missing from ``nodes`` are ignored; a node on a cycle counts as infinite.

    >>> a = TreeNode("node_1_1", INITIAL, 1, 1, children_ids=["node_2_1", "node_2_2"])
    >>> b = TreeNode("node_2_1", "node_1_1", 2, 1)
    >>> c = TreeNode("node_2_2", "node_1_1", 2, 2, is_correct=True)
    >>> revision_distances({n.node_id: n for n in (a, b, c)})
    {'node_1_1': 1, 'node_2_1': 999, 'node_2_2': 0}
    """
    dist: dict[str, int] = {}
    on_path: set[str] = set()

    def visit(root: str) -> None:
        # Iterative post-order: trees may be deep enough to hit Python's recursion limit.
        stack = [(root, False)]
        while stack:
            nid, expanded = stack.pop()
            if nid in dist:
                continue
            node = nodes[nid]
            if node.is_correct:
                dist[nid] = 0
                continue
            kids = [c for c in node.children_ids if c in nodes]
            if not expanded:
                if nid in on_path:  # reached again through a corrupt second parent: already expanding
                    continue
                on_path.add(nid)
                stack.append((nid, True))
                stack.extend((c, False) for c in kids if c not in dist and c not in on_path)
                continue
            on_path.discard(nid)
            best = min((dist.get(c, INF_DISTANCE) for c in kids), default=INF_DISTANCE)
            dist[nid] = best + 1 if best < INF_DISTANCE else INF_DISTANCE

    for nid in nodes:
        visit(nid)
    return {nid: dist[nid] for nid in nodes}


def status_of(nodes: Mapping[str, TreeNode]) -> str:
    """ "good" when a depth-1 node has a finite distance (a correct answer is reachable), else "bad"."""
    return "good" if any(n.d == 1 and n.revision_distance < INF_DISTANCE for n in nodes.values()) else "bad"


def resqlver_status_of(nodes: Mapping[str, TreeNode]) -> str:
    """ReSQLver's rule (its ``calculate_revision_distance``): "good" only when ``node_1_1`` exists with a
    finite distance. It differs from :func:`status_of` when pruning removed ``node_1_1`` (or it is
    hopeless) but another depth-1 node reaches a correct answer.

    >>> n = {"node_1_2": TreeNode("node_1_2", INITIAL, 1, 2, is_correct=True, revision_distance=0)}
    >>> status_of(n), resqlver_status_of(n)
    ('good', 'bad')
    """
    first = nodes.get(node_id_for(1, 1))
    return "good" if first is not None and first.revision_distance < INF_DISTANCE else "bad"


# ----------------------------------------------------------------------------- files


def _tree_list(data: Any, path: Path) -> list[Any]:
    if isinstance(data, Mapping):
        return [data]
    if isinstance(data, list):
        # compare.py's quirk: one tree wrapped in a list; all_trees.json: a list of trees
        return data
    raise TreeError(f"{path}: expected a tree or a JSON array of trees, got {_kind(data)}")


def read_tree_dicts(path: str | os.PathLike[str]) -> tuple[dict[str, Any] | None, list[Any]]:
    """The raw trees of a file, and its settings header (tree shards) or None.

    JSON: one tree object or an array of trees. JSONL (``.jsonl`` or a first line that is
    a complete object): one tree per line, optionally after a header line holding
    ``lfkit_journal``/``lfkit_trees`` and ``settings``; a torn last line is an error
    here (merge and verify must not silently drop a tree).
    """
    path = Path(path)
    if not path.is_file():
        raise TreeError(f"{path}: tree file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TreeError(f"{path}: not a UTF-8 text file ({exc})") from exc
    header = None
    if path.suffix == ".jsonl":
        trees = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = loads(line)
            except json.JSONDecodeError as exc:
                raise TreeError(f"{path}: line {lineno}: not valid JSON ({exc.msg})") from exc
            if lineno == 1 and isinstance(rec, Mapping) and any(k in rec for k in TREES_HEADER_KEYS):
                header = rec
                continue
            trees.append(rec)
        return header, trees
    try:
        data = loads(text)
    except json.JSONDecodeError as exc:
        raise TreeError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    return read_sidecar(path), _tree_list(data, path)


def load_trees(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[RevisionTree]:
    """Read trees from one or more files (see :func:`read_tree_dicts`); errors name file and tree."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    out = []
    for p in paths:
        _, raw = read_tree_dicts(p)
        out += [RevisionTree.from_dict(t, f"{p}: tree {i}") for i, t in enumerate(raw)]
    return out


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where the settings of a JSON-array output are kept: ``<file>.lfkit.json``."""
    return Path(str(path) + ".lfkit.json")


def write_sidecar(path: str | os.PathLike[str], kind: str, settings: dict[str, Any], **extra: Any) -> Path:
    """Write ``<path>.lfkit.json``: the settings that made a JSON-array output (merge compares them)."""
    from lfkit.io import atomic_write_text

    data = {f"lfkit_{kind}": 1, "settings": settings, **extra}
    return atomic_write_text(sidecar_path(path), json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``<file>.lfkit.json`` of a JSON-array output (``{"lfkit_<kind>", "settings", ...}``), or None."""
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TreeError(f"{side}: not valid JSON ({exc.msg})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("settings"), dict):
        raise TreeError(f"{side}: field 'settings' is missing or not an object")
    return data


__all__ = [
    "INF_DISTANCE",
    "INITIAL",
    "NODE_LABELS",
    "RevisionTree",
    "TreeError",
    "TreeNode",
    "load_trees",
    "loads",
    "node_id_for",
    "read_sidecar",
    "read_tree_dicts",
    "resqlver_status_of",
    "revision_distances",
    "sidecar_path",
    "status_of",
    "write_sidecar",
]

"""Preference pairs from revision trees (``lfkit tree pairs``).

Pair rules are a registry (:data:`PAIR_RULES`, :func:`register_pair_rule`): a rule is one
function ``tree -> [(chosen node, rejected node), ...]``. Two are built in, applied to every
tree in this order:

* ``family`` (ReSQLver's ``tree/dpo_extractor.py``): for each node, its family is
  {parent, siblings, itself, children} (depth-1 nodes are siblings of each other); every
  two members whose revision distances differ make a pair, the lower distance chosen.
* ``correct_vs_wrong`` (ReSQLver's ``compare/compare.py``): every two nodes at the same
  depth, and every parent with each child, where exactly one is correct: the correct one
  is chosen.

Pairs are deduplicated per question by the normalised SQL of both sides
(:func:`lfkit.sql.normalize_sql`), in either order: the first pair found wins (family
first, then nodes in tree order), and a pair whose two SQL normalise alike is dropped.
A node without SQL is never paired. Each pair has a ``kind``: ``correct_vs_wrong``
(chosen is correct) or ``wrong_vs_wrong`` (both wrong, chosen nearer to a correct answer).

Rows are written twice over:

* lfkit's preference format (``lfkit register --kind preference``; ``render dpo|rm``):
  ``instruction`` / ``input`` = the SFT question prompt, ``chosen`` / ``rejected`` in the
  SFT answer format (:func:`lfkit.data.prompts.format_sql_answer`), plus ``chosen_dist``,
  ``rejected_dist``, ``question_id``, ``db_id``, ``source: "tree"``, ``round``, ``kind``;
* ReSQLver's shard format (``final_data_emerge_shard_{i}.json``, as its current
  ``DPOExtractor.extract_pairs`` writes it): ``question_id``, ``db_id``, ``instruction`` (the
  tree's ``node_initial.input_seq``), ``question``, ``evidence``, ``chosen``, ``rejected`` (bare
  SQL), ``chosen_dist``, ``rejected_dist``; plus ``prompt``, the same text, which its
  ``train.py`` and ``evaluate.py`` read.

Train and test are split **by question** (:func:`split_questions`): every pair of a
question lands on the same side.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from lfkit.errors import LfkitError
from lfkit.tree.model import RevisionTree, TreeNode

SOURCE = "tree"
KINDS = ("correct_vs_wrong", "wrong_vs_wrong")
RESQLVER_SHARD = "final_data_emerge_shard_{shard_id}.json"
RESQLVER_TRAIN = "final_data_train.json"
RESQLVER_TEST = "final_data_test.json"


@dataclass
class Pair:
    chosen: TreeNode
    rejected: TreeNode
    rule: str

    @property
    def kind(self) -> str:
        return "correct_vs_wrong" if self.chosen.is_correct else "wrong_vs_wrong"


class PairRuleError(LfkitError, ValueError):
    """An unknown pair rule was asked for, or a rule registration was refused."""


PairRule = Callable[[RevisionTree], list[tuple[TreeNode, TreeNode]]]
PAIR_RULES: dict[str, PairRule] = {}
"""Pair rules by name, in the order their pairs are collected (the first pair found wins a duplicate)."""


def register_pair_rule(name: str) -> Callable[[PairRule], PairRule]:
    """Decorator registering ``fn(tree) -> [(chosen, rejected), ...]`` as pair rule ``name``.

    A duplicate name is refused (:class:`PairRuleError`); pairs with an empty SQL on either
    side are the rule's to skip.

    >>> @register_pair_rule("deepest_first")
    ... def _deepest(tree):
    ...     return []
    >>> list(PAIR_RULES)
    ['family', 'correct_vs_wrong', 'deepest_first']
    >>> del PAIR_RULES["deepest_first"]
    """
    if name in PAIR_RULES:
        raise PairRuleError(f"pair rule {name!r} is already registered")

    def decorate(fn: PairRule) -> PairRule:
        PAIR_RULES[name] = fn
        return fn

    return decorate


def _ordered(a: TreeNode, b: TreeNode) -> tuple[TreeNode, TreeNode] | None:
    if a.revision_distance < b.revision_distance:
        return a, b
    if b.revision_distance < a.revision_distance:
        return b, a
    return None


@register_pair_rule("family")
def family_pairs(tree: RevisionTree) -> list[tuple[TreeNode, TreeNode]]:
    """ReSQLver's rule: (chosen, rejected) for every family pair whose distances differ.

    Each unordered node pair is considered once; pairs with an empty SQL are skipped.
    """
    nodes = tree.nodes
    by_parent: dict[str, list[str]] = {}
    for nid, node in nodes.items():
        by_parent.setdefault(node.parent_id, []).append(nid)
    seen: set[tuple[str, str]] = set()
    out = []
    for center in nodes.values():
        family = [center.parent_id] if center.parent_id in nodes else []
        family += by_parent.get(center.parent_id, [])  # siblings, the centre among them
        family += [c for c in center.children_ids if c in nodes]
        for a, b in combinations(list(dict.fromkeys(family)), 2):
            key = (a, b) if a < b else (b, a)
            if key in seen:
                continue
            seen.add(key)
            pair = _ordered(nodes[a], nodes[b])
            if pair and pair[0].generated_sql and pair[1].generated_sql:
                out.append(pair)
    return out


@register_pair_rule("correct_vs_wrong")
def correct_wrong_pairs(tree: RevisionTree) -> list[tuple[TreeNode, TreeNode]]:
    """compare.py's candidates (same depth, parent-child) where exactly one is correct."""
    nodes = tree.nodes
    candidates: list[tuple[str, str]] = []
    by_depth: dict[int, list[str]] = {}
    for nid, node in nodes.items():
        by_depth.setdefault(node.d, []).append(nid)
    for d in sorted(by_depth):
        candidates += combinations(by_depth[d], 2)
    for nid, node in nodes.items():
        candidates += [(nid, c) for c in node.children_ids if c in nodes]
    out = []
    for a, b in candidates:
        na, nb = nodes[a], nodes[b]
        if na.is_correct == nb.is_correct or not (na.generated_sql and nb.generated_sql):
            continue
        out.append((na, nb) if na.is_correct else (nb, na))
    return out


def tree_pairs(tree: RevisionTree, rules: Sequence[str] | None = None) -> tuple[list[Pair], Counter]:
    """The deduplicated pairs of one tree and counters (``duplicates``, ``same_sql``).

    ``rules``: names from :data:`PAIR_RULES` (default: all), applied in registry order.
    """
    from lfkit.sql import normalize_sql

    rules = list(PAIR_RULES) if rules is None else rules
    unknown = set(rules) - set(PAIR_RULES)
    if unknown:
        raise PairRuleError(f"unknown pair rule(s) {sorted(unknown)}; choose from {', '.join(PAIR_RULES)}")
    norm: dict[str, str] = {}

    def key(node: TreeNode) -> str:
        if node.node_id not in norm:
            norm[node.node_id] = normalize_sql(node.generated_sql)
        return norm[node.node_id]

    found: list[tuple[TreeNode, TreeNode, str]] = []
    for name, rule in PAIR_RULES.items():
        if name in rules:
            found += [(c, r, name) for c, r in rule(tree)]
    counts: Counter = Counter()
    seen: set[tuple[str, str]] = set()
    out = []
    for chosen, rejected, rule in found:
        kc, kr = key(chosen), key(rejected)
        if kc == kr:
            counts["same_sql"] += 1
            continue
        k = (kc, kr) if kc < kr else (kr, kc)
        if k in seen:
            counts["duplicates"] += 1
            continue
        seen.add(k)
        out.append(Pair(chosen, rejected, rule))
    return out, counts


def preference_row(tree: RevisionTree, pair: Pair, round: int = 1) -> dict[str, Any]:
    """One row in lfkit's preference format (registrable as ``--kind preference``)."""
    from lfkit.data.prompts import format_sql_answer
    from lfkit.data.rows import Question
    from lfkit.data.rows import preference_row as row

    instruction, input_text = tree.prompt()
    return row(
        Question(tree.question_id, tree.db_id),
        instruction,
        input_text,
        format_sql_answer(pair.chosen.generated_sql),
        format_sql_answer(pair.rejected.generated_sql),
        SOURCE,
        round,
        chosen_dist=pair.chosen.revision_distance,
        rejected_dist=pair.rejected.revision_distance,
        kind=pair.kind,
    )


def resqlver_row(tree: RevisionTree, pair: Pair) -> dict[str, Any]:
    """One row of ReSQLver's ``final_data_emerge_shard_{i}.json`` (bare SQL on both sides; module docstring)."""
    instruction, input_text = tree.prompt()
    prompt = tree.initial_input_seq or "\n".join(p for p in (instruction, input_text) if p)
    return {
        "question_id": tree.question_id,
        "db_id": tree.db_id,
        "instruction": prompt,
        "question": tree.question,
        "evidence": tree.evidence,
        "chosen": pair.chosen.generated_sql,
        "rejected": pair.rejected.generated_sql,
        "chosen_dist": pair.chosen.revision_distance,
        "rejected_dist": pair.rejected.revision_distance,
        "prompt": prompt,
    }


def split_questions(question_ids: Iterable[Any], test_fraction: float, seed: int) -> set[str]:
    """The question keys (:func:`lfkit.data.rows.question_key`) of the test side of a by-question split.

    Questions are ranked by ``sha256(f"{seed}:{question_id}")``; the first
    ``round(n * test_fraction)`` go to test -- at least one when the fraction is positive
    and there are two questions or more, never all of them. The rank of a question does
    not depend on the others, so the same seed keeps a question on its side when more
    questions are added.

    >>> sorted(split_questions(range(10), 0.2, seed=0)) == sorted(split_questions(range(10), 0.2, seed=0))
    True
    >>> len(split_questions(range(40), 0.05, seed=1)), len(split_questions(range(3), 0.05, seed=1))
    (2, 1)
    """
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    from lfkit.data.rows import question_key

    ids = sorted({question_key(q) for q in question_ids})
    n = len(ids)
    if test_fraction == 0 or n < 2:
        return set()
    n_test = min(max(1, round(n * test_fraction)), n - 1)
    ranked = sorted(ids, key=lambda q: hashlib.sha256(f"{seed}:{q}".encode()).hexdigest())
    return set(ranked[:n_test])


@dataclass
class PairsResult:
    """All pairs of a set of trees, split by question, in both formats."""

    train: list[dict[str, Any]] = field(default_factory=list)
    test: list[dict[str, Any]] = field(default_factory=list)
    resqlver: list[dict[str, Any]] = field(default_factory=list)  # every pair, unsplit (a shard)
    counts: Counter = field(default_factory=Counter)
    test_questions: set[str] = field(default_factory=set)

    def summary(self) -> dict[str, Any]:
        kinds = Counter(r["kind"] for r in self.train + self.test)
        return {
            "trees": self.counts["trees"],
            "trees_with_pairs": self.counts["trees_with_pairs"],
            "pairs": len(self.train) + len(self.test),
            "train_pairs": len(self.train),
            "test_pairs": len(self.test),
            "test_questions": len(self.test_questions),
            "by_kind": {k: kinds.get(k, 0) for k in KINDS},
            "by_rule": {r: self.counts[f"rule_{r}"] for r in PAIR_RULES},
            "duplicates_dropped": self.counts["duplicates"],
            "same_sql_dropped": self.counts["same_sql"],
        }


def build_pairs(
    trees: Sequence[RevisionTree],
    test_fraction: float = 0.05,
    seed: int = 0,
    rules: Sequence[str] | None = None,
    round: int = 1,
) -> PairsResult:
    """Pairs of every tree, split train/test by question."""
    from lfkit.data.rows import question_key

    test_ids = split_questions([t.question_id for t in trees], test_fraction, seed)
    result = PairsResult(test_questions=test_ids)
    for tree in trees:
        pairs, counts = tree_pairs(tree, rules)
        result.counts.update(counts)
        result.counts["trees"] += 1
        result.counts["trees_with_pairs"] += bool(pairs)
        side = result.test if question_key(tree.question_id) in test_ids else result.train
        for p in pairs:
            result.counts[f"rule_{p.rule}"] += 1
            side.append(preference_row(tree, p, round))
            result.resqlver.append(resqlver_row(tree, p))
    return result


def pairs_settings(tree_settings: dict[str, Any] | None, rules: Sequence[str], round: int) -> dict[str, Any]:
    """What made a pairs shard: the trees' shared settings (shard ids aside) and the pair rules.

    A pairs shard is shard ``i`` of ``K`` exactly when its trees were (a tree shard's header
    names both); pairs of a merged tree file are shard 0 of 1 unless told otherwise.
    """
    trees = {k: v for k, v in (tree_settings or {}).items() if k not in ("shard_id", "num_shards", "output", "journal")}
    out: dict[str, Any] = {"trees": trees, "rules": list(rules), "round": round}
    if tree_settings and "shard_id" in tree_settings:
        out.update(shard_id=tree_settings["shard_id"], num_shards=tree_settings.get("num_shards", 1))
    return out


def write_pairs(
    result: PairsResult,
    output: str | os.PathLike[str],
    test_output: str | os.PathLike[str] | None = None,
    resqlver_dir: str | os.PathLike[str] | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Write the lfkit rows (train to ``output``, test to ``test_output``) and ReSQLver's shard.

    The shard ``final_data_emerge_shard_{shard_id}.json`` holds every pair (train and
    test: ReSQLver splits after merging) and gets a settings sidecar for ``tree merge``.
    """
    from lfkit.io import write_rows
    from lfkit.tree.model import write_sidecar

    written = {"output": str(write_rows(output, result.train))}
    if test_output is not None:
        written["test_output"] = str(write_rows(test_output, result.test))
    if resqlver_dir is not None:
        settings = dict(settings or {})
        settings.setdefault("shard_id", 0)
        settings.setdefault("num_shards", 1)
        path = Path(resqlver_dir) / RESQLVER_SHARD.format(shard_id=settings["shard_id"])
        write_rows(path, result.resqlver)
        write_sidecar(path, "pairs", settings)
        written["resqlver_shard"] = str(path)
    return written


__all__ = [
    "KINDS",
    "PAIR_RULES",
    "RESQLVER_SHARD",
    "RESQLVER_TEST",
    "RESQLVER_TRAIN",
    "Pair",
    "PairRule",
    "PairRuleError",
    "PairsResult",
    "build_pairs",
    "correct_wrong_pairs",
    "family_pairs",
    "pairs_settings",
    "preference_row",
    "register_pair_rule",
    "resqlver_row",
    "split_questions",
    "tree_pairs",
    "write_pairs",
]

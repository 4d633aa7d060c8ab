"""What a full run's ``report.html`` and ``report.md`` show beside EX by stage: the DPO rounds' pairs, the revision
trees, the reward model's training pairs and its held-out accuracy, best-of-N by selector.

Each table is read from ``report.json``'s own fields and rendered twice, as the page's extra tables and as
``report.md``'s sections (:meth:`ReportTable.markdown`), so the page and the markdown cannot disagree; a stage the
run did not reach gives no table. Percentages have one decimal, as the EX table's.
"""

from __future__ import annotations

from typing import Any

from lfkit.data.rows import DIFFICULTIES
from lfkit.eval.report_html import ReportTable

# How the page names the RM eval's two models (lfkit rm eval's adapter names).
RM_MODELS = {"rm": "trained RM", "none": "untrained head"}


def _counts(counts: dict[str, int]) -> str:
    """``{"wrong": 60, "error": 0}`` -> ``"wrong 60"`` (zero counts left out)."""
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "-"


def _pct(x: float | None) -> float | str:
    return "-" if x is None else round(x, 1)


def _share(x: float | None) -> float | str:
    """A fraction as a percentage with one decimal; None (no pair) as ``-``."""
    return "-" if x is None else round(100 * x, 1)


def _depth(key: str) -> int:
    """``"depth_10"`` -> 10, so level 10 sorts after level 2."""
    tail = key.rpartition("_")[2]
    return int(tail) if tail.isdigit() else 0


def rounds_table(rounds: list[dict[str, Any]]) -> ReportTable | None:
    """The DPO rounds' preference pairs: how many, rejected by kind, chosen from where."""
    if not rounds:
        return None
    rows = [
        [f"round{r['round']}", r["pairs"], _counts(r["pairs_by_reject_kind"]), _counts(r["pairs_by_chosen_source"])]
        for r in rounds
    ]
    return ReportTable("DPO rounds: verified preference pairs", ["round", "pairs", "rejected", "chosen"], rows)


def rm_pairs_table(pairs: dict[str, Any] | None) -> ReportTable | None:
    """The reward model's training pairs by source (trees, the rounds' rejects) and kind, with their total."""
    if not pairs or not pairs.get("by_source_and_kind"):
        return None
    rows: list[list[Any]] = [
        [source, kind, n] for source, kinds in pairs["by_source_and_kind"].items() for kind, n in kinds.items()
    ]
    rows.append(["all", "", pairs.get("pairs", sum(r[2] for r in rows))])
    return ReportTable("Reward-model training pairs by source and kind", ["source", "kind", "pairs"], rows)


def rm_table(rm_eval: dict[str, Any] | None, training_pairs: int | None) -> ReportTable | None:
    """Pairwise accuracy (%) of the trained RM and of its base with an untrained head, by difficulty."""
    if not rm_eval:
        return None
    rows = []
    for name, m in rm_eval["models"].items():
        by = m.get("by_difficulty") or {}
        cells = [_share(by[d]["accuracy"]) if d in by else "-" for d in DIFFICULTIES]
        margin = "-" if m.get("avg_margin") is None else round(m["avg_margin"], 3)
        rows.append([RM_MODELS.get(name, name), _share(m.get("accuracy")), *cells, m["n"], m.get("ties", "-"), margin])
    trained = f", trained on {training_pairs} pairs" if training_pairs else ""
    return ReportTable(
        f"Reward model: pairwise accuracy % on held-out dev pairs{trained}",
        ["model", "accuracy", *DIFFICULTIES, "pairs", "ties", "mean margin"],
        rows,
    )


def best_of_n_table(bon: dict[str, Any] | None, policy: str | None = None) -> ReportTable | None:
    """EX (%) of every best-of-N selector, by difficulty, in ``lfkit eval select``'s order (``policy``: the model
    that sampled the candidates, named in the caption)."""
    from lfkit.eval.select import STRATEGIES

    if not bon:
        return None
    rows = []
    for name in STRATEGIES:
        s = bon["strategies"].get(name)
        if s is None:
            continue
        by = s.get("by_difficulty") or {}
        cells = [_pct(by[d]["ex"]) if d in by else "-" for d in DIFFICULTIES]
        rows.append([name, _pct(s["ex"]), *cells, s.get("errors", "-")])
    sampled = f" sampled from {policy}" if policy else ""
    return ReportTable(
        f"Best-of-N: EX % of each selector over {bon['n_candidates']} candidates{sampled} on {bon['questions']} "
        "dev questions",
        ["selector", "EX", *DIFFICULTIES, "errors"],
        rows,
    )


def trees_table(trees: dict[str, Any] | None) -> ReportTable | None:
    """Revision trees' nodes and correct answers by depth (trees grow on train questions: their pairs train the
    RM, so they match no dev question of the page)."""
    if not trees:
        return None
    depths = (trees.get("summary") or {}).get("nodes_per_depth") or {}
    rows = [[k.replace("_", " "), depths[k]["total"], depths[k]["correct"]] for k in sorted(depths, key=_depth)]
    return ReportTable(
        f"Revision trees on {trees['trees']} train questions ({trees['rescued_by_revision']} rescued by revision)",
        ["level", "nodes", "correct"],
        rows,
    )


def full_tables(report: dict[str, Any]) -> list[ReportTable]:
    """The extra tables of ``lfkit demo --full``'s page and report.md, from its ``report.json`` dict, in pipeline
    order."""
    tables = [
        rounds_table(report.get("rounds") or []),
        trees_table(report.get("trees")),
        rm_pairs_table(report.get("pairs")),
        rm_table(report.get("rm_eval"), (report.get("pairs") or {}).get("pairs")),
        best_of_n_table(report.get("best_of_n"), report.get("best_policy")),
    ]
    return [t for t in tables if t is not None]


__all__ = ["best_of_n_table", "full_tables", "rm_pairs_table", "rm_table", "rounds_table", "trees_table"]

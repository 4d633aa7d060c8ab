"""Best-of-N selection: pick one SQL per question from N candidates, and measure EX per strategy.

Strategies (each writes its choices as a BIRD ``predict_dev.json`` and is scored from that
file by :func:`lfkit.eval.score_predictions`, the code behind ``lfkit eval score``):

* ``first``    -- candidate 0 (what plain sampling gives);
* ``greedy``   -- the greedy decode, when the candidates file holds one (``greedy``) or
  ``greedy=`` names a prediction file;
* ``vote``     -- execution majority vote (the OmniSQL rule): candidates whose SQL runs
  (status ``ok``) are grouped by result set (:func:`lfkit.sql.rows_match` against the
  group's first member, under the chosen comparison); the largest group wins, ties go to
  the group whose first member comes earliest, and its first member is the answer. A
  question where nothing runs answers candidate 0;
* ``rm_top1``  -- the candidate with the highest reward-model score (ties: earliest);
* ``rm_top1_exec`` -- the same among candidates that run (none runs: ``rm_top1``);
* ``rm_vote``  -- reward-weighted vote: groups as in ``vote``, a group weighs the sum of
  ``sigmoid(score)`` of its members (the RM's probability-like confidence; raw scores may be
  negative), heaviest wins, ties to the earliest group (nothing runs: ``rm_top1``);
* ``oracle``   -- pass@N: the first correct candidate, else candidate 0.

``greedy_candidate=True`` (``--greedy-candidate``) puts each question's greedy decode among its
candidates, first: vote ties go to it, the RM ranks it (``rm score`` writes its ``greedy_score``),
oracle counts it (pass@N+1); ``first`` stays the first sample.

``rm_*`` need ``scores`` (``lfkit rm score``: one JSONL line ``{"question_id", "scores"}``
per question, one score per candidate). Candidates are labelled against gold with
:func:`lfkit.sql.label_candidates` (the one labelling step); the report counts labels.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lfkit.data.rows import question_key
from lfkit.errors import LfkitError

STRATEGIES = ("first", "greedy", "vote", "rm_top1", "rm_top1_exec", "rm_vote", "oracle")
RM_STRATEGIES = frozenset({"rm_top1", "rm_top1_exec", "rm_vote"})


class SelectError(LfkitError, ValueError):
    """Unusable candidates / scores / gold (message names the file, row and field)."""


def candidate_sql(c: dict[str, Any]) -> str:
    """A candidate's SQL: its ``sql`` field (extracted at sampling time), else extracted from ``text``."""
    if isinstance(c.get("sql"), str):
        return c["sql"].strip()
    from lfkit.sql import extract_sql

    return extract_sql(c.get("text") or "")


def read_candidate_file(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Candidate records ``{"question_id", "db_id", "candidates": [{"sql"|"text", ...}], "greedy"?}``."""
    from lfkit.io import DataFileError, read_rows

    path = Path(path)
    if not path.is_file():
        raise SelectError(f"{path}: no such file")
    try:
        rows = read_rows(path)
    except DataFileError as exc:
        raise SelectError(str(exc)) from exc
    if not rows:
        raise SelectError(f"{path}: no rows")
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or row.get("question_id") is None:
            raise SelectError(f"{path}: row {i}: field 'question_id' is missing")
        key = question_key(row["question_id"])
        if key in seen:
            raise SelectError(f"{path}: row {i}: duplicate question_id {key}")
        seen.add(key)
        cands = row.get("candidates")
        if not isinstance(cands, list) or not cands:
            raise SelectError(f"{path}: row {i}: field 'candidates' is missing or empty")
        for j, c in enumerate(cands):
            if not isinstance(c, dict) or not (isinstance(c.get("sql"), str) or isinstance(c.get("text"), str)):
                raise SelectError(f"{path}: row {i}: candidates[{j}]: needs 'sql' or 'text'")
    return rows


def read_scores(
    path: str | os.PathLike[str], rows: Sequence[dict[str, Any]], greedy_candidate: bool = False
) -> dict[str, list[float]]:
    """question_key -> scores, checked against the candidates (one score per candidate; with
    ``greedy_candidate``, the greedy decode's ``greedy_score`` first)."""
    from lfkit.io import DataFileError, read_rows

    path = Path(path)
    try:
        records = read_rows(path)
    except DataFileError as exc:
        raise SelectError(str(exc)) from exc
    scores: dict[str, list[float]] = {}
    for i, r in enumerate(records):
        if r.get("question_id") is None or not isinstance(r.get("scores"), list):
            raise SelectError(f"{path}: row {i}: needs 'question_id' and 'scores'")
        greedy = []
        if greedy_candidate:
            if not isinstance(r.get("greedy_score"), int | float):
                raise SelectError(
                    f"{path}: row {i}: no 'greedy_score' for the greedy candidate (score the candidates again with "
                    "lfkit rm score, which scores each row's greedy decode)"
                )
            greedy = [float(r["greedy_score"])]
        scores[question_key(r["question_id"])] = greedy + [float(s) for s in r["scores"]]
    for row in rows:
        key = question_key(row["question_id"])
        if key not in scores:
            raise SelectError(f"{path}: no scores for question {key}")
        expected = len(row["candidates"]) + greedy_candidate
        if len(scores[key]) != expected:
            raise SelectError(
                f"{path}: question {key}: {len(scores[key]) - greedy_candidate} scores for "
                f"{len(row['candidates'])} candidates"
            )
    return scores


# ------------------------------------------------------------------------ strategies


def result_groups(
    results: Sequence[Any], comparison: str = "bird", sqls: Sequence[str] | None = None
) -> list[list[int]]:
    """Candidates that run, grouped by result set: lists of indices, in order of first member.

    ``results``: ExecResult-like (``ok``, ``rows``) per candidate. ``sqls`` (testsuite: row
    order matters when the group's first member has ORDER BY).
    """
    from lfkit.sql import rows_match

    groups: list[list[int]] = []
    for i, res in enumerate(results):
        if not res.ok:
            continue
        for g in groups:
            first = g[0]
            if rows_match(res.rows, results[first].rows, comparison, sqls[first] if sqls else None):
                g.append(i)
                break
        else:
            groups.append([i])
    return groups


def vote(groups: Sequence[Sequence[int]], weights: Sequence[float] | None = None) -> int | None:
    """First member of the heaviest group (size, or summed ``weights``); ties: earliest group.

    >>> vote([[0, 3], [1, 2]]), vote([[1], [0, 2]]), vote([]), vote([[0], [1, 2]], [5.0, 1.0, 1.0])
    (0, 0, None, 0)
    """
    best, best_weight = None, -math.inf
    for g in groups:
        w = len(g) if weights is None else sum(weights[i] for i in g)
        if w > best_weight:  # strict: an equal later group loses
            best, best_weight = g[0], w
    return best


def argmax(values: Sequence[float], among: Sequence[int] | None = None) -> int | None:
    """Index of the largest value (restricted to ``among``); ties: earliest. None when empty."""
    idx = range(len(values)) if among is None else among
    best = None
    for i in idx:
        if best is None or values[i] > values[best]:
            best = i
    return best


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def choose(
    labels: Sequence[str],
    results: Sequence[Any],
    scores: Sequence[float] | None,
    comparison: str,
    sqls: Sequence[str],
    first: int = 0,
) -> dict[str, int]:
    """Index chosen by each strategy for one question (greedy is handled by the caller; ``first``: the
    index of the first sample, 1 when the greedy decode is candidate 0)."""
    groups = result_groups(results, comparison, sqls)
    picks = {"first": first, "vote": vote(groups) if groups else 0}
    picks["oracle"] = next((i for i, lab in enumerate(labels) if lab == "correct"), 0)
    if scores is not None:
        top = argmax(scores)
        runs = [i for i, r in enumerate(results) if r.ok]
        picks["rm_top1"] = top
        picks["rm_top1_exec"] = argmax(scores, runs) if runs else top
        picks["rm_vote"] = vote(groups, [sigmoid(s) for s in scores]) if groups else top
    return picks


# ---------------------------------------------------------------------------- runner


def strategy_file(out: Path, strategy: str) -> Path:
    """``report.json`` -> ``report_predictions/<strategy>/predict_dev.json``."""
    return out.with_name(f"{out.stem}_predictions") / strategy / "predict_dev.json"


def run_select(
    candidates: str | os.PathLike[str],
    gold: str | os.PathLike[str],
    db_root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    scores: str | os.PathLike[str] | None = None,
    greedy: str | os.PathLike[str] | None = None,
    greedy_candidate: bool = False,
    comparison: str = "bird",
    timeout: float = 30.0,
    workers: int | None = None,
    plot: bool = True,
) -> dict[str, Any]:
    """Select with every strategy the inputs allow; write predictions, the report and a bar plot.

    Returns the report: ``{"questions", "n_candidates", "labels", "strategies": {name: {"ex",
    "correct", "n", "by_difficulty", "predictions"}}, ...}``; each strategy's numbers are
    :func:`~lfkit.eval.score_predictions` of its own ``predict_dev.json``.
    """
    from lfkit.data.bird import resolve_db_path
    from lfkit.eval.formats import read_gold, read_predictions, write_bird_predictions
    from lfkit.eval.score import score_predictions
    from lfkit.io import DataFileError, atomic_write_text
    from lfkit.sql import Verifier, label_candidates

    out = Path(out)
    rows = read_candidate_file(candidates)
    if greedy_candidate:
        missing = next((i for i, r in enumerate(rows) if not isinstance(r.get("greedy"), dict)), None)
        if missing is not None:
            raise SelectError(
                f"{candidates}: row {missing}: no greedy decode for --greedy-candidate "
                "(sample with lfkit eval predict --n N --with-greedy)"
            )
    score_map = read_scores(scores, rows, greedy_candidate) if scores is not None else None
    try:
        gold_items = read_gold(gold)
        greedy_preds = read_predictions(greedy) if greedy is not None else None
    except DataFileError as exc:
        raise SelectError(str(exc)) from exc
    by_key = {g.key: g for g in gold_items}
    questions = []
    for i, row in enumerate(rows):
        key = question_key(row["question_id"])
        if key not in by_key:
            raise SelectError(f"{candidates}: row {i}: question_id {key} is not in {gold}")
        g = by_key[key]
        try:
            db_path = resolve_db_path(db_root, g.db_id)
        except FileNotFoundError as exc:
            raise SelectError(str(exc)) from exc
        questions.append(dataclasses.replace(g, db_path=db_path))

    pools = [[row["greedy"], *row["candidates"]] if greedy_candidate else row["candidates"] for row in rows]
    sqls = [[candidate_sql(c) for c in pool] for pool in pools]
    with Verifier(comparison=comparison, timeout=timeout, workers=workers) as verifier:
        labelled = label_candidates(questions, sqls, verifier, extract=str.strip)
        # the same executions, from the verifier's cache: result sets for the votes
        flat = verifier.execute_many([(q.db_path, s) for q, ss in zip(questions, sqls, strict=True) for s in ss])

    strategies = [s for s in STRATEGIES if s not in RM_STRATEGIES or score_map is not None]
    has_greedy = greedy_preds is not None or all(isinstance(r.get("greedy"), dict) for r in rows)
    if not has_greedy:
        strategies.remove("greedy")
    picks: dict[str, dict[str, tuple[str, str]]] = {s: {} for s in strategies}
    label_counts: dict[str, int] = {}
    failed_questions = 0
    pos = 0
    for q, row, cands, q_sqls in zip(questions, rows, labelled, sqls, strict=True):
        results = flat[pos : pos + len(q_sqls)]
        pos += len(q_sqls)
        labels = [c.label for c in cands]
        for lab in labels:
            label_counts[lab] = label_counts.get(lab, 0) + 1
        failed_questions += not any(r.ok for r in results)
        q_scores = score_map[q.key] if score_map else None
        chosen = choose(labels, results, q_scores, comparison, q_sqls, first=int(greedy_candidate))
        for s, i in chosen.items():
            picks[s][q.key] = (q_sqls[i], q.db_id)
        if "greedy" in picks:
            if greedy_preds is not None:
                p = greedy_preds.get(q.key)
                picks["greedy"][q.key] = (p.sql if p else "", q.db_id)
            else:
                picks["greedy"][q.key] = (candidate_sql(row["greedy"]), q.db_id)

    # every number comes from scoring the strategy's own prediction file
    gold_subset = [by_key[question_key(r["question_id"])] for r in rows]
    report_strategies: dict[str, Any] = {}
    for s in strategies:
        path = write_bird_predictions(strategy_file(out, s), picks[s])
        rep = score_predictions(path, gold_subset, db_root, comparison=comparison, timeout=timeout, workers=workers)
        report_strategies[s] = {
            "ex": rep["ex"],
            "correct": rep["correct"],
            "n": rep["n"],
            "by_difficulty": rep["by_difficulty"],
            "errors": rep["errors"],
            "predictions": str(path),
        }
    report = {
        "candidates": str(candidates),
        "gold": str(gold),
        "scores": str(scores) if scores is not None else None,
        "questions": len(rows),
        "n_candidates": max(len(s) for s in sqls),
        "greedy_candidate": greedy_candidate,
        "labels": label_counts,
        "questions_without_running_candidate": failed_questions,
        "comparison": comparison,
        "strategies": report_strategies,
    }
    atomic_write_text(out, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if plot:
        report["plot"] = str(plot_strategies(report, out.with_suffix(".png")))
        atomic_write_text(out, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def plot_strategies(report: dict[str, Any], path: Path) -> Path:
    """Bar plot: EX per strategy, overall and by difficulty."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["strategies"])
    diffs = sorted({d for s in report["strategies"].values() for d in s["by_difficulty"]})
    from lfkit.data.rows import DIFFICULTIES

    diffs = [d for d in DIFFICULTIES if d in diffs] + [d for d in diffs if d not in DIFFICULTIES]
    series = ["total", *diffs] if len(diffs) > 1 else ["total"]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(names)), 4))
    for k, col in enumerate(series):
        values = [
            report["strategies"][s]["ex"] if col == "total" else report["strategies"][s]["by_difficulty"][col]["ex"]
            for s in names
        ]
        bars = ax.bar([i + k * width for i in range(len(names))], values, width, label=col)
        if col == "total":
            ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(names))], names)
    ax.set_ylabel("EX %")
    ax.set_title(f"Best-of-{report['n_candidates']} selection ({report['questions']} questions)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def render_select(report: dict[str, Any]) -> None:
    """The EX table of a selection report on stdout."""
    from rich.console import Console
    from rich.table import Table

    diffs = list(next(iter(report["strategies"].values()))["by_difficulty"])
    table = Table(title=f"Best-of-{report['n_candidates']}: EX % on {report['questions']} questions")
    for col in ["strategy", *diffs, "total"]:
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for name, s in report["strategies"].items():
        table.add_row(name, *[f"{s['by_difficulty'][d]['ex']:.2f}" for d in diffs], f"{s['ex']:.2f}")
    Console().print(table)
    labels = ", ".join(f"{k} {v}" for k, v in sorted(report["labels"].items()))
    Console().print(f"candidate labels: {labels}; questions where no candidate runs: "
                    f"{report['questions_without_running_candidate']}")  # fmt: skip

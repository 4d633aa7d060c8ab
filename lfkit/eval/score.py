"""Scoring predictions against gold like BIRD: EX overall and by difficulty, soft-F1, failures.

Execution and comparison are lfkit.sql's (:class:`~lfkit.sql.Verifier`), the same code that
labels preference data, so evaluation and labelling can never disagree about "correct".
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lfkit.data.rows import DIFFICULTIES, Question, question_key
from lfkit.eval.formats import Prediction, match_predictions, read_gold, read_predictions
from lfkit.io import DataFileError
from lfkit.sql import Verifier, soft_f1
from lfkit.sql.compare import check_comparison
from lfkit.sql.execute import DEFAULT_MAX_ROWS


def _pct(numerator: float, denominator: int) -> float:
    return round(100.0 * numerator / denominator, 2) if denominator else 0.0


def _ordered_difficulties(names: set[str]) -> list[str]:
    known = [d for d in DIFFICULTIES if d in names]
    return known + sorted(names - set(DIFFICULTIES))


def _as_predictions(predictions: Any) -> tuple[dict[str, Prediction], str]:
    if isinstance(predictions, (str, os.PathLike)):
        return read_predictions(predictions), str(predictions)
    out: dict[str, Prediction] = {}
    for qid, value in dict(predictions).items():
        if isinstance(value, Prediction):
            out[question_key(qid)] = value
        elif isinstance(value, str):
            out[question_key(qid)] = Prediction(value)
        else:
            sql, db_id = value
            out[question_key(qid)] = Prediction(sql, db_id)
    return out, "predictions"


def score_predictions(
    predictions: str | os.PathLike[str] | Mapping[Any, Any],
    gold: str | os.PathLike[str] | Sequence[Question],
    db_root: str | os.PathLike[str],
    comparison: str = "bird",
    timeout: float = 30.0,
    workers: int | None = None,
    progress: bool = False,
    *,
    difficulties: str | os.PathLike[str] | None = None,
    match: str = "auto",
    max_rows: int = DEFAULT_MAX_ROWS,
) -> dict[str, Any]:
    """Score predictions; returns the report dict (percentages for ``ex`` and ``soft_f1``).

    ``predictions``: a file (BIRD dict or lfkit JSONL) or ``{question_id: sql | (sql, db_id)}``.
    ``gold``: ``dev.json``/``dev_gold.sql``/lfkit JSONL, or Questions. ``db_root`` holds
    ``<db_id>/<db_id>.sqlite``. A missing prediction counts as wrong (``missing``); a gold query
    that fails to run counts as wrong and is listed in ``gold_failures``.
    """
    from lfkit.data.bird import resolve_db_path  # the one place that knows the BIRD layout

    check_comparison(comparison)
    preds, pred_source = _as_predictions(predictions)
    gold_items = list(gold) if not isinstance(gold, (str, os.PathLike)) else read_gold(gold, difficulties)
    if not gold_items:
        raise DataFileError(f"{gold}: no gold queries")
    paired = match_predictions(preds, gold_items, match, source=pred_source)

    db_paths: dict[str, Path] = {}
    for item in gold_items:
        if item.db_id not in db_paths:
            db_paths[item.db_id] = resolve_db_path(db_root, item.db_id)  # FileNotFoundError names it
    for item, pred in zip(gold_items, paired, strict=True):
        if pred is not None and pred.db_id and pred.db_id != item.db_id:
            raise DataFileError(
                f"{pred_source}: question {item.question_id}: db_id '{pred.db_id}' but the gold query uses "
                f"'{item.db_id}'; are the predictions for this gold file?"
            )

    triples = [
        (db_paths[g.db_id], g.gold_sql, p.sql if p is not None else "") for g, p in zip(gold_items, paired, strict=True)
    ]
    with Verifier(comparison=comparison, timeout=timeout, max_rows=max_rows, workers=workers) as verifier:
        verdicts = verifier.verify(triples, progress=progress, normalize=False)  # one prediction per question
        stats = dict(verifier.stats)

    results = []
    counts = {"errors": 0, "timeouts": 0, "too_many_rows": 0, "missing": 0}
    gold_failures = []
    for item, pred, verdict in zip(gold_items, paired, verdicts, strict=True):
        f1 = soft_f1(verdict.pred.rows, verdict.gold.rows) if verdict.pred.ok and verdict.gold.ok else 0.0
        status = "missing" if pred is None else verdict.status
        if status == "missing":
            counts["missing"] += 1
        elif status == "error":
            counts["errors"] += 1
        elif status == "timeout":
            counts["timeouts"] += 1
        elif status == "too_many_rows":
            counts["too_many_rows"] += 1
        if not verdict.gold.ok:
            gold_failures.append({"question_id": item.key, "status": verdict.gold.status, "error": verdict.gold.error})
        results.append(
            {
                "question_id": item.key,
                "db_id": item.db_id,
                "difficulty": item.difficulty,
                "correct": verdict.correct,
                "soft_f1": round(f1, 6),
                "status": status,
                "error": verdict.pred.error if pred is not None else "no prediction",
                "pred_sql": pred.sql if pred is not None else None,
            }
        )

    by_difficulty = {}
    for name in _ordered_difficulties({r["difficulty"] for r in results}):
        rows = [r for r in results if r["difficulty"] == name]
        correct = sum(r["correct"] for r in rows)
        by_difficulty[name] = {
            "ex": _pct(correct, len(rows)),
            "n": len(rows),
            "correct": correct,
            "soft_f1": _pct(sum(r["soft_f1"] for r in rows), len(rows)),
        }
    n = len(results)
    correct = sum(r["correct"] for r in results)
    return {
        "ex": _pct(correct, n),
        "n": n,
        "correct": correct,
        "soft_f1": _pct(sum(r["soft_f1"] for r in results), n),
        "by_difficulty": by_difficulty,
        **counts,
        "gold_failures": gold_failures,
        "comparison": comparison,
        "timeout": timeout,
        "executions": stats,
        "results": results,
    }


def render_report(report: dict[str, Any], console=None) -> None:
    """Print the report as a BIRD-style table (rows: count, EX, soft-F1; columns: difficulties)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    names = list(report["by_difficulty"])
    table = Table(title=f"Execution accuracy ({report['comparison']} comparison)")
    table.add_column("")
    for name in [*names, "total"]:
        table.add_column(name, justify="right")
    cells = [report["by_difficulty"][name] for name in names]
    table.add_row("count", *[str(c["n"]) for c in cells], str(report["n"]))
    table.add_row("EX %", *[f"{c['ex']:.2f}" for c in cells], f"{report['ex']:.2f}", style="bold")
    table.add_row("soft-F1 %", *[f"{c['soft_f1']:.2f}" for c in cells], f"{report['soft_f1']:.2f}")
    console.print(table)
    failures = (
        f"errors {report['errors']}, timeouts {report['timeouts']}, too_many_rows {report['too_many_rows']}, "
        f"missing {report['missing']}"
    )
    console.print(f"candidate failures: {failures}")
    if report["gold_failures"]:
        first = report["gold_failures"][0]
        console.print(
            f"[red]{len(report['gold_failures'])} gold queries failed to run[/red] "
            f"(e.g. question {first['question_id']}: {first['status']} {first['error']})"
        )

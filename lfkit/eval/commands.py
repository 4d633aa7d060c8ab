"""``lfkit eval``: score predictions the way BIRD does."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lfkit.sql.compare import COMPARISONS


@click.group("eval")
def eval_group() -> None:
    """Score predicted SQL against gold by execution (BIRD EX by difficulty, soft-F1)."""


@eval_group.command("score")
@click.option(
    "--predictions",
    "-p",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="BIRD predict_dev.json ({'0': 'SQL\\t----- bird -----\\tdb_id'}) or JSONL rows {question_id, sql}.",
)
@click.option(
    "--gold",
    "-g",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="BIRD dev.json, dev_gold.sql (SQL<TAB>db_id per line) or JSONL rows {question_id, db_id, sql, difficulty}.",
)
@click.option(
    "--db-root",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder holding <db_id>/<db_id>.sqlite (BIRD's dev_databases).",
)
@click.option(
    "--difficulties",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="dev.json giving the difficulty of each line when --gold is dev_gold.sql.",
)
@click.option(
    "--comparison",
    type=click.Choice(COMPARISONS),
    default="bird",
    show_default=True,
    help="bird: set equality of rows (official BIRD). testsuite: bag equality, ordered if gold has ORDER BY.",
)
@click.option("--timeout", type=click.FloatRange(min=0.001), default=30.0, show_default=True, help="Seconds per query.")
@click.option(
    "--workers", type=click.IntRange(min=0), default=None, help="Worker processes (default: all cores; 0 = in-process)."
)
@click.option(
    "--match",
    type=click.Choice(["auto", "id", "position"]),
    default="auto",
    show_default=True,
    help="Pair predictions with gold by question id or by position (BIRD's script uses position).",
)
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the JSON report here.")
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar.")
def score(
    predictions: Path,
    gold: Path,
    db_root: Path,
    difficulties: Path | None,
    comparison: str,
    timeout: float,
    workers: int | None,
    match: str,
    out: Path | None,
    no_progress: bool,
) -> None:
    """Score existing predictions against gold by executing both on SQLite.

    Prints EX (execution accuracy, %) overall and by difficulty, soft-F1, and how many
    predictions failed (error / timeout / too_many_rows / missing). Every query runs in
    lfkit's read-only sandbox; each distinct gold and predicted query runs once.

    \b
    Examples:
      # BIRD's own files
      lfkit eval score -p predict_dev.json -g dev.json --db-root dev_databases
      lfkit eval score -p predict_dev.json -g dev_gold.sql --difficulties dev.json \\
                       --db-root dev_databases --out report.json
      # lfkit JSONL predictions, test-suite style comparison
      lfkit eval score -p preds.jsonl -g corpus/dev.json --db-root corpus/dev_databases \\
                       --comparison testsuite --timeout 10 --workers 2
    """
    from lfkit.eval.score import render_report, score_predictions
    from lfkit.io import atomic_write_text

    try:
        report = score_predictions(
            predictions,
            gold,
            db_root,
            comparison=comparison,
            timeout=timeout,
            workers=workers,
            progress=not no_progress,
            difficulties=difficulties,
            match=match,
        )
    except (FileNotFoundError, ValueError) as exc:  # plain errors: a missing database, a bad option value
        raise click.ClickException(str(exc)) from exc
    render_report(report)
    if out is not None:
        atomic_write_text(out, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        click.echo(f"report written to {out}")

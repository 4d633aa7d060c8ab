"""``lfkit eval``: score predictions the way BIRD does."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lfkit.generate.commands import backend_options, stop_option
from lfkit.generate.defaults import SAMPLING
from lfkit.sql.commands import TIMEOUT, WORKERS, verifier_options


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
@verifier_options
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


@eval_group.command("predict")
@click.option(
    "--bird-dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="BIRD-style corpus (<split>.json, <split>_databases/).",
)
@click.option("--split", default="dev", show_default=True, help="Split to predict (dev, train, ...).")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Greedy: BIRD predict_dev.json. With --n: candidates JSONL (one line per question).",
)
@click.option(
    "--n",
    "n",
    type=click.IntRange(min=1),
    default=None,
    help="Sample N candidates per question (best-of-N) instead of one greedy prediction.",
)
@click.option(
    "--temperature",
    type=click.FloatRange(min=0.0),
    default=SAMPLING["candidates"].temperature,
    show_default=True,
    help="With --n.",
)
@click.option(
    "--top-p",
    type=click.FloatRange(min=0.0, max=1.0, min_open=True),
    default=SAMPLING["candidates"].top_p,
    show_default=True,
)
@click.option(
    "--seed",
    type=int,
    default=SAMPLING["candidates"].seed,
    show_default=True,
    help="With --n: question i samples with seed+i*1000.",
)
@click.option("--with-greedy", is_flag=True, help="With --n: also store each question's greedy decode.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--limit", type=click.IntRange(min=0), default=0, help="First N questions only (0 = all).")
@click.option(
    "--n-examples",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Example values per column in the schema prompt: the value the SFT data was built with "
    "(`lfkit data sft --n-examples`; the demo uses 0).",
)
@click.option("--max-chars", type=click.IntRange(min=1), default=12_000, show_default=True, help="Prompt budget.")
@TIMEOUT
@WORKERS
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Journal of finished questions (default <out>.journal.jsonl): a re-run resumes from it.",
)
@click.option("--overwrite", is_flag=True, help="Discard an existing journal and start again.")
@click.option("--no-progress", is_flag=True)
@stop_option
@backend_options
def predict(
    bird_dir: Path,
    split: str,
    out: Path,
    n: int | None,
    temperature: float,
    top_p: float,
    seed: int,
    with_greedy: bool,
    max_new_tokens: int,
    limit: int,
    n_examples: int,
    max_chars: int,
    timeout: float,
    workers: int | None,
    journal: Path | None,
    overwrite: bool,
    no_progress: bool,
    stop: bool,
    **kwargs: object,
) -> None:
    """Predict SQL for a split with a model: greedy BIRD predictions, or N labelled candidates.

    Prompts are lfkit's schema prompts (the SFT data's) in the model's LLaMA-Factory template.
    Every finished question is journalled (fsynced) as its answer returns; interrupted or
    failed, the same command resumes and asks only for the questions still missing. A journal
    from other settings (split file, model, prompt or decoding options) is refused.

    \b
    Examples:
      lfkit eval predict --bird-dir corpus --split dev --preset smollm2-135m \\
                         --adapter-path saves/sft --n-examples 0 --out predict_dev.json
      lfkit eval predict --bird-dir corpus --split dev --preset smollm2-135m --adapter-path saves/sft \\
                         --n-examples 0 --n 8 --temperature 0.8 --with-greedy --out cands.jsonl
      lfkit eval select --candidates cands.jsonl --gold corpus/dev.json --db-root corpus/dev_databases \\
                        --out select.json
    """
    from lfkit.data.bird import load_bird
    from lfkit.data.prompts import SchemaPromptBuilder
    from lfkit.eval.formats import write_bird_predictions
    from lfkit.eval.predict import journal_key, predict_settings, predict_sql, sample_candidates, write_candidates
    from lfkit.generate.options import backend_from_options, pop_backend_options, stop_strings
    from lfkit.jobs import Journal
    from lfkit.sql import Verifier

    examples = load_bird(bird_dir, split)
    if limit:
        examples = examples[:limit]
    builder = SchemaPromptBuilder(max_chars=max_chars, n_examples=n_examples)
    backend, identity, batch = backend_from_options(pop_backend_options(kwargs))
    # the options that decide a question's answer (--limit picks questions, so it is not one of them)
    options = {"n_examples": n_examples, "max_chars": max_chars, "max_new_tokens": max_new_tokens, "stop": stop}
    if n is None:
        options["kind"] = "predict"
    else:
        options.update(kind="candidates", n=n, temperature=temperature, top_p=top_p, seed=seed)
        options.update(with_greedy=with_greedy, comparison="bird", timeout=timeout)
    settings = predict_settings(bird_dir, split, identity, **options)
    journal_path = journal or Path(f"{out}.journal.jsonl")
    try:
        with Journal(journal_path, settings, key=journal_key, overwrite=overwrite) as jobs:
            if n is None:
                predictions = predict_sql(
                    examples, backend, builder, max_new_tokens=max_new_tokens, chunk_size=batch,
                    progress=not no_progress, stop=stop_strings(stop), journal=jobs,
                )  # fmt: skip
                write_bird_predictions(out, predictions)
                empty = sum(1 for sql, _ in predictions.values() if not sql.strip())
                click.echo(
                    f"wrote {len(predictions)} predictions ({empty} without SQL; {jobs.resumed} resumed from "
                    f"{journal_path}) to {out}"
                )
                return
            with Verifier(timeout=timeout, workers=workers) as verifier:
                records = sample_candidates(
                    examples, backend, builder, verifier, n=n, temperature=temperature, top_p=top_p,
                    max_new_tokens=max_new_tokens, seed=seed, with_greedy=with_greedy, chunk_size=batch,
                    progress=not no_progress, stop=stop_strings(stop), journal=jobs,
                )  # fmt: skip
    finally:
        backend.close()
    summary = write_candidates(out, records)
    click.echo(
        f"wrote {len(records)} questions x {n} candidates to {out} ({identity['model']}); labels: "
        + ", ".join(f"{k} {v}" for k, v in summary["labels"].items())
        + f"; pass@{n} {summary['pass_at_n']:.2f}%"
    )


@eval_group.command("select")
@click.option(
    "--candidates",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Candidates JSONL (`lfkit eval predict --n N`).",
)
@click.option(
    "--gold", "-g", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path), help="dev.json."
)
@click.option(
    "--db-root", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path), help="dev_databases."
)
@click.option(
    "--scores",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Reward-model scores JSONL (`lfkit rm score`): enables rm_top1, rm_top1_exec, rm_vote.",
)
@click.option(
    "--greedy",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Greedy predictions (predict_dev.json) when the candidates hold none.",
)
@click.option(
    "--greedy-candidate",
    is_flag=True,
    help="Put each question's greedy decode (eval predict --with-greedy) among its candidates, first: vote "
    "ties go to it, the RM ranks it, oracle = pass@N+1.",
)
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Report JSON; <stem>_predictions/<strategy>/predict_dev.json and <stem>.png beside it.",
)
@verifier_options
def select(
    candidates: Path,
    gold: Path,
    db_root: Path,
    scores: Path | None,
    greedy: Path | None,
    greedy_candidate: bool,
    out: Path,
    comparison: str,
    timeout: float,
    workers: int | None,
) -> None:
    """EX of best-of-N selection strategies: first, greedy, vote, RM top-1 (+ among executable),
    reward-weighted vote, oracle (pass@N).

    Each strategy's choices are written as a BIRD predict_dev.json and scored from that file
    exactly as `lfkit eval score` scores it.
    """
    from lfkit.eval.select import render_select, run_select

    report = run_select(
        candidates, gold, db_root, out, scores=scores, greedy=greedy, greedy_candidate=greedy_candidate,
        comparison=comparison, timeout=timeout, workers=workers,
    )  # fmt: skip
    render_select(report)
    click.echo(f"report written to {out}; plot {report.get('plot')}")


def _stage_option(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[tuple[str, Path]]:
    from lfkit.eval.report_html import ReportError, parse_stage

    out = []
    for spec in value:
        try:
            name, path = parse_stage(spec)
        except ReportError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc
        if not path.is_file():
            raise click.BadParameter(f"stage {name!r}: predictions file {path} not found", ctx=ctx, param=param)
        out.append((name, path))
    return out


@eval_group.command("report")
@click.option(
    "--stage",
    "-s",
    "stages",
    multiple=True,
    required=True,
    callback=_stage_option,
    metavar="NAME=PREDICTIONS",
    help="A stage's name and its predictions file (BIRD predict_dev.json or JSONL rows {question_id, sql}). "
    "Repeat it in pipeline order: fixed/broke compare each stage with the one before.",
)
@click.option(
    "--gold",
    "-g",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="BIRD dev.json (its question and evidence are shown), or dev_gold.sql with --difficulties.",
)
@click.option(
    "--db-root",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder holding <db_id>/<db_id>.sqlite (BIRD's dev_databases).",
)
@click.option(
    "--trees",
    type=click.Path(exists=True, path_type=Path),
    help="Revision trees (`lfkit tree build` output folder, all_trees.json, or a JSON/JSONL tree file): each "
    "question with a tree (same id, database and gold SQL) shows its revision path.",
)
@click.option(
    "--image",
    "images",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A PNG to embed in the page (repeatable), e.g. report/ex_by_stage.png.",
)
@click.option("--title", default="lfkit report", show_default=True, help="The page's title.")
@click.option(
    "--difficulties",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="dev.json giving the difficulty (and question text) of each line when --gold is dev_gold.sql.",
)
@verifier_options
@click.option(
    "--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The HTML file to write."
)
def report(
    stages: list[tuple[str, Path]],
    gold: Path,
    db_root: Path,
    trees: Path | None,
    images: tuple[Path, ...],
    title: str,
    difficulties: Path | None,
    comparison: str,
    timeout: float,
    workers: int | None,
    out: Path,
) -> None:
    """Write one static HTML page comparing stages' predictions, question by question.

    Each stage's predictions are scored exactly as `lfkit eval score` scores them. The page
    shows EX by stage and difficulty (with how many questions each stage fixed and broke),
    answers by label, the SQL issue detectors that fire, and a table of every question:
    click a row for the question, evidence, gold SQL, each stage's answer with its label
    (correct / wrong / error / timeout / no_sql / missing) and issues, and, with --trees,
    its revision tree with the path to the first correct node. Filter by difficulty, by
    change between stages (fixed, broke, ...), by label in a stage, or by text; sort by a
    column. Filters live in the address: open report.html#changed to see only the
    questions whose correctness changed (also #change=fixed&difficulty=simple,
    #label=wrong&stage=0, #q=ID, #expand).

    The file is self-contained (inline CSS and script, images as data: URIs) and loads
    nothing from the network; model output is escaped, so it is shown, never run.

    \b
    Examples:
      lfkit eval report -s base=out/base/predict_dev.json -s sft=out/sft/predict_dev.json \\
                        -s dpo=out/dpo/predict_dev.json -g corpus/dev.json \\
                        --db-root corpus/dev_databases -o report.html
      lfkit eval report -s sft=sft.json -s round1=r1.json -g corpus/dev.json \\
                        --db-root corpus/dev_databases --trees trees_out \\
                        --image report/ex_by_stage.png --title "DPO round 1" -o report.html
    """
    from lfkit.errors import LfkitError
    from lfkit.eval.report_html import write_html_report

    try:
        path = write_html_report(
            out, stages, gold, db_root, title=title, trees=trees, images=images, difficulties=difficulties,
            comparison=comparison, timeout=timeout, workers=workers,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:  # plain errors: a missing database, a bad option value
        if isinstance(exc, LfkitError):
            raise
        raise click.ClickException(str(exc)) from exc
    click.echo(f"report written to {path} ({len(stages)} stages); open it in a browser")

"""``lfkit prefs``: execution-verified preference data and chain-of-thought data."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from lfkit.generate.commands import backend_options
from lfkit.generate.defaults import SAMPLING
from lfkit.generate.options import backend_from_options, pop_backend_options
from lfkit.prefs.pairing import PAIRINGS
from lfkit.sql.commands import COMPARISON, TIMEOUT, WORKERS
from lfkit.sql.label import REJECT_KINDS, REJECTABLE


@click.group()
def prefs() -> None:
    """Sample candidates with the model being trained and build preference / CoT data.

    \b
    Every sampled SQL is executed and compared with gold (lfkit.sql): execution-correct
    samples are never used as rejected answers. Runs are resumable (journal next to the
    output), shardable (--num-shards/--shard-id, then `lfkit prefs merge`) and end with
    a summary table.
    """


def job_options(fn: Callable) -> Callable:
    """Options shared by `rejects` and `cot`."""
    options = [
        click.option(
            "--sft-data",
            required=True,
            type=click.Path(exists=True, dir_okay=False),
            help="SFT rows (JSON array or JSONL) with instruction, input, output, db_id[, question_id].",
        ),
        click.option(
            "--db-root",
            required=True,
            type=click.Path(exists=True, file_okay=False),
            help="Folder with <db_id>/<db_id>.sqlite for every db_id.",
        ),
        click.option(
            "--output",
            required=True,
            help="Output file: .jsonl = one row per line, else a JSON array. '{shard_id}' is replaced.",
        ),
        click.option(
            "--seed",
            type=int,
            default=SAMPLING["prefs"].seed,
            show_default=True,
            help="Base seed: question i, sample j uses seed + i*1000 + j.",
        ),
        click.option(
            "--max-new-tokens",
            type=click.IntRange(min=1),
            default=512,
            show_default=True,
            help="Generation cap per sample.",
        ),
        click.option(
            "--temperature",
            type=click.FloatRange(min=0),
            default=SAMPLING["prefs"].temperature,
            show_default=True,
            help="Sampling temperature (0 = greedy).",
        ),
        click.option(
            "--top-p",
            type=click.FloatRange(0, 1, min_open=True),
            default=SAMPLING["prefs"].top_p,
            show_default=True,
            help="Nucleus sampling mass.",
        ),
        click.option(
            "--max-samples",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="Use only the first N SFT rows (0 = all).",
        ),
        COMPARISON,
        TIMEOUT,
        WORKERS,
        click.option(
            "--dedup-rejects/--no-dedup-rejects",
            "dedup",
            default=True,
            show_default=True,
            help="Drop rejected answers whose normalised SQL (sqlglot) repeats within a question.",
        ),
        click.option(
            "--pairing",
            type=click.Choice(list(PAIRINGS)),
            default="all",
            show_default=True,
            help="Pairs per question (lfkit.prefs.pairing.PAIRINGS): all, one random, the hardest (smallest "
            "SQL edit distance to chosen), or hardest_same_where (the hardest reject with as many WHERE conditions "
            "as the chosen first: pairs whose only difference is a missing condition teach DPO to add conditions).",
        ),
        click.option(
            "--max-pairs-per-question",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="Cap on pairs per question (0: the strategy's own: no cap for all, 1 for the others).",
        ),
        click.option(
            "--num-shards",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Split questions into K shards (row index mod K).",
        ),
        click.option(
            "--shard-id",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="The shard this run processes (0..K-1).",
        ),
        click.option(
            "--round",
            "round_",
            type=int,
            default=1,
            show_default=True,
            help="Iteration number written to every preference row.",
        ),
        click.option(
            "--journal", help="Journal path (default <output>.candidates.jsonl): labelled candidates, resume state."
        ),
        click.option("--overwrite", is_flag=True, help="Discard an existing journal and start again."),
        click.option("--summary-json", type=click.Path(dir_okay=False), help="Also write the summary as JSON here."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return backend_options(fn)


def _run(kind: str, kwargs: dict[str, Any], config_cls: type, build: Callable, rename: dict[str, str]) -> None:
    backend_opts = pop_backend_options(kwargs)
    summary_json, quiet = kwargs.pop("summary_json"), kwargs.pop("quiet")
    kwargs["round"] = kwargs.pop("round_")
    for old, new in rename.items():
        kwargs[new] = kwargs.pop(old)
    try:
        cfg = config_cls(**kwargs)
    except ValueError as exc:  # a plain ValueError from the config's checks of option values
        raise click.ClickException(str(exc)) from exc
    backend, identity, batch = backend_from_options(backend_opts)
    cfg.model_info, cfg.batch_size = identity, batch
    try:
        with backend:
            summary = build(cfg, backend, progress=not quiet)
    except FileNotFoundError as exc:  # a database the SFT rows name is missing
        raise click.ClickException(str(exc)) from exc
    summary.render()
    if summary_json:
        from lfkit.io import atomic_write_text

        atomic_write_text(summary_json, json.dumps(summary.as_dict(), indent=2) + "\n")


@prefs.command()
@job_options
@click.option(
    "--num-rejects",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Samples per question (candidates for rejected).",
)
@click.option(
    "--keep-correct-as-chosen", is_flag=True, help="Also use execution-correct samples that differ from gold as chosen."
)
@click.option(
    "--reject-no-sql",
    is_flag=True,
    help="Deprecated: same as adding no_sql to --reject-kinds (to the default kinds when none are given).",
)
@click.option(
    "--chosen",
    type=click.Choice(["gold", "on-policy"]),
    default="gold",
    show_default=True,
    help="Chosen side: gold, or on-policy = the model's own execution-correct samples (gold only as fallback "
    "for a question it never got right). Rows record it in `chosen_source`.",
)
@click.option(
    "--reject-kinds",
    metavar="KINDS",
    help=f"Comma-separated labels that may be rejected, of {','.join(REJECT_KINDS)} "
    f"(default {','.join(k for k in REJECT_KINDS if k in REJECTABLE)}). Rows record it in `reject_kind`.",
)
def rejects(**kwargs: Any) -> None:
    """Execution-verified DPO pairs: chosen = gold, rejected = the model's wrong SQL.

    \b
    Each question is answered --num-rejects times with the prompt it was trained on
    (LLaMA-Factory template of --template/--preset). A sample becomes `rejected` only if
    its result differs from gold's or it errors / times out; correct samples are counted
    (and with --keep-correct-as-chosen paired as extra chosen). With --chosen on-policy the
    chosen side is the model's own correct answers (gold when it had none). Both sides use
    the SFT answer format. Rows: instruction, input, chosen, rejected, question_id, db_id,
    source, round, chosen_source (gold | on-policy), reject_kind (wrong | error | timeout | no_sql).

    \b
    Examples:
      lfkit prefs rejects --preset tiny --sft-data data/sft.json \\
          --db-root corpus/train_databases --output data/dpo.json --num-rejects 4
      lfkit prefs rejects --base-model Qwen/Qwen2.5-Coder-1.5B-Instruct --template qwen \\
          --adapter-path saves/sft --backend vllm --sft-data sft.json --db-root dbs \\
          --output dpo.shard{shard_id}.jsonl --num-shards 4 --shard-id 0 --pairing hardest
      lfkit prefs merge dpo.shard*.jsonl --output dpo.json
      lfkit prefs rejects --preset smollm2-135m --adapter-path saves/sft --sft-data data/sft.json \\
          --db-root corpus/train_databases --output data/dpo.json --chosen on-policy --reject-kinds wrong

    Interrupted? Run the same command again: it resumes from the journal.
    """
    from lfkit.prefs.rejects import RejectsConfig, build_rejects

    if kwargs.get("reject_no_sql"):
        click.echo("warning: --reject-no-sql is deprecated; add no_sql to --reject-kinds instead", err=True)
    _run("rejects", kwargs, RejectsConfig, build_rejects, {"num_rejects": "num_samples"})


@prefs.command()
@job_options
@click.option(
    "--num-traces",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Reasoning traces sampled per question.",
)
@click.option("--pairs-output", help="Also write CoT preference pairs (correct vs wrong trace) here.")
@click.option(
    "--reference/--no-reference",
    default=False,
    show_default=True,
    help="Show the gold SQL to the model (rationalisation); traces still count only if their own SQL is correct.",
)
@click.option(
    "--traces-per-question",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Correct traces kept as SFT rows per question.",
)
def cot(**kwargs: Any) -> None:
    """Chain-of-thought SFT rows and pairs, kept only when the trace's SQL is execution-correct.

    \b
    The model writes <think>reasoning</think> then the SQL (in a ```sql fence) for each
    question; the final SQL is read by lfkit.sql.extract_sql and executed against gold.
    --output gets CoT SFT rows (instruction, input, output, question_id, db_id);
    --pairs-output gets pairs with a correct trace as chosen and a wrong one as rejected.
    Register them with `lfkit register --kind cot` and `--kind preference`.

    \b
    Example:
      lfkit prefs cot --preset smollm2-135m --sft-data data/sft.json \\
          --db-root corpus/train_databases --output data/cot_sft.json \\
          --pairs-output data/cot_dpo.json --num-traces 8 --temperature 0.9
    """
    from lfkit.prefs.cot import CotConfig, build_cot

    _run("cot", kwargs, CotConfig, build_cot, {"num_traces": "num_samples"})


@prefs.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--output", required=True, help="Merged file (.jsonl = one row per line, else a JSON array).")
def merge(inputs: tuple[str, ...], output: str) -> None:
    """Merge shard outputs of `rejects` or `cot` into one file, without duplicates.

    \b
    Example:
      lfkit prefs merge dpo.shard0.jsonl dpo.shard1.jsonl dpo.shard2.jsonl --output dpo.json
    """
    from lfkit.prefs.merge import merge_outputs

    try:
        stats = merge_outputs(inputs, output)
    except ValueError as exc:  # plain ValueErrors: no input, or the output is also an input
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"merged {stats['rows_read']} {stats['kind']} rows from {stats['inputs']} files: "
        f"{stats['rows']} written to {output}, {stats['duplicates']} duplicates dropped"
    )

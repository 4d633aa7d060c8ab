"""``lfkit rm``: evaluate reward models on preference pairs and score best-of-N candidates."""

from __future__ import annotations

from pathlib import Path

import click

from lfkit.reward.model import DTYPES

_common = [
    click.option("--template", help="LLaMA-Factory template the RM was trained with (default: the embedded model's)."),
    click.option("--preset", help="lfkit preset naming the model and template (instead of --template)."),
    click.option(
        "--cutoff-len",
        type=click.IntRange(min=8),
        default=None,
        help="Longest sequence in tokens, cut the way training cut it: the recipe's cutoff_len "
        "(default: the --preset's, else 4096, the seed's max_length).",
    ),
    # --batch_size: ReSQLver's evaluate.py spelling, accepted as an alias
    click.option(
        "--batch-size",
        "--batch_size",
        type=click.IntRange(min=1),
        default=32,
        show_default=True,
        help="Pairs per forward.",
    ),
    click.option("--device", default="cpu", show_default=True, help="cpu | cuda | cuda:N."),
    click.option(
        "--dtype",
        type=click.Choice(list(DTYPES)),
        default=None,
        help="Weights' dtype for scoring (default: fp32 on cpu, bf16 on cuda; ReSQLver's evaluate.py uses bf16). "
        "The report records it: near-zero margins can flip between dtypes.",
    ),
    click.option("--no-progress", is_flag=True, help="Do not show progress bars."),
]


def common_options(fn):  # type: ignore[no-untyped-def]
    for option in reversed(_common):
        fn = option(fn)
    return fn


def _resolve(
    model: str, template: str | None, preset: str | None, cutoff_len: int | None
) -> tuple[str, str | None, int]:
    """(model, template, cutoff_len): explicit options first, then the preset's, then defaults."""
    if preset:
        from lfkit.models.presets import load_preset

        found = load_preset(preset)
        model = model or found.get("model_name_or_path")
        template = template or found.get("template")
        cutoff_len = cutoff_len or found.get("cutoff_len")
    return model, template, cutoff_len or 4096


@click.group("rm")
def rm() -> None:
    """Reward models: pairwise evaluation (the seed's evaluate.py) and candidate scoring."""


@rm.command("eval")
# ReSQLver's evaluate.py spellings (--base_model, --test_data, --output_file, --batch_size) are aliases.
@click.option(
    "--base-model", "--base_model", default="", help="Base model folder or embedded name (tiny, smollm2-135m)."
)
@click.option(
    "--adapters",
    multiple=True,
    required=True,
    help="Reward-model folders: LLaMA-Factory's (LoRA + value_head.safetensors) or the seed's seq-cls LoRA; "
    "'none' scores the bare base. Several: --adapters A B C.",
)
@click.argument("more_adapters", nargs=-1, metavar="[ADAPTER]...")
@click.option(
    "--test-data",
    "--test_data",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Pairs: lfkit preference rows (instruction, input, chosen, rejected) or ReSQLver rows (prompt, ...).",
)
@click.option(
    "--output",
    "--output-file",
    "--output_file",
    "output",
    default="eval_results.json",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Report; <stem>.pairs.jsonl and <stem>.margins.png are written beside it.",
)
@click.option(
    "--questions",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="BIRD json / gold file giving each question_id's difficulty (when the pairs have none).",
)
@common_options
def eval_command(
    base_model: str,
    adapters: tuple[str, ...],
    more_adapters: tuple[str, ...],
    test_data: Path,
    output: Path,
    questions: Path | None,
    template: str | None,
    preset: str | None,
    cutoff_len: int | None,
    batch_size: int,
    device: str,
    dtype: str | None,
    no_progress: bool,
) -> None:
    """Pairwise accuracy, ties and average margin of each reward model on held-out pairs.

    Prints a comparison table (overall, by difficulty, by pair kind) and writes the report,
    the per-pair scores and a margin histogram.

    \b
    Examples:
      lfkit rm eval --base-model smollm2-135m --adapters saves/rm none \\
                    --test-data pairs_test.jsonl --batch-size 64 --output eval_results.json
      # the seed's flags work too (ReSQLver scores in bf16: --dtype bf16 to compare like with like)
      lfkit rm eval --base_model Qwen2.5-Coder-1.5B-Instruct --adapters qwen-reward-model-sql-train \\
                    --test_data final_data_test.json --batch_size 64 --output_file eval_results.json \\
                    --template qwen --dtype bf16
    """
    from lfkit.reward.rm_eval import render_table, run_rm_eval, sibling

    base_model, template, cutoff_len = _resolve(base_model, template, preset, cutoff_len)
    if not base_model:
        raise click.UsageError("give --base-model (or a --preset that names the model)")
    results = run_rm_eval(
        base_model,
        [*adapters, *more_adapters],
        test_data,
        output,
        batch_size=batch_size,
        template=template,
        cutoff_len=cutoff_len,
        questions=questions,
        device=device,
        dtype=dtype,
        progress=not no_progress,
    )
    render_table(results)
    click.echo(f"report: {output}; per-pair scores: {sibling(output, '.pairs.jsonl')}; ", nl=False)
    click.echo(f"margins: {sibling(output, '.margins.png')}")


@rm.command("score")
@click.option("--model", "base_model", default="", help="Base model folder or embedded name.")
@click.option("--adapter", required=True, help="Reward-model folder (either kind) or 'none'.")
@click.option(
    "--candidates",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Best-of-N candidates JSONL (`lfkit eval predict --n N`).",
)
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Scores JSONL to write.")
@common_options
def score_command(
    base_model: str,
    adapter: str,
    candidates: Path,
    output: Path,
    template: str | None,
    preset: str | None,
    cutoff_len: int | None,
    batch_size: int,
    device: str,
    dtype: str | None,
    no_progress: bool,
) -> None:
    """One reward-model score per candidate: {"question_id", "scores": [...]} per line.

    Candidates whose SQL fails are scored too (the model sees text); the summary counts them.

    \b
    Example:
      lfkit rm score --model smollm2-135m --adapter saves/rm --candidates cands.jsonl --output scores.jsonl
    """
    from lfkit.reward.rm_eval import run_rm_score

    base_model, template, cutoff_len = _resolve(base_model, template, preset, cutoff_len)
    if not base_model:
        raise click.UsageError("give --model (or a --preset that names the model)")
    summary = run_rm_score(
        base_model,
        adapter,
        candidates,
        output,
        batch_size=batch_size,
        template=template,
        cutoff_len=cutoff_len,
        device=device,
        dtype=dtype,
        progress=not no_progress,
    )
    click.echo(
        f"scored {summary['candidates']} candidates of {summary['questions']} questions "
        f"({summary['failed_sql']} with failing SQL, scored all the same) -> {output}"
    )

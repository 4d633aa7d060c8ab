"""`lfkit grpo train | eval | merge` (`lfkit render grpo` is in lfkit/recipes/commands.py)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lfkit.grpo.filter import KEEP


@click.group()
def grpo() -> None:
    """GRPO on TRL with execution and process rewards (GRPO with process rewards, Qwen3-1.7B).

    \b
    Flow:
      lfkit data grpo --bird-dir corpus --split train --out data/grpo.jsonl --n-examples 0
      lfkit data grpo --bird-dir corpus --split dev --out data/grpo_dev.jsonl --n-examples 0
      lfkit render grpo --preset smollm2-135m --dataset data/grpo.jsonl --adapter saves/sft \\
          --set lfkit.dev_file=data/grpo_dev.jsonl -o grpo.yaml
      lfkit grpo train grpo.yaml                  # --resume saves/.../checkpoint-20
      lfkit grpo eval --model saves/sft-merged --adapter saves/.../best_model \\
          --test-file data/grpo_dev.jsonl --output evaluation_report.json

    Starting from an SFT adapter (lfkit.sft_adapter in the config): the adapter is merged
    into the base model (peft merge_and_unload, saved beside it as <adapter>-merged) and a
    new LoRA is trained on the merged model. The KL reference of GRPO (beta > 0) is the
    policy with its adapter disabled: the SFT model, not the raw base.
    """


@grpo.command()
@click.argument("config", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--resume", type=click.Path(file_okay=False, exists=True, path_type=Path), help="checkpoint-N folder.")
def train(config: Path, resume: Path | None) -> None:
    """Train with TRL's GRPOTrainer from a config written by `lfkit render grpo`.

    Before training the config is parsed by TRL's parser and checked by lfkit: unknown keys
    (also in the lfkit: section), reward functions that do not import, weights not aligned
    with them, and data rows without a prompt are refused, naming the key or row. Rows
    without db_path / gold_sql train with execution reward 0.

    What lfkit adds to `trl grpo`: the SFT adapter merged into its base first, so a new LoRA
    trains on the merged model and the KL reference (beta > 0) is the SFT model; prompts
    rendered with the LLaMA-Factory template SFT used (lfkit.template); dev EX (greedy,
    lfkit.eval) every lfkit.dev_every steps on the first lfkit.dev_size rows of
    lfkit.dev_file, with OUTPUT_DIR/best_model/ kept by dev EX; per-reward means and sample
    completions in OUTPUT_DIR/grpo_log.jsonl and samples.jsonl (tensorboard when installed,
    W&B when installed and lfkit.wandb is true); a final adapter in OUTPUT_DIR. With
    lfkit.gold_guide true, a question none of whose completions in a step is correct gets
    its gold SQL as the last completion of its group (off-policy guidance, as in LUFFY), so
    the questions the policy never solves still teach; it needs the execution reward and
    the transformers generator (no vLLM).

    \b
    Examples:
      lfkit grpo train grpo.yaml
      lfkit grpo train grpo.yaml --resume saves/smollm2-135m/lora/grpo/checkpoint-20
    """
    from lfkit.grpo.train import train_grpo

    result = train_grpo(config, resume=resume)
    click.echo(json.dumps(result, indent=2, ensure_ascii=False))


@grpo.command(name="filter")
@click.option(
    "--data",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="GRPO rows (lfkit data grpo) of the split that was sampled.",
)
@click.option(
    "--candidates",
    required=True,
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Labelled samples: `lfkit eval predict --n` output or a `lfkit prefs rejects` journal. Repeat for shards.",
)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Kept rows (.jsonl or .json)."
)
@click.option(
    "--keep",
    type=click.Choice(list(KEEP)),
    default="mixed",
    show_default=True,
    help="; ".join(f"{name}: {what}" for name, what in KEEP.items()) + ".",
)
def filter_cmd(data: Path, candidates: tuple[Path, ...], out: Path, keep: str) -> None:
    """Keep the training questions the start policy sometimes solves (offline dynamic sampling).

    With an execution reward of 0/1, a question whose samples are all wrong (or all right)
    gives every completion advantage 0: its step teaches nothing. Sample N answers per
    question with the SFT model first, then keep the questions whose pass count is in the
    --keep band; rows gain pass_rate and pass_samples columns. Questions whose gold failed
    are dropped. On a small model most questions are never solved, so this is what makes
    each CPU step count.

    \b
    Example (N = 4, the SFT adapter that GRPO starts from):
      lfkit eval predict --bird-dir corpus --split train --preset smollm2-135m --adapter-path saves/sft \\
          --n-examples 0 --n 4 --temperature 0.7 --top-p 1.0 --max-new-tokens 128 --out data/grpo_pass.jsonl
      lfkit grpo filter --data data/grpo.jsonl --candidates data/grpo_pass.jsonl --out data/grpo_mixed.jsonl
    """
    from lfkit.grpo.filter import filter_grpo_data

    summary = filter_grpo_data(data, candidates, out, keep)
    click.echo(json.dumps(summary, indent=2, ensure_ascii=False))


@grpo.command()
@click.argument("config", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def merge(config: Path) -> None:
    """Merge the config's SFT adapter into its base model (what `trl grpo` then loads).

    Writes lfkit.base_model + lfkit.sft_adapter, merged, to the config's model_name_or_path;
    nothing to do when the config starts from a plain model or the merge is up to date.
    """
    from lfkit.grpo.start import prepare_start_model
    from lfkit.recipes.grpo_config import load_grpo_config

    settings = load_grpo_config(config, hardware=False)
    path = prepare_start_model(settings)
    click.echo(f"start model: {path}")


@grpo.command(name="eval")
@click.option("--model", required=True, help="Model folder or embedded name (e.g. the merged SFT model).")
@click.option("--adapter", default=None, help="LoRA adapter on top (e.g. OUTPUT_DIR/best_model).")
@click.option("--template", default=None, help="LLaMA-Factory chat template (default: the embedded model's).")
@click.option(
    "--test-file",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="GRPO rows (lfkit data grpo) or the process-reward recipe's query/response/type rows.",
)
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Report JSON.")
@click.option("--limit", type=int, default=None, help="Evaluate the first N rows.")
@click.option("--max-new-tokens", default=256, show_default=True, help="Greedy tokens per answer.")
@click.option("--batch-size", default=8, show_default=True, help="Prompts per generate call.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda[:N].")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds per SQL execution.")
@click.option("--examples", "n_examples", default=10, show_default=True, help="Example predictions in the report.")
def eval_cmd(
    model: str,
    adapter: str | None,
    template: str | None,
    test_file: Path,
    output: Path,
    limit: int | None,
    max_new_tokens: int,
    batch_size: int,
    device: str,
    timeout: float,
    n_examples: int,
) -> None:
    """Evaluate a model: EX by difficulty plus the process-reward recipe's metrics, written to --output.

    Metrics: execution accuracy (overall and by difficulty; rows with db_path and gold_sql),
    type accuracy (predicted complexity vs the row's type), SQL validity, reasoning quality
    (the thinking reward), self-assessment accuracy, issue detection rate, the complexity
    distribution of predictions and gold, every reward's mean, example predictions and an
    error analysis (labels, issues of wrong answers).

    \b
    Example:
      lfkit grpo eval --model saves/sft-merged --adapter saves/grpo/best_model \\
          --test-file data/grpo_dev.jsonl --output evaluation_report.json
    """
    from lfkit.grpo.evaluate import evaluate_model

    report = evaluate_model(
        model,
        test_file,
        output,
        adapter=adapter,
        template=template,
        limit=limit,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        device=device,
        timeout=timeout,
        n_examples=n_examples,
    )
    summary = report["summary"]
    click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    click.echo(f"wrote {output}")

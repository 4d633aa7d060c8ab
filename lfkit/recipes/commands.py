"""`lfkit render` and `lfkit install`."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import yaml

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def parse_set(items: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as YAML (true, 3, 5e-6, null) like the recipe itself."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint="--set")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 5e-6 (no dot) as a string
        out[key] = value
    return out


def _list_text() -> str:
    from lfkit.models.presets import list_presets, read_preset
    from lfkit.recipes import STAGES

    lines = ["Stages:"]
    lines += [f"  {s.name:<8} llamafactory-cli {s.command:<7} {s.help}" for s in STAGES.values()]
    lines.append(f"  {'launch':<8} {'bash':<24} multi-GPU / multi-node launch script for a preset")
    lines.append(f"  {'grpo':<8} {'lfkit grpo train':<24} TRL GRPO config (also runs with `trl grpo --config`)")
    lines.append("")
    lines.append("Presets:")
    for name, description in list_presets().items():
        p = read_preset(name)
        lines.append(f"  {name:<22} template={p.template:<14} {description}")
    lines.append("")
    lines.append("`--set KEY=VALUE` takes a preset field (lora_rank, precision, deepspeed_stage, learning_rate, ...)")
    lines.append("or any LLaMA-Factory argument; unknown keys are rejected with the valid ones.")
    return "\n".join(lines)


@click.command()
@click.argument("stage", required=False, type=click.Choice(["sft", "dpo", "rm", "export", "launch", "grpo"]))
@click.option("--preset", "-p", help="Model preset (see --list); it fixes the model and its chat template.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a preset field or LF argument.")
@click.option("--dataset", help="Dataset name(s) in dataset_info.json, comma-separated. Default per stage.")
@click.option("--dataset-dir", help="LLaMA-Factory dataset_dir (the folder of dataset_info.json). Default: data")
@click.option("--output-dir", help="Training output (adapter) folder, or export_dir for `export`.")
@click.option(
    "--adapter",
    "adapters",
    multiple=True,
    help="Continue from this adapter (repeatable, in order): DPO after SFT gets the SFT model as reference.",
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Recipe file to write; - = stdout."
)
@click.option(
    "--lora-last-layers",
    type=click.IntRange(min=1),
    help="LoRA on the last N decoder layers only (sets lora_target): backward stops there, so steps are "
    "cheaper. Needs the preset's model as a local folder.",
)
@click.option("--no-validate", is_flag=True, help="Skip LLaMA-Factory's parser (not recommended).")
@click.option("--list", "list_", is_flag=True, help="Show stages and presets, then exit.")
@click.option("--sync", is_flag=True, help="Regenerate the checked-in recipes/ from templates and presets.")
@click.option("--check", is_flag=True, help="With --sync: only report drift (exit 1 if any).")
def render(
    stage: str | None,
    preset: str | None,
    sets: tuple[str, ...],
    dataset: str | None,
    dataset_dir: str | None,
    output_dir: str | None,
    adapters: tuple[str, ...],
    output: Path | None,
    lora_last_layers: int | None,
    no_validate: bool,
    list_: bool,
    sync: bool,
    check: bool,
) -> None:
    """Render a LLaMA-Factory recipe (YAML) from a template and a model preset.

    Every recipe is checked with LLaMA-Factory's own argument parser (what
    `llamafactory-cli train` runs) before it is written: a bad value fails here with
    LLaMA-Factory's message, not hours into a job. Relative dataset_dir and deepspeed
    paths are checked from the current directory, where you will run llamafactory-cli.

    \b
    Examples:
      lfkit render --list
      lfkit render sft --preset tiny --dataset text2sql_sft --dataset-dir data -o sft.yaml
      lfkit render dpo --preset smollm2-135m --adapter saves/smollm2-135m/lora/sft \\
                   --set pref_loss=orpo --set pref_beta=0.2 -o dpo.yaml
      lfkit render sft --preset qwen3-coder-30b-a3b --set deepspeed_stage=2 --set cutoff_len=16384 -o sft.yaml
      lfkit render export --preset tiny --adapter saves/tiny/lora/sft --output-dir merged -o export.yaml
      lfkit render launch --preset qwen3-coder-30b-a3b -o launch.sh   # FORCE_TORCHRUN/NNODES/...
      lfkit render grpo --preset smollm2-135m --dataset data/grpo.jsonl --adapter saves/sft -o grpo.yaml
      lfkit render grpo --preset smollm2-135m --dataset data/grpo.jsonl --lora-last-layers 8 -o grpo.yaml
      lfkit render --sync            # regenerate recipes/ after changing templates or presets

    `grpo` writes a TRL GRPO config (see `lfkit grpo --help`): --dataset is the GRPO rows
    file, --adapter the SFT adapter to start from, --set also takes reward.NAME=WEIGHT and
    lfkit.KEY=VALUE; it is checked with TRL's parser and runs with `trl grpo --config`.
    """
    if list_:
        click.echo(_list_text())
        return
    if sync:
        _sync(check)
        return
    if stage is None or preset is None or output is None:
        raise click.UsageError("give STAGE, --preset and -o FILE (or --list / --sync)")
    layers = _last_layers(stage, preset, sets, lora_last_layers)
    if stage == "grpo":  # a TRL config, not a LLaMA-Factory recipe: lfkit.recipes.grpo renders it
        _render_grpo(preset, sets, layers, dataset, output_dir, list(adapters), output, not no_validate)
        return
    _render(stage, preset, sets, layers, dataset, dataset_dir, output_dir, list(adapters), output, not no_validate)


def _last_layers(stage: str, preset: str, sets: tuple[str, ...], n: int | None) -> tuple[int, str] | None:
    """``--lora-last-layers N`` as ``(N, lora_target)`` (None without it)."""
    if n is None:
        return None
    if stage in ("export", "launch"):
        raise click.UsageError(f"--lora-last-layers applies to training stages, not {stage}")
    if any(item.split("=", 1)[0].strip() == "lora_target" for item in sets):
        raise click.UsageError("give --lora-last-layers or --set lora_target=..., not both")
    from lfkit.models.presets import load_preset
    from lfkit.recipes.render import lora_target_last_layers

    return n, lora_target_last_layers(load_preset(preset)["model_name_or_path"], n)


def _overrides(sets: tuple[str, ...], layers: tuple[int, str] | None) -> dict:
    return {**parse_set(sets), **({"lora_target": layers[1]} if layers else {})}


def _set_args(sets: tuple[str, ...], layers: tuple[int, str] | None) -> list[str]:
    """The ``--lora-last-layers`` / ``--set`` part of the command line a rendered file names."""
    return (["--lora-last-layers", str(layers[0])] if layers else []) + [a for item in sets for a in ("--set", item)]


def _sync(check: bool) -> None:
    from lfkit.recipes.examples import recipes_dir, sync_recipes

    changed = sync_recipes(check=check)
    target = recipes_dir()
    if not changed:
        click.echo(f"{target} is up to date")
        return
    verb = "out of date" if check else "updated"
    for rel in changed:
        click.echo(f"{verb}: {target / rel}")
    if check:
        raise click.ClickException("recipes/ drifted from templates/presets: run `lfkit render --sync`")


def _render(
    stage: str,
    preset: str,
    sets: tuple[str, ...],
    layers: tuple[int, str] | None,
    dataset: str | None,
    dataset_dir: str | None,
    output_dir: str | None,
    adapters: list[str],
    output: Path,
    validate: bool,
) -> None:
    from lfkit.io import atomic_write_text
    from lfkit.models.presets import read_preset
    from lfkit.recipes import dump_recipe, render_launch_script, render_recipe, validate_recipe

    read_preset(preset)  # unknown preset: fail before building an embedded model
    if stage == "launch":
        text = render_launch_script(preset, script_name=str(output))
    else:
        from rich.console import Console

        with Console(stderr=True).status(f"rendering {stage} with {preset}; validating with LLaMA-Factory"):
            config = render_recipe(
                stage,
                preset,
                _overrides(sets, layers),
                dataset=dataset,
                dataset_dir=dataset_dir,
                output_dir=output_dir,
                adapter_name_or_path=adapters or None,
            )
            if validate:
                validate_recipe(config, base_dir=Path.cwd())
        args = ["lfkit", "render", stage, "--preset", preset]
        for flag, value in (("--dataset", dataset), ("--dataset-dir", dataset_dir), ("--output-dir", output_dir)):
            args += [flag, value] if value else []
        args += [a for adapter in adapters for a in ("--adapter", adapter)]
        args += _set_args(sets, layers)
        header = "Rendered by: " + " ".join(shlex.quote(a) for a in args)
        text = dump_recipe(config, header)
    if str(output) == "-":
        click.echo(text, nl=False)
        return
    atomic_write_text(output, text)
    if stage == "launch":
        output.chmod(0o755)
    click.echo(f"wrote {output}" + ("" if stage == "launch" or not validate else " (validated by LLaMA-Factory)"))


def _render_grpo(
    preset: str,
    sets: tuple[str, ...],
    layers: tuple[int, str] | None,
    dataset: str | None,
    output_dir: str | None,
    adapters: list[str],
    output: Path,
    validate: bool,
) -> None:
    """`lfkit render grpo`: render, validate with TRL's parser (relative paths from the current
    directory), write ``output`` (``-`` = stdout)."""
    from lfkit.io import atomic_write_text
    from lfkit.models.presets import read_preset
    from lfkit.recipes import RecipeError
    from lfkit.recipes.grpo import dump_grpo_config, render_grpo, validate_grpo_config

    read_preset(preset)  # unknown preset: fail before building an embedded model
    if not dataset:
        raise click.UsageError("grpo needs --dataset: the GRPO rows file (lfkit data grpo --out FILE)")
    if len(adapters) > 1:
        raise RecipeError(f"grpo starts from one SFT adapter (merge earlier ones first), got {adapters}")
    config = render_grpo(
        preset,
        _overrides(sets, layers),
        dataset=dataset,
        output_dir=output_dir,
        sft_adapter=adapters[0] if adapters else None,
    )
    if validate:
        validate_grpo_config(config, base_dir=Path.cwd())
    args = ["lfkit", "render", "grpo", "--preset", preset, "--dataset", dataset]
    args += ["--output-dir", output_dir] if output_dir else []
    args += [a for adapter in adapters for a in ("--adapter", adapter)]
    args += _set_args(sets, layers)
    header = "\n".join(
        [
            "Rendered by: " + " ".join(shlex.quote(a) for a in args),
            "Run: lfkit grpo train THIS.yaml   (or: trl grpo --config THIS.yaml"
            + (", after lfkit grpo merge)" if adapters else ")"),
        ]
    )
    text = dump_grpo_config(config, header)
    if str(output) == "-":
        click.echo(text, nl=False)
        return
    atomic_write_text(output, text)
    click.echo(f"wrote {output}" + (" (validated by TRL's GRPO parser)" if validate else ""))


@click.command()
@click.option(
    "--lf-dir",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Root of the LLaMA-Factory checkout (holds data/dataset_info.json).",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data"),
    show_default=True,
    help="lfkit dataset folder: its dataset_info.json names the datasets to copy.",
)
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (repeatable). Default: all.")
@click.option("--preset", "presets", multiple=True, help="Also write the recipe flow for this preset (repeatable).")
@click.option("--sft-dataset", help="Dataset the SFT recipes train on. Default: the one sft dataset installed.")
@click.option("--dpo-dataset", help="Dataset the DPO recipes train on. Default: the one preference dataset installed.")
@click.option("--rm-dataset", help="Dataset the reward-model recipe trains on. Default: the DPO recipes' dataset.")
@click.option("--no-recipes", is_flag=True, help="Copy datasets only.")
@click.option("--force", is_flag=True, help="Replace differing data files / dataset entries of the same name.")
def install(
    lf_dir: Path,
    data_dir: Path,
    datasets: tuple[str, ...],
    presets: tuple[str, ...],
    sft_dataset: str | None,
    dpo_dataset: str | None,
    rm_dataset: str | None,
    no_recipes: bool,
    force: bool,
) -> None:
    """Copy lfkit datasets and recipes into a LLaMA-Factory checkout.

    \b
    - data files go to LF_DIR/data/ and their entries are merged into
      LF_DIR/data/dataset_info.json with `lfkit register`'s validation (other entries
      are kept; the previous file is saved as dataset_info.json.<YYYYmmdd-HHMMSS>.bak);
    - the example recipes (the SFT -> DPO -> RM -> export flow, DeepSpeed configs,
      launch script) go to LF_DIR/examples/lfkit/, with paths that resolve from LF_DIR;
      they train on the datasets being installed: the one sft and the one preference
      dataset, or those named by --sft-dataset / --dpo-dataset / --rm-dataset;
    - nothing else is touched; existing files that differ are refused unless --force.

    \b
    Examples:
      lfkit install --lf-dir ~/LLaMA-Factory --data data
      lfkit install --lf-dir ~/LLaMA-Factory --data data --preset qwen2.5-coder-1.5b
      lfkit install --lf-dir ~/LLaMA-Factory --data data --sft-dataset my_sft --dpo-dataset my_dpo_r2
      cd ~/LLaMA-Factory && llamafactory-cli train examples/lfkit/qwen3-coder-30b-a3b/sft.yaml
    """
    from lfkit.recipes.install import install_into

    report = install_into(
        lf_dir,
        data_dir=data_dir,
        datasets=list(datasets) or None,
        presets=list(presets),
        recipes=not no_recipes,
        force=force,
        recipe_datasets={"sft": sft_dataset, "dpo": dpo_dataset, "rm": rm_dataset},
    )
    for path, action in report:
        click.echo(f"{action:<10} {path}")

"""`lfkit register`: add a validated dataset entry to a LLaMA-Factory dataset_info.json."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lfkit.registry.core import KINDS
from lfkit.registry.core import register as register_entry


@click.command()
@click.option(
    "--dataset-info",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The dataset_info.json to patch (created if absent); its folder is LLaMA-Factory's dataset_dir.",
)
@click.option("--name", required=True, help="Dataset name, as used in `dataset:` of a recipe.")
@click.option(
    "--file",
    "data_file",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Data file (.json or .jsonl); written relative to the dataset_info.json folder.",
)
@click.option(
    "--kind",
    required=True,
    type=click.Choice(list(KINDS)),
    help="; ".join(f"{k.name}: {k.description}" for k in KINDS.values()),
)
@click.option("--force", is_flag=True, help="Replace an existing entry of the same name that differs.")
@click.option("--check", is_flag=True, help="Validate the data file and the entry; write nothing.")
def register(dataset_info: Path, name: str, data_file: Path, kind: str, force: bool, check: bool) -> None:
    """Add a validated dataset entry to dataset_info.json.

    The data file is checked first, as LLaMA-Factory's loader will read it: instruction
    and input are strings, possibly empty (or null / absent in some rows); every answer
    (output, chosen, rejected) is a non-empty string; preference rows have chosen !=
    rejected; CoT outputs hold <think>...</think> reasoning; columns keep one type. The entry's
    column mapping comes from lfkit's one definition per kind, so the wrong-key mapping
    that makes LLaMA-Factory stop with "Cannot find valid samples" cannot be written.

    Other entries and their order are kept; the previous file is saved as
    dataset_info.json.<YYYYmmdd-HHMMSS>.bak (earlier backups are kept) and the new one
    written atomically.

    \b
    Examples:
      lfkit register --dataset-info data/dataset_info.json --name text2sql_sft \\
                     --file data/sft.json --kind sft
      lfkit register --dataset-info data/dataset_info.json --name text2sql_dpo \\
                     --file data/dpo.jsonl --kind preference
      lfkit register --dataset-info data/dataset_info.json --name text2sql_sft \\
                     --file data/sft.json --kind sft --check
    """
    result = register_entry(dataset_info, name, data_file, kind, force=force, check=check)
    entry = json.dumps(result.entry)
    messages = {
        "added": f"added '{name}' ({result.rows} rows) to {dataset_info}",
        "replaced": f"replaced '{name}' ({result.rows} rows) in {dataset_info}; previous entry was "
        f"{json.dumps(result.previous)}",
        "unchanged": f"'{name}' is already registered in {dataset_info} with this entry ({result.rows} rows)",
        "checked": f"ok: {data_file} ({result.rows} rows) is valid as '{kind}'; entry would be",
    }
    click.echo(messages[result.action])
    click.echo(f"  {entry}")
    if result.backup is not None:
        click.echo(f"  previous file saved as {result.backup}")

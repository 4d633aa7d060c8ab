"""The ``lfkit`` command line.

Each subcommand lives next to the library code it drives (``lfkit/<module>/commands.py``)
and is imported only when invoked, so ``lfkit eval``/``data``/``register``/``render``
start fast and never import torch.

Errors: a :class:`lfkit.errors.LfkitError` escaping any command is a diagnosed problem and
is printed as one ``Error: <message>`` on stderr with exit status 1 (click's own format for
its usage errors); ``LFKIT_DEBUG=1`` shows its traceback instead. Anything else is a bug and
surfaces with its traceback.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import click

from lfkit.errors import LfkitError

# name -> ("module:attribute", one-line help shown by ``lfkit --help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("lfkit.data.commands:data", "Build BIRD-style corpora and SFT datasets (incl. the Lahman demo)."),
    "register": ("lfkit.registry.commands:register", "Add a validated dataset entry to dataset_info.json."),
    "render": ("lfkit.recipes.commands:render", "Render LLaMA-Factory YAML recipes from templates and presets."),
    "install": ("lfkit.recipes.commands:install", "Copy lfkit datasets and recipes into a LLaMA-Factory checkout."),
    "models": ("lfkit.models.commands:models", "Prepare and list the embedded models (no hub access)."),
    "prefs": ("lfkit.prefs.commands:prefs", "Sample candidates and build execution-verified preference data."),
    "eval": ("lfkit.eval.commands:eval_group", "Score predictions like BIRD (EX by difficulty)."),
    "grpo": ("lfkit.grpo.commands:grpo", "GRPO on TRL with execution + process rewards: train, eval, merge."),
    "tree": ("lfkit.tree.commands:tree", "Revision trees (ReSQLver): build, pairs, merge shards, verify."),
    "rm": ("lfkit.reward.commands:rm", "Evaluate reward models on pairs and score best-of-N candidates."),
    "demo": ("lfkit.pipeline.commands:demo", "Run the whole SFT -> DPO loop on the embedded model and database."),
    "iterate": (
        "lfkit.pipeline.commands:iterate",
        "Iterative DPO: sample, label, DPO from the previous round, evaluate.",
    ),
    "train": ("lfkit.pipeline.commands:train", "Run LLaMA-Factory on a recipe (train, or export), offline."),
}


def debug() -> bool:
    """``LFKIT_DEBUG=1``: show tracebacks of diagnosed errors too."""
    return os.environ.get("LFKIT_DEBUG", "") == "1"


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        target, _ = COMMANDS[name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.split(".")[0] == "lfkit":
                raise  # a broken lfkit import is a bug: show it as itself
            # an optional third-party package (the training extra) is missing
            raise click.ClickException(
                f"`lfkit {name}` needs the Python package '{exc.name}'. "
                "Install the training extra: pip install 'lfkit[train]'"
            ) from exc
        return getattr(module, attr)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LfkitError as exc:
            if debug():
                raise
            raise click.ClickException(str(exc)) from exc
        except click.ClickException as exc:
            # a command that wraps a LfkitError itself: with LFKIT_DEBUG, show the original's traceback
            if debug() and isinstance(exc.__cause__, LfkitError):
                raise exc.__cause__ from None
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from COMMANDS so that `lfkit --help` imports nothing heavy.
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lfkit")
def main() -> None:
    """lfkit: Text-to-SQL post-training with LLaMA-Factory.

    \b
    Typical flow:
      lfkit data demo --out corpus/                      # Lahman demo corpus, BIRD layout
      lfkit data sft --bird-dir corpus --split train --out data/sft.json
      lfkit register --dataset-info data/dataset_info.json --name text2sql_sft \\
                     --file data/sft.json --kind sft
      lfkit render sft --preset tiny --dataset text2sql_sft --dataset-dir data -o sft.yaml
      llamafactory-cli train sft.yaml
      lfkit prefs rejects ...                            # execution-verified DPO pairs
      lfkit eval score --predictions P --gold dev.json --db-root corpus/dev_databases
    """


if __name__ == "__main__":
    main()

"""`lfkit demo`, `lfkit iterate`, `lfkit train`.

The options of ``lfkit demo`` and ``lfkit iterate`` are generated from the settings' dataclass fields
(``lfkit.pipeline.config``: LLaMA-Factory's ``HfArgumentParser`` idea, in click): one option per field,
its help from the field's help, its choices from the field's, its default shown from the field (and
the profiles). An option left out is ``None`` and the field's (or the profile's) default applies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from lfkit.pipeline.config import PROFILES, DemoConfig, cli_fields, given
from lfkit.pipeline.full import FULL_PROFILES, FullConfig
from lfkit.pipeline.iterate import IterateConfig

OPTION_NAMES = {"from_path": "--from"}  # a field whose option is not --<field-name>


def _click_type(f: dataclasses.Field) -> Any:
    if f.metadata.get("choices"):
        return click.Choice(list(f.metadata["choices"]))
    text = str(f.type)
    if "Path" in text:
        return click.Path(file_okay=False, path_type=Path)
    for name, kind in (("float", float), ("int", int)):
        if name in text:
            return kind
    return str


def _default_text(f: dataclasses.Field, profiles: dict[str, dict[str, Any]]) -> str:
    parts = [] if f.default is None else [str(f.default)]
    parts += [f"{model}: {values[f.name]}" for model, values in profiles.items() if f.name in values]
    return f" [default: {'; '.join(parts)}]" if parts else ""


def options_from(
    *classes: type, skip: tuple[str, ...] = (), profiles: dict[str, dict[str, Any]] | None = None
) -> Callable[[Callable], Callable]:
    """Click options for the CLI fields of ``classes`` (the first declaration of a name wins), in order."""
    seen: dict[str, dataclasses.Field] = {}
    for cls in classes:
        for f in cli_fields(cls):
            if f.name not in skip:
                seen.setdefault(f.name, f)

    def decorate(fn: Callable) -> Callable:
        for f in reversed(list(seen.values())):
            name = OPTION_NAMES.get(f.name, "--" + f.name.replace("_", "-"))
            help_text = f.metadata["help"]
            if "bool" in str(f.type):
                fn = click.option(name, f.name, is_flag=True, default=None, help=help_text)(fn)
            else:
                help_text += _default_text(f, profiles or {})
                fn = click.option(name, f.name, type=_click_type(f), default=None, help=help_text)(fn)
        return fn

    return decorate


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@click.command("demo")
@click.option(
    "--model",
    type=click.Choice(list(PROFILES)),
    default="smollm2-135m",
    show_default=True,
    help="Embedded model: smollm2-135m (the real demo) or tiny (a random model; a fast smoke run).",
)
@click.option("--quick", is_flag=True, help="Same as --model tiny.")
@click.option(
    "--full",
    is_flag=True,
    help="Every loop: SFT, DPO rounds, revision trees, reward model, best-of-N, GRPO (default --out demo_full_out).",
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Output folder [default: demo_out]."
)
@options_from(
    DemoConfig,
    FullConfig,
    skip=("model",),
    profiles={
        "tiny": PROFILES["tiny"],
        "--full": FULL_PROFILES["smollm2-135m"],
        "--full --quick": FULL_PROFILES["tiny"],
    },
)
def demo(model: str, quick: bool, full: bool, out: Path | None, **options: Any) -> None:
    """Post-train a real model on a real database, SFT then DPO, and report EX per stage.

    \b
    Stages (each cached under OUT/stages/; re-run to resume, --force to redo):
      1. build the Lahman demo corpus (BIRD layout), SFT rows, dataset_info.json
      2. evaluate the base model on dev (execution accuracy by difficulty)
      3. SFT with llamafactory-cli (rendered recipe in OUT/recipes/), evaluate
      4. sample candidates with the SFT model, keep execution-verified rejects
      5. DPO from the SFT adapter with llamafactory-cli, evaluate
      6. OUT/report.md, OUT/report.json, OUT/report/ (BIRD predict_dev files, plots)

    \b
    A finished or interrupted OUT is resumed only with the same settings; other
    settings need --force or another --out.

    \b
    --full runs every loop of lfkit after the SFT (OUT default demo_full_out):
      DPO rounds from the SFT adapter (lfkit iterate), revision trees of the best policy on
      train questions (lfkit tree), a reward model on tree + reject pairs (llamafactory-cli),
      rm eval on held-out dev pairs, best-of-N on dev (greedy / vote / RM / oracle), GRPO
      from the best policy (lfkit grpo train), each evaluated; one report. The SFT uses the
      demo profile; the options of the rounds, trees, RM, best-of-N and GRPO apply.

    \b
    Examples:
      lfkit demo                       # smollm2-135m, about 20 minutes on 2 CPU cores
      lfkit demo --quick --out /tmp/d  # tiny random model, a smoke run of a few minutes
      lfkit demo --dpo-lr 1e-4 --out demo_lr1e-4   # the same run with a gentler DPO
      lfkit demo --full                # every loop on smollm2-135m (39.3 minutes measured on 2 CPU cores)
      lfkit demo --full --quick        # the same on the tiny model, a few minutes
    """
    from lfkit.pipeline.config import demo_config
    from lfkit.train import pin_demo_environment

    pin_demo_environment()  # the embedded CPU demo pins CPU + offline here, where it starts (issue 26)
    if quick:
        model = "tiny"
    values = given(options)
    if full:
        from lfkit.pipeline.full import full_config, run_full

        refused = sorted(set(values) - _names(FullConfig))
        if refused:
            names = ", ".join("--" + n.replace("_", "-") for n in refused)
            raise click.UsageError(f"--full does not take {names} (the SFT uses the demo profile)")
        run_full(full_config(model, out=out or Path("demo_full_out"), **values))
        return
    refused = sorted(set(values) - _names(DemoConfig))
    if refused:
        raise click.UsageError(f"{', '.join('--' + n.replace('_', '-') for n in refused)} need(s) --full")
    from lfkit.pipeline.demo import run_demo

    # ConfigError, StageFailed and every other LfkitError become one line on stderr in lfkit.cli
    run_demo(demo_config(model, out=out or Path("demo_out"), **values))


@click.command("iterate")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("iterate_out"), show_default=True)
@options_from(IterateConfig)
def iterate(out: Path, **options: Any) -> None:
    """Iterative DPO: round k samples with round k-1, trains DPO with round k-1 as start AND reference.

    \b
    Round 0 is the start model (--from, or the demo SFT). Round k:
      1. merge round k-1 into a plain model (llamafactory-cli export) -> OUT/models/round<k-1>
      2. sample --num-candidates answers for --questions-per-round fresh train questions with it,
         label them by execution, pair them (lfkit prefs rejects), register the pairs
      3. DPO: a new LoRA adapter on the merged model (reference = the same model = round k-1)
      4. greedy dev predictions -> OUT/report/round<k>/predict_dev.json, EX by difficulty
    OUT/report.md, report.json, ex_by_round.png; recipes of every round in OUT/recipes/round<k>/.
    Each stage is cached: re-run the same command to resume (other settings are refused).
    A round with no pair is recorded as empty and the loop stops.

    \b
    Examples:
      lfkit iterate --rounds 3                                  # SmolLM2 + Lahman demo, CPU
      lfkit iterate --from saves/sft --rounds 2 --stop-when-worse
      lfkit iterate --dry-run --preset qwen3-coder-30b-a3b --rounds 3 \\
          --from saves/qwen3-coder-30b-a3b/lora/sft --corpus ~/bird --backend vllm
    """
    from lfkit.pipeline.iterate import run_iterate

    run_iterate(IterateConfig(out=out, **given(options)))  # IterateError (an LfkitError) -> one line on stderr


@click.command("train")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--log", type=click.Path(dir_okay=False, path_type=Path), help="Log file [default: RECIPE with .log].")
def train(recipe: Path, log: Path | None) -> None:
    """Run LLaMA-Factory on RECIPE (train, or export when it has export_dir), with a progress bar.

    \b
    The one LLaMA-Factory runner of lfkit (lfkit.train.run_llamafactory), the one the pipelines call;
    the Makefile's sft / dpo / rm targets call it. Your environment reaches LLaMA-Factory as you set it
    (CUDA_VISIBLE_DEVICES, HF_HOME, HF_HUB_OFFLINE; offline by default for a local model folder); the
    trainer dies with lfkit and the output folder is locked while it runs. Prints the steps and the first
    and last loss.
    """
    from lfkit.train import run_llamafactory

    result = run_llamafactory(recipe, log or recipe.with_suffix(".log"))
    losses = result.losses
    loss = f", loss {losses[0][1]} -> {losses[-1][1]}" if losses else ""
    click.echo(f"{result.command}: {result.steps} steps{loss} in {result.seconds:.0f}s -> {result.output_dir}")

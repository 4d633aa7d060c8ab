"""The rendered example recipes: ``recipes/`` in the repository and ``examples/lfkit/`` in a
LLaMA-Factory checkout (``lfkit install``) are the same files, made by :func:`render_examples`.

The flow: SFT -> DPO from the SFT model -> iterative DPO rounds, a reward model on the same
preference pairs, and an export that merges the adapters. Paths inside resolve
from a LLaMA-Factory checkout root: datasets in ``data/``, DeepSpeed configs in
``examples/lfkit/deepspeed/``, checkpoints in ``saves/``.
"""

from __future__ import annotations

import filecmp
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfkit.io import atomic_path, atomic_write_text
from lfkit.models.presets import Preset, load_preset
from lfkit.recipes.render import DEEPSPEED_FILES, STAGES, render_launch_script, render_recipe, write_recipe
from lfkit.recipes.validate import RecipeError
from lfkit.resources import REPO_ROOT, resource_dir

# Presets whose flow is checked in under recipes/ (the Qwen3-Coder-30B-A3B LoRA flow).
EXAMPLE_PRESETS: tuple[str, ...] = ("qwen3-coder-30b-a3b",)
# Where `lfkit install` puts the examples inside a LLaMA-Factory checkout; recipes refer to it.
INSTALL_PREFIX = "examples/lfkit"
README = "README.md"  # hand-written, kept by --sync
# The dataset names the checked-in recipes use: lfkit's standard names (dataset_info/dataset_info.json).
DEFAULT_DATASETS: dict[str, str] = {"sft": "text2sql_sft", "dpo": "text2sql_dpo", "rm": "text2sql_dpo"}


@dataclass(frozen=True)
class ExampleRecipe:
    path: str = field(metadata={"help": "Path under the examples folder."})
    stage: str = field(metadata={"help": "lfkit render stage."})
    about: str = field(metadata={"help": "Header comment: what the recipe does in the flow."})
    kwargs: dict[str, Any] = field(default_factory=dict, metadata={"help": "render_recipe keyword arguments."})

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"example {self.path}: unknown stage {self.stage}")


def flow_examples(preset: str, datasets: dict[str, str] | None = None) -> list[ExampleRecipe]:
    """SFT, DPO (round 1 and the round-k template), RM and export recipes for ``preset``.

    ``datasets`` maps a stage (``sft``, ``dpo``, ``rm``) to the dataset name its recipe
    trains on; a stage left out keeps :data:`DEFAULT_DATASETS`.
    """
    names = {**DEFAULT_DATASETS, **(datasets or {})}
    unknown = set(names) - set(DEFAULT_DATASETS)
    if unknown:
        raise RecipeError(f"datasets for unknown stage(s) {sorted(unknown)}; stages: {', '.join(DEFAULT_DATASETS)}")
    p = Preset(**load_preset(preset, resolve=False))
    saves = f"saves/{preset}/{p.finetuning_type}"
    sft, dpo, dpo_r2 = f"{saves}/sft", f"{saves}/dpo", f"{saves}/dpo_r2"
    # Under ZeRO-3 DPO keeps training the SFT adapter (it cannot be merged), so each round's
    # adapter already holds SFT + earlier rounds; otherwise each round adds an adapter on top.
    single_chain = p.deepspeed_stage == 3
    after_round1 = [dpo] if single_chain else [sft, dpo]
    merged = f"output/{preset}-text2sql"  # export.yaml's export_dir: round 1 as a plain model
    return [
        ExampleRecipe(
            f"{preset}/sft.yaml",
            "sft",
            "Step 1: supervised fine-tuning (LoRA) on the text-to-SQL SFT rows (lfkit data sft).",
            {"dataset": names["sft"], "output_dir": sft},
        ),
        ExampleRecipe(
            f"{preset}/dpo.yaml",
            "dpo",
            "Step 2: DPO round 1 on execution-verified pairs (lfkit prefs rejects, sampled from the SFT model).\n"
            "It starts from the SFT adapter and its reference model is the SFT model, not the raw base.",
            {"dataset": names["dpo"], "adapter_name_or_path": sft, "output_dir": dpo},
        ),
        ExampleRecipe(
            f"{preset}/dpo_round.yaml",
            "dpo_round",
            "Iterative DPO, round k (here k=2; `lfkit iterate` runs the whole loop, `--dry-run` prints it).\n"
            "Round k reads round k-1 as a MERGED model: export.yaml (llamafactory-cli export) merges round k-1's\n"
            f"adapters into {merged},\n"
            "and this recipe trains a NEW LoRA adapter on that folder: the policy starts at round k-1 and the\n"
            "reference (the same model, adapter disabled) IS round k-1. Never resume\n"
            "round k-1's adapter with the raw base as reference (LLaMA-Factory #8974/#8459).\n"
            "Sample round k's pairs from the merged model first (lfkit prefs rejects --base-model <merged>\n"
            "--chosen on-policy), register them (e.g. text2sql_dpo_r2) and set `dataset`; for round k+1\n"
            "merge this model_name_or_path + output_dir the same way.",
            {"dataset": names["dpo"], "overrides": {"model_name_or_path": merged}, "output_dir": dpo_r2},
        ),
        ExampleRecipe(
            f"{preset}/rm.yaml",
            "rm",
            "Reward model: a value head trained on the same chosen/rejected pairs (the ReSQLver reward model).",
            {"dataset": names["rm"], "output_dir": f"{saves}/rm"},
        ),
        ExampleRecipe(
            f"{preset}/export.yaml",
            "export",
            "Merge SFT + DPO into a plain model folder (`llamafactory-cli export`): serve it, sample from it,\n"
            "or start the next round from it.",
            {"adapter_name_or_path": after_round1, "output_dir": merged},
        ),
    ]


def _header(example: ExampleRecipe, preset: str, prefix: str) -> str:
    command = STAGES[example.stage].command
    run = f"llamafactory-cli {command} {prefix}/{example.path}"
    p = Preset(**load_preset(preset, resolve=False))
    lines = [
        f"{example.about}",
        "",
        f"Rendered by lfkit from templates/{STAGES[example.stage].template} with preset '{preset}'.",
        "Do not edit: change the template or preset and run `lfkit render --sync`.",
        "Paths resolve from the LLaMA-Factory checkout root (`lfkit install --lf-dir` puts this file there).",
        f"Run:  {run}",
    ]
    if p.nproc_per_node > 1 and command == "train":
        lines.append(f"      or  bash {prefix}/{preset}/launch.sh {prefix}/{example.path}   (multi-GPU / multi-node)")
    return "\n".join(lines)


def render_examples(
    out_dir: str | Path,
    presets: tuple[str, ...] | list[str] = EXAMPLE_PRESETS,
    *,
    prefix: str = INSTALL_PREFIX,
    base_dir: str | Path | None = None,
    datasets: dict[str, str] | None = None,
) -> list[Path]:
    """Write the example recipes of ``presets`` (plus DeepSpeed configs and launch scripts) into
    ``out_dir``; every recipe is validated by LLaMA-Factory's parser first. Returns the files.

    ``datasets``: stage -> dataset name, as in :func:`flow_examples`."""
    out = Path(out_dir)
    written: list[Path] = []
    ds_src = resource_dir("templates") / "deepspeed"
    for name in sorted(set(DEEPSPEED_FILES.values())):
        target = out / "deepspeed" / name
        atomic_write_text(target, (ds_src / name).read_text(encoding="utf-8"))
        written.append(target)
    for preset in presets:
        p = Preset(**load_preset(preset, resolve=False))
        if p.embedded:
            raise RecipeError(f"preset {preset} is an embedded model: its recipes point into this machine's cache")
        for example in flow_examples(preset, datasets):
            config = render_recipe(example.stage, p, deepspeed_dir=f"{prefix}/deepspeed", **example.kwargs)
            path = write_recipe(config, out / example.path, base_dir=base_dir, header=_header(example, preset, prefix))
            written.append(path)
        script = out / preset / "launch.sh"
        atomic_write_text(script, render_launch_script(p, script_name=f"{prefix}/{preset}/launch.sh"))
        script.chmod(0o755)
        written.append(script)
    return written


def _managed(name: str) -> bool:
    return name != README and not name.startswith(".")


def recipes_dir() -> Path:
    try:
        return resource_dir("recipes")
    except FileNotFoundError:
        return REPO_ROOT / "recipes"


def sync_recipes(check: bool = False, target: str | Path | None = None) -> list[str]:
    """Re-render ``recipes/``; return the relative paths that differ (added, changed or stale).

    With ``check`` nothing is written (the drift test and CI use this).
    """
    target = Path(target) if target is not None else recipes_dir()
    with tempfile.TemporaryDirectory(prefix="lfkit-recipes-") as tmp:
        fresh = Path(tmp)
        render_examples(fresh)
        from lfkit.recipes.grpo import render_grpo_examples  # TRL configs for GRPO (LLaMA-Factory has none)

        render_grpo_examples(fresh)
        new = {p.relative_to(fresh).as_posix() for p in fresh.rglob("*") if p.is_file()}
        old = set()
        if target.is_dir():  # hand-written files (README.md, .keep) are not ours to sync
            old = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file() and _managed(p.name)}
        changed = sorted(
            rel for rel in new | old if rel not in new or rel not in old or not filecmp.cmp(fresh / rel, target / rel)
        )
        if check or not changed:
            return changed
        for rel in changed:
            dest = target / rel
            if rel not in new:
                dest.unlink()
                continue
            with atomic_path(dest) as tmp_file:
                shutil.copy2(fresh / rel, tmp_file)
    return changed

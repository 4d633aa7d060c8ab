"""Run a LLaMA-Factory recipe with ``llamafactory-cli`` and read back what it wrote.

:func:`run_llamafactory` is the one place lfkit starts LLaMA-Factory: offline environment,
the whole output in a log file, a progress bar fed by LF's ``trainer_log.jsonl``, and a
:class:`TrainResult` read from LF's own ``trainer_state.json`` / ``train_results.json``
(never parsed from the log). A failed run raises :class:`TrainError` naming the recipe and
the log, with the log's last lines.

:func:`merge_adapter` is the one function that writes a LoRA-merged model folder (see
docs/DESIGN.md, "One merge path").
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lfkit.errors import LfkitError
from lfkit.io import iter_jsonl
from lfkit.recipes.validate import recipe_command

LOG_TAIL_LINES = 25


class TrainError(LfkitError):
    """``llamafactory-cli`` is missing, failed, or wrote none of the files it should have."""


@dataclass
class TrainResult:
    """What one ``llamafactory-cli`` run produced, read from LF's own files."""

    recipe: Path = field(metadata={"help": "The recipe that ran."})
    command: str = field(metadata={"help": "llamafactory-cli subcommand: train or export."})
    output_dir: Path = field(metadata={"help": "The recipe's output_dir (export_dir for export)."})
    log_path: Path = field(metadata={"help": "stdout + stderr of llamafactory-cli."})
    seconds: float = field(metadata={"help": "Wall time of the run."})
    log_history: list[dict[str, Any]] = field(
        default_factory=list, metadata={"help": "trainer_state.json's log_history (empty for export)."}
    )
    metrics: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "train_results.json (train_loss, train_runtime, ...)."}
    )
    steps: int = field(default=0, metadata={"help": "Optimizer steps done (trainer_state.json's global_step)."})

    @property
    def losses(self) -> list[tuple[int, float]]:
        """``(step, loss)`` for each logged training step (LF's final summary record has no loss)."""
        return [(r["step"], r["loss"]) for r in self.log_history if r.get("loss") is not None]

    @property
    def mean_loss(self) -> float | None:
        """The mean training loss over the run (``train_results.json``'s ``train_loss``)."""
        return self.metrics.get("train_loss")

    @property
    def reward_accuracy(self) -> float | None:
        """DPO only: ``rewards/accuracies`` of the last logged step (how often chosen outscores rejected)."""
        logged = [r for r in self.log_history if r.get("loss") is not None]
        return logged[-1].get("rewards/accuracies") if logged else None


def llamafactory_env() -> dict[str, str]:
    """The environment ``llamafactory-cli`` runs in: this one, offline, no telemetry.

    CUDA is hidden unless ``LFKIT_DEMO_CUDA`` names the devices: lfkit's runs are specified for the CPU.
    """
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        DISABLE_VERSION_CHECK="1",
        WANDB_DISABLED="true",
        TOKENIZERS_PARALLELISM="false",
        CUDA_VISIBLE_DEVICES=env.get("LFKIT_DEMO_CUDA", ""),
    )
    return env


def llamafactory_cli() -> str:
    """The ``llamafactory-cli`` next to this Python, else the one on ``PATH``."""
    candidate = Path(sys.executable).with_name("llamafactory-cli")
    found = str(candidate) if candidate.exists() else shutil.which("llamafactory-cli")
    if not found:
        raise TrainError("llamafactory-cli not found: install the training extra (make install)")
    return found


def _log_tail(log_path: Path) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])


def _wait(proc: subprocess.Popen, trainer_log: Path, title: str, progress: bool) -> None:
    """Wait for ``proc``; with ``progress``, show a bar fed by LF's trainer_log.jsonl."""
    if not progress:
        proc.wait()
        return
    from lfkit.progress import progress_bar

    with progress_bar(title) as bar:
        bar.update()
        while proc.poll() is None:
            time.sleep(2)
            records = list(iter_jsonl(trainer_log))
            if records:
                last = records[-1]
                loss = f"loss {last['loss']:.4f}" if last.get("loss") is not None else ""
                bar.update(total=last.get("total_steps"), completed=last.get("current_steps"), note=loss)


def run_llamafactory(
    recipe: str | Path,
    log_path: str | Path,
    *,
    title: str | None = None,
    progress: bool = True,
    cwd: str | Path | None = None,
) -> TrainResult:
    """Run ``llamafactory-cli train|export RECIPE`` (export when the recipe has ``export_dir``).

    stdout and stderr go to ``log_path``. A relative ``output_dir`` in the recipe is read
    against ``cwd`` (the directory LF runs in; default: the current one). Raises
    :class:`TrainError` when the command is missing, exits non-zero, or a training run
    leaves no ``trainer_state.json``. Ctrl-C stops LLaMA-Factory, then propagates.
    """
    recipe, log_path = Path(recipe), Path(log_path)
    config = yaml.safe_load(recipe.read_text())
    command = recipe_command(config)
    run_dir = Path(cwd) if cwd is not None else Path.cwd()
    output_dir = run_dir / str(config["export_dir" if command == "export" else "output_dir"])
    title = title or recipe.stem
    log_path.parent.mkdir(parents=True, exist_ok=True)
    trainer_log = output_dir / "trainer_log.jsonl"
    trainer_log.unlink(missing_ok=True)  # a previous run's records would feed the bar and the results
    start = time.perf_counter()
    with log_path.open("w") as fh:
        proc = subprocess.Popen(
            [llamafactory_cli(), command, str(recipe)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=llamafactory_env(),
            cwd=cwd,
        )
        try:
            _wait(proc, trainer_log, f"{title} (llamafactory-cli {command})", progress)
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
    seconds = round(time.perf_counter() - start, 1)
    if proc.returncode != 0:
        raise TrainError(
            f"{title}: llamafactory-cli {command} {recipe} failed (exit {proc.returncode}); "
            f"log: {log_path}\n{_log_tail(log_path)}"
        )
    result = TrainResult(recipe=recipe, command=command, output_dir=output_dir, log_path=log_path, seconds=seconds)
    if command == "train":
        state_file = output_dir / "trainer_state.json"
        if not state_file.exists():
            raise TrainError(
                f"{title}: llamafactory-cli train {recipe} finished but wrote no {state_file}; "
                f"log: {log_path}\n{_log_tail(log_path)}"
            )
        state = json.loads(state_file.read_text())
        result.log_history = state.get("log_history", [])
        result.steps = state.get("global_step", 0)
        results_file = output_dir / "train_results.json"
        result.metrics = json.loads(results_file.read_text()) if results_file.exists() else {}
    return result


# -- merging LoRA adapters into a plain model ----------------------------------------------------
MERGE_MARKER = "lfkit_merge.json"


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def adapter_weights(adapter: str | os.PathLike[str]) -> Path:
    """The weights file of a PEFT LoRA folder; :class:`TrainError` when it has none."""
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        if (Path(adapter) / name).is_file():
            return Path(adapter) / name
    raise TrainError(f"{adapter}: no adapter_model.safetensors there (a PEFT LoRA folder?)")


def _adapter_list(adapters: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    return [Path(adapters)] if isinstance(adapters, str | os.PathLike) else [Path(a) for a in adapters]


def merge_marker(
    base_model: str | os.PathLike[str], adapters: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
) -> dict[str, Any]:
    """What :func:`merge_adapter` records in ``lfkit_merge.json``: the base folder and each adapter
    with its weights' SHA-256, so a caller can tell an up-to-date merge from a stale one."""
    from lfkit.models.embedded import resolve_model

    return {
        "base_model": str(resolve_model(base_model)),
        "adapters": [
            {"path": str(a.resolve()), "sha256": file_digest(adapter_weights(a))} for a in _adapter_list(adapters)
        ],
    }


def merge_adapter(
    base_model: str | os.PathLike[str],
    adapters: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
) -> Path:
    """The one function that writes a merged model: the LoRA ``adapters`` (one, or a stack merged in
    order) folded into ``base_model`` with peft ``merge_and_unload`` in float32, model + tokenizer
    saved to ``out``.

    Written atomically (a finished folder is renamed into place). The base's ``lfkit_model.json``
    (embedded models: names the chat template) is copied along, and ``lfkit_merge.json``
    (:func:`merge_marker`) records what was merged. Float32 because rounding the LoRA delta
    into bf16 weights loses most of it (``llamafactory-cli export`` casts to bf16 by default).
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lfkit.generate.prompts import offline_if_local
    from lfkit.models.embedded import MARKER as EMBEDDED_MARKER
    from lfkit.models.embedded import resolve_model

    base = resolve_model(base_model)
    offline_if_local(base)
    marker = merge_marker(base, adapters)  # also checks every adapter folder before the model loads
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    for adapter in _adapter_list(adapters):
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp)
    if (Path(base) / EMBEDDED_MARKER).is_file():
        shutil.copy2(Path(base) / EMBEDDED_MARKER, tmp / EMBEDDED_MARKER)
    (tmp / MERGE_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


__all__ = [
    "MERGE_MARKER",
    "TrainError",
    "TrainResult",
    "adapter_weights",
    "file_digest",
    "llamafactory_cli",
    "llamafactory_env",
    "merge_adapter",
    "merge_marker",
    "run_llamafactory",
]

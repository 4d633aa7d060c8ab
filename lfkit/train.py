"""Run a LLaMA-Factory recipe with ``llamafactory-cli`` and read back what it wrote.

:func:`run_llamafactory` is the one place lfkit starts LLaMA-Factory: offline environment,
the whole output in a log file, a progress bar fed by LF's ``trainer_log.jsonl``, and a
:class:`TrainResult` read from LF's own ``trainer_state.json`` / ``train_results.json``
(never parsed from the log). A failed run raises :class:`TrainError` naming the recipe and
the log, with the log's last lines.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
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


__all__ = ["TrainError", "TrainResult", "llamafactory_cli", "llamafactory_env", "run_llamafactory"]

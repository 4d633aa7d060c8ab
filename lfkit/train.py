"""Run a LLaMA-Factory recipe with ``llamafactory-cli`` and read back what it wrote.

:func:`run_llamafactory` is the one place lfkit starts LLaMA-Factory: the user's environment
(devices, hub, cache as set; :func:`llamafactory_env`), under a guard that dies with lfkit and a
lock on the output folder (:mod:`lfkit.children`), the whole output in a log file, a progress
bar fed by LF's ``trainer_log.jsonl``, and a :class:`TrainResult` read from LF's own
``trainer_state.json`` / ``train_results.json`` (never parsed from the log). A failed run
raises :class:`TrainError` naming the recipe and the log, with the log's last lines.

:func:`merge_adapter` is the one function that writes a LoRA-merged model folder (see
docs/DESIGN.md, "One merge path").
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lfkit.children import folder_lock, start_guarded
from lfkit.errors import LfkitError
from lfkit.io import iter_jsonl
from lfkit.jobs import file_sha256
from lfkit.models.embedded import check_hub_model, offline_default
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


TRAINER_STATE = "trainer_state.json"  # the HF Trainer's: log_history (loss, DPO rewards/* per step), global_step


def read_trainer_state(output_dir: Path) -> dict[str, Any] | None:
    """A train run's ``trainer_state.json`` (what :class:`TrainResult` is read from); None where it wrote none."""
    state_file = Path(output_dir) / TRAINER_STATE
    return json.loads(state_file.read_text()) if state_file.is_file() else None


# Shown by `lfkit iterate --dry-run` and in a failed run's message: what decides devices, hub and cache.
REPORTED_ENV = ("CUDA_VISIBLE_DEVICES", "HF_HUB_OFFLINE", "HF_HOME", "HF_HUB_CACHE", "FORCE_TORCHRUN", "NNODES")


def llamafactory_env(model: str | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment ``llamafactory-cli`` runs in: the user's (``base``, default ``os.environ``).

    Devices (``CUDA_VISIBLE_DEVICES``), hub and cache settings (``HF_HUB_OFFLINE``, ``HF_HOME``)
    pass through as the user set them. Added: no version check (lfkit pins the versions it
    supports), and unless the user said otherwise no telemetry and, when ``model`` is a local
    folder or an embedded model (it never needs the hub), ``HF_HUB_OFFLINE=1``. Only the CPU
    demo hides GPUs (:func:`pin_demo_environment`).

    >>> env = llamafactory_env("Qwen/Qwen3-Coder-30B-A3B-Instruct", {"CUDA_VISIBLE_DEVICES": "0,1"})
    >>> env["CUDA_VISIBLE_DEVICES"], "HF_HUB_OFFLINE" in env
    ('0,1', False)
    """
    env = dict(os.environ if base is None else base)
    env["DISABLE_VERSION_CHECK"] = "1"
    env.setdefault("WANDB_DISABLED", "true")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if model is not None:
        offline_default(model, env)
    return env


def llamafactory_command(recipe: str | Path) -> tuple[list[str], dict[str, str]]:
    """The command line and environment :func:`run_llamafactory` starts for ``recipe``."""
    recipe = Path(recipe)
    config = yaml.safe_load(recipe.read_text())
    cli = llamafactory_cli()
    env = llamafactory_env(config.get("model_name_or_path"))
    # LLaMA-Factory's launcher runs `torchrun` by name (FORCE_TORCHRUN, NNODES): the one installed
    # beside this llamafactory-cli, also when its virtualenv is not activated
    env["PATH"] = os.pathsep.join(p for p in (str(Path(cli).parent), env.get("PATH", "")) if p)
    return [cli, recipe_command(config), str(recipe)], env


def describe_env(env: Mapping[str, str]) -> str:
    """``KEY=value`` for each of :data:`REPORTED_ENV` that is set, ``KEY unset`` for the others.

    >>> describe_env({"CUDA_VISIBLE_DEVICES": "0,1"})
    'CUDA_VISIBLE_DEVICES=0,1 HF_HUB_OFFLINE unset HF_HOME unset HF_HUB_CACHE unset FORCE_TORCHRUN unset NNODES unset'
    """
    return " ".join(f"{k}={shlex.quote(env[k])}" if k in env else f"{k} unset" for k in REPORTED_ENV)


def pin_demo_environment() -> None:
    """The embedded CPU demo's pins, set in this process (so its children and TRL see them).

    GPUs hidden unless ``LFKIT_DEMO_CUDA`` names devices (its timings and figures are the
    CPU's), the hub offline (its models are embedded). Called where the demo starts.
    """
    os.environ["CUDA_VISIBLE_DEVICES"] = os.environ.get("LFKIT_DEMO_CUDA", "")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


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
    leaves no ``trainer_state.json``; :class:`~lfkit.children.FolderInUseError` when another
    live run trains into the same folder. Ctrl-C stops LLaMA-Factory, then propagates; so does
    the death of this process, however it dies (:func:`lfkit.children.start_guarded`).
    """
    recipe, log_path = Path(recipe), Path(log_path)
    config = yaml.safe_load(recipe.read_text())
    command = recipe_command(config)
    run_dir = Path(cwd) if cwd is not None else Path.cwd()
    output_dir = run_dir / str(config["export_dir" if command == "export" else "output_dir"])
    title = title or recipe.stem
    log_path.parent.mkdir(parents=True, exist_ok=True)
    trainer_log = output_dir / "trainer_log.jsonl"
    argv, env = llamafactory_command(recipe)
    if config.get("model_name_or_path"):  # an uncached hub id while offline: one line now, not LF's traceback
        check_hub_model(str(config["model_name_or_path"]), env)
    start = time.perf_counter()
    # The lock (inherited by the guard) lasts until the last process of this run is gone; taken before
    # anything in the folder is touched, so a refused re-run changes nothing of the live run's.
    with folder_lock(output_dir, f"llamafactory-cli {command} {recipe}") as lock, log_path.open("w") as fh:
        trainer_log.unlink(missing_ok=True)  # a previous run's records would feed the bar and the results
        # Under a guard: SIGKILL of lfkit takes llamafactory-cli and its torchrun workers down too.
        proc = start_guarded(argv, pass_fds=(lock,), stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd)
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
        state = read_trainer_state(output_dir)
        if state is None:
            raise TrainError(
                f"{title}: llamafactory-cli train {recipe} finished but wrote no {output_dir / TRAINER_STATE}; "
                f"log: {log_path}\n{_log_tail(log_path)}"
            )
        result.log_history = state.get("log_history", [])
        result.steps = state.get("global_step", 0)
        results_file = output_dir / "train_results.json"
        result.metrics = json.loads(results_file.read_text()) if results_file.exists() else {}
    return result


# -- merging LoRA adapters into a plain model ----------------------------------------------------
MERGE_MARKER = "lfkit_merge.json"


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
            {"path": str(a.resolve()), "sha256": file_sha256(adapter_weights(a))} for a in _adapter_list(adapters)
        ],
    }


def merge_adapter(
    base_model: str | os.PathLike[str],
    adapters: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    marker: dict[str, Any] | None = None,
) -> Path:
    """The one function that writes a merged model: the LoRA ``adapters`` (one, or a stack merged in
    order) folded into ``base_model`` with peft ``merge_and_unload`` in float32, model + tokenizer
    saved to ``out``.

    Written atomically (a finished folder is renamed into place). The base's ``lfkit_model.json``
    (embedded models: names the chat template) is copied along, and ``lfkit_merge.json``
    (:func:`merge_marker`) records what was merged. Float32 because rounding the LoRA delta
    into bf16 weights loses most of it (``llamafactory-cli export`` casts to bf16 by default).
    ``marker``: :func:`merge_marker` of these inputs when the caller has it (it hashes every adapter).
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lfkit.generate.prompts import offline_if_local
    from lfkit.models.embedded import MARKER as EMBEDDED_MARKER
    from lfkit.models.embedded import resolve_model

    base = resolve_model(base_model)
    offline_if_local(base)
    if marker is None:
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


def merge_once(
    base_model: str | os.PathLike[str],
    adapters: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    marker: dict[str, Any] | None = None,
) -> Path:
    """``out`` as :func:`merge_adapter` writes it, merged again only when its ``lfkit_merge.json``
    (:func:`merge_marker`: the base and each adapter's weights; ``marker`` when the caller has it)
    no longer matches."""
    out = Path(out)
    want = merge_marker(base_model, adapters) if marker is None else marker
    written = out / MERGE_MARKER
    if written.is_file() and json.loads(written.read_text()) == want and (out / "config.json").is_file():
        return out
    return merge_adapter(base_model, adapters, out, marker=want)


__all__ = [
    "MERGE_MARKER",
    "REPORTED_ENV",
    "TrainError",
    "TrainResult",
    "adapter_weights",
    "describe_env",
    "llamafactory_cli",
    "llamafactory_command",
    "llamafactory_env",
    "merge_adapter",
    "merge_marker",
    "merge_once",
    "pin_demo_environment",
    "run_llamafactory",
]

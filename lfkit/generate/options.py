"""Click options that choose and configure a generation backend, shared by every sampling command.

``@backend_options`` adds them; :func:`backend_from_options` turns them into a backend
(model, adapter and LLaMA-Factory template resolved) plus the identity recorded in
journals, so that a resumed run can check it samples from the same model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from lfkit.generate.base import BACKENDS, GenerationBackend, GenerationError, get_backend

# Questions per generate call when --batch-size is not given: vLLM and servers schedule
# large batches themselves; the hf backend pads a batch to its longest prompt.
DEFAULT_BATCH = {"hf": 8, "vllm": 256, "openai": 64}


def _parse_backend_option(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for text in values:
        key, sep, raw = text.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {text!r}", ctx=ctx, param=param)
        try:
            out[key.replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = raw  # a bare string
    return out


def backend_options(fn: Callable) -> Callable:
    """Decorator adding --backend, --base-model, --adapter-path, --template/--preset and backend knobs."""
    options = [
        click.option(
            "--backend",
            type=click.Choice(sorted(BACKENDS)),
            default="hf",
            show_default=True,
            help="hf: transformers+peft (CPU/CUDA); vllm: offline vLLM (GPU, optional extra); "
            "openai: an OpenAI-compatible server.",
        ),
        click.option(
            "--base-model",
            help="Model folder or embedded model name (tiny, smollm2-135m); for --backend openai the "
            "served model name. Default: the --preset's model.",
        ),
        click.option("--adapter-path", help="LoRA adapter folder (PEFT) applied on the base model."),
        click.option("--template", help="LLaMA-Factory template the model was trained with (e.g. qwen3_nothink)."),
        click.option("--preset", help="lfkit preset naming model and template (see `lfkit render --list`)."),
        click.option("--device", default="auto", show_default=True, help="hf: auto | cpu | cuda | cuda:N."),
        click.option(
            "--dtype", default="auto", show_default=True, help="hf/vllm: auto | float32 | bfloat16 | float16."
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            help=f"Questions per generate call (default: {', '.join(f'{k} {v}' for k, v in DEFAULT_BATCH.items())}).",
        ),
        click.option("--base-url", help="openai: server URL ending in /v1, e.g. http://127.0.0.1:8000/v1."),
        click.option("--api-key", envvar="OPENAI_API_KEY", help="openai: API key [env OPENAI_API_KEY]."),
        click.option(
            "--concurrency", type=click.IntRange(min=1), default=8, show_default=True, help="openai: parallel requests."
        ),
        click.option(
            "--tensor-parallel-size",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="vllm: GPUs per model.",
        ),
        click.option(
            "--backend-option",
            "backend_extra",
            multiple=True,
            callback=_parse_backend_option,
            metavar="KEY=VALUE",
            help="Any other backend option (value parsed as JSON when it parses), e.g. "
            "gpu_memory_utilization=0.85, max_retries=8. Repeatable.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def stop_option(fn: Callable) -> Callable:
    """Decorator adding ``--stop/--no-stop`` (greedy SQL answers end at their first closed fence).

    The command receives ``stop`` as a bool; :func:`stop_strings` turns it into the stop list.
    """
    return click.option(
        "--stop/--no-stop",
        default=True,
        show_default=True,
        help="End each answer right after its first closed ```sql fence (a closing ``` on its own line) "
        "instead of decoding to --max-new-tokens. Use --no-stop for models that write fences inside <think>.",
    )(fn)


def stop_strings(stop: bool) -> tuple[str, ...]:
    """The stop list ``--stop/--no-stop`` stands for."""
    from lfkit.sql.extract import SQL_FENCE_STOP

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
    "tensor_parallel_size",
    "backend_extra",
)


def pop_backend_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove the backend options from a command's kwargs and return them."""
    return {k: kwargs.pop(k) for k in BACKEND_KEYS}


def backend_from_options(opts: dict[str, Any]) -> tuple[GenerationBackend, dict[str, Any], int]:
    """(backend, identity for journals, questions per batch) from ``pop_backend_options`` output.

    Raises click.ClickException with the reason on any user error.
    """
    from lfkit.generate.prompts import resolve_model, resolve_template
    from lfkit.models import ModelError

    name = opts["backend"]
    model, template = opts["base_model"], opts["template"]
    try:
        if opts["preset"]:
            from lfkit.recipes import load_preset

            preset = load_preset(opts["preset"])
            model = model or preset.get("model_name_or_path")
            template = template or preset.get("template")
        if not model:
            raise click.UsageError("give --base-model (or a --preset that names the model)")
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
        elif name == "openai":
            kwargs.update(concurrency=opts["concurrency"], api_key=opts["api_key"])
            if opts["base_url"]:
                kwargs["base_url"] = opts["base_url"]
        kwargs.update(opts["backend_extra"])
        backend = get_backend(name, **kwargs)
    except click.ClickException:
        raise
    except (GenerationError, ModelError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    identity = {"backend": name, "model": str(model), "adapter": opts["adapter_path"], "template": template}
    return backend, identity, opts["batch_size"] or DEFAULT_BATCH.get(name, 8)

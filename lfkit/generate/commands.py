"""Click options that choose and configure a generation backend, shared by every sampling command.

There is no ``lfkit generate`` command: ``lfkit prefs`` (and later samplers) decorate their
commands with :func:`backend_options`, take the values out with
:func:`lfkit.generate.options.pop_backend_options` and hand them to
:func:`lfkit.generate.options.backend_from_options`, which holds the logic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from lfkit.generate.base import BACKENDS
from lfkit.generate.openai_backend import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, STALL_NOTICE
from lfkit.generate.options import DEFAULT_BATCH, parse_backend_extra

__all__ = ["backend_options", "stop_option"]


def _parse_backend_option(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, Any]:
    try:
        return parse_backend_extra(values)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


def backend_options(fn: Callable) -> Callable:
    """Decorator adding --backend, --base-model, --adapter-path, --template/--preset and backend knobs."""
    options = [
        click.option(
            "--backend",
            type=click.Choice(sorted(BACKENDS)),
            default="hf",
            show_default=True,
            help="hf: transformers+peft (CPU/CUDA); vllm: the vLLM engine, started for this command (CPU: "
            "`make install-vllm`; GPU: vllm installed beside lfkit); openai: an OpenAI-compatible server.",
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
            "--concurrency",
            type=click.IntRange(min=1),
            help="openai: parallel requests (default 8); vllm: requests in flight, batched by the engine (default 64).",
        ),
        click.option(
            "--request-timeout",
            type=click.FloatRange(min=0, min_open=True),
            help=f"openai/vllm: seconds one request may wait for its reply before it is retried (default: "
            f"{DEFAULT_TIMEOUT:g}; {DEFAULT_MAX_RETRIES} retries, --backend-option max_retries=N). A request "
            f"still waiting is reported on stderr every {STALL_NOTICE:g} s.",
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

    The command receives ``stop`` as a bool; :func:`lfkit.generate.options.stop_strings` turns it
    into the stop list.
    """
    return click.option(
        "--stop/--no-stop",
        default=True,
        show_default=True,
        help="End each answer right after its first closed ```sql fence (a closing ``` on its own line) "
        "instead of decoding to --max-new-tokens. Use --no-stop for models that write fences inside <think>.",
    )(fn)

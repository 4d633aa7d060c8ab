"""The one backend factory of the pipelines: every stage that generates calls :func:`make_backend`.

:class:`Generation` says how a run generates: the backend name (``hf`` | ``vllm`` | ``openai``, any
name registered in :mod:`lfkit.generate`), the chat template, batch size, device and extra backend
options. A run may hold ONE long-lived engine for all its stages (a vLLM engine loading each round's
adapters, a server): :func:`pipeline_engine` opens it for the run (a context manager) when the
backend has an engine factory in :data:`ENGINES`, and :func:`make_backend` then lends it to each
stage instead of loading the model again; a lent backend's ``close()`` leaves the engine open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from lfkit.generate.base import GenerationBackend
from lfkit.pipeline.results import ModelRef


class SharedEngine(Protocol):
    """A model server held open across the stages of one run."""

    def backend_for(self, model: ModelRef) -> GenerationBackend:
        """A backend generating with ``model`` (its base and adapters) on this engine."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Generation:
    """How every stage of one run generates (built once per run, passed to each stage)."""

    backend: str = "hf"
    template: str = ""
    batch_size: int = 16
    device: str | None = None  # "cpu" for the embedded models: their runs are specified for the CPU
    options: dict[str, Any] = field(default_factory=dict)  # extra backend options (e.g. vLLM's)
    engine: SharedEngine | None = None  # set by pipeline_engine() for the run's lifetime

    def backend_options(self, model: ModelRef) -> dict[str, Any]:
        """The ``lfkit.generate.get_backend`` options for ``model``."""
        options: dict[str, Any] = {
            "model": model.base,
            "adapter": ",".join(model.adapters) or None,
            "template": self.template,
        }
        if self.backend == "hf":
            options["batch_size"] = self.batch_size
            if self.device is not None:
                options["device"] = self.device
        return {**options, **self.options}


def generation_for(preset: dict[str, Any], backend: str = "hf", batch_size: int = 16, **options: Any) -> Generation:
    """The :class:`Generation` of a run on ``preset`` (a loaded preset dict): its template; CPU if embedded.

    ``batch_size`` is the hf backend's (prompts padded into one forward); the vLLM engine schedules its
    own batches, so a vllm run hands it :data:`~lfkit.generate.options.DEFAULT_BATCH` questions per call.
    """
    from lfkit.generate.options import DEFAULT_BATCH

    return Generation(
        backend=backend,
        template=preset["template"],
        batch_size=batch_size if backend == "hf" else DEFAULT_BATCH.get(backend, batch_size),
        device="cpu" if preset.get("embedded") else None,
        options=options,
    )


class VLLMShared:
    """``ENGINES["vllm"]``: the run's vLLM engine, serving each stage's model.

    A stage's adapters are merged into its base once (:func:`lfkit.train.merge_adapter`, float32, cached
    by the adapters' contents: :mod:`lfkit.pipeline.merged`) and the engine serves that model: LoRA in
    vLLM-CPU made the demo's SFT evaluation 2.6x slower than the hf backend (260 s vs 101 s), while a
    restart on a merged model costs ~25 s on two cores. Stages on the same model share one engine; a
    new model restarts it. float32 by default, so greedy answers equal the hf backend's
    (``options={"dtype": "bfloat16"}`` trades that for speed). ``options={"serve_lora": True}`` loads
    the adapters into the running engine instead (GPU engines, where LoRA kernels are fast).
    """

    MAX_STACK_RANK = 64  # four rank-16 adapters (SFT + three DPO rounds) stacked

    def __init__(self, gen: Generation) -> None:
        from lfkit.generate.vllm_engine import EnginePool

        options = dict(gen.options)
        self.backend_options = {k: options.pop(k) for k in ("concurrency", "request_timeout") if k in options}
        self.serve_lora = bool(options.pop("serve_lora", False))
        options.setdefault("dtype", "float32")
        options.setdefault("max_lora_rank", self.MAX_STACK_RANK)
        self.template = gen.template
        self.pool = EnginePool(**options)

    def backend_for(self, model: ModelRef) -> GenerationBackend:
        from lfkit.generate import get_backend
        from lfkit.models.embedded import resolve_model
        from lfkit.pipeline.merged import merged_model

        base, adapters = str(resolve_model(model.base)), list(model.adapters)
        if adapters and not self.serve_lora:
            base, adapters = str(merged_model(base, adapters)), []
        return get_backend(
            "vllm",
            model=base,
            adapter=",".join(adapters) or None,
            template=self.template,
            engine=self.pool.get(base),
            **self.backend_options,
        )

    def close(self) -> None:
        self.pool.close()


# backend name -> factory of a long-lived engine for it: the run starts it once (pipeline_engine)
ENGINES: dict[str, Callable[[Generation], SharedEngine]] = {"vllm": VLLMShared}


class _Lent(GenerationBackend):
    """A backend borrowed from the run's shared engine: closing it does not close the engine."""

    def __init__(self, inner: GenerationBackend) -> None:
        super().__init__()
        self.inner = inner

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.generate(*args, **kwargs)

    def _generate(self, chats: Any, cfg: Any, seeds: Any) -> Any:  # pragma: no cover -- generate() delegates
        return self.inner._generate(chats, cfg, seeds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def close(self) -> None:
        pass


def make_backend(gen: Generation, model: ModelRef) -> GenerationBackend:
    """A backend generating with ``model``: lent by the run's engine if one is open, else a new one.

    Use it as a context manager (``with make_backend(gen, model) as backend:``): a new backend is
    closed at the end of the stage, a lent one stays open for the next stage.
    """
    if gen.engine is not None:
        return _Lent(gen.engine.backend_for(model))
    from lfkit.generate import get_backend

    return get_backend(gen.backend, **gen.backend_options(model))


@contextmanager
def pipeline_engine(gen: Generation) -> Iterator[Generation]:
    """``gen`` with the run's shared engine open (when its backend has one in :data:`ENGINES`), closed at exit."""
    factory = ENGINES.get(gen.backend)
    if factory is None or gen.engine is not None:
        yield gen
        return
    engine = factory(gen)
    try:
        yield replace(gen, engine=engine)
    finally:
        engine.close()


__all__ = ["ENGINES", "Generation", "SharedEngine", "VLLMShared", "generation_for", "make_backend", "pipeline_engine"]

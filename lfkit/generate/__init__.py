"""lfkit.generate: generation backends behind one interface.

    from lfkit.generate import SamplingConfig, get_backend
    backend = get_backend("hf", model="tiny", adapter=None, template="qwen3_nothink", batch_size=8)
    outs = backend.generate(chats, SamplingConfig(n=4, temperature=0.8, seed=1234))  # n texts per chat

Backends: ``hf`` (transformers + peft), ``vllm`` (offline vLLM, optional extra) and
``openai`` (any OpenAI-compatible server). Importing this package imports no torch.
"""

from lfkit.generate.base import (
    BACKENDS,
    SEED_STRIDE,
    Chat,
    GenerationBackend,
    GenerationError,
    GenerationStats,
    SamplingConfig,
    backend_class,
    default_seeds,
    get_backend,
    register_backend,
    truncate_at_stop,
    validate_chat,
)

__all__ = [
    "BACKENDS",
    "SEED_STRIDE",
    "Chat",
    "GenerationBackend",
    "GenerationError",
    "GenerationStats",
    "SamplingConfig",
    "backend_class",
    "default_seeds",
    "get_backend",
    "register_backend",
    "truncate_at_stop",
    "validate_chat",
]

"""The one generation interface: chats in, ``n`` completions per chat out.

Every backend (``hf``, ``vllm``, ``openai``) subclasses :class:`GenerationBackend` and
implements ``_generate``; callers only ever see :meth:`GenerationBackend.generate`.
Backends are registered by name and imported lazily, so choosing ``hf`` never imports
vLLM and ``lfkit prefs --help`` never imports torch.
"""

from __future__ import annotations

import importlib
import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lfkit.errors import LfkitError
from lfkit.generate.defaults import SAMPLING

Chat = list[dict[str, str]]

# Per-sample seeds: question ``index`` gets base seed ``seed + index * SEED_STRIDE`` and its
# sample ``j`` uses ``base + j``, so a sample depends on its question and seed only (not on
# batching, sharding or resuming), as long as a question has fewer than 1000 samples.
SEED_STRIDE = 1000


class GenerationError(LfkitError):
    """A backend could not be built or could not generate (message says why and what to do)."""


@dataclass
class SamplingConfig:
    """How to sample: the same knobs for every backend."""

    n: int = field(default=1, metadata={"help": "Completions per chat."})
    temperature: float = field(
        default=SAMPLING["api"].temperature,
        metadata={"help": "Softmax temperature; 0 = greedy (one decode, copied n times)."},
    )
    top_p: float = field(default=SAMPLING["api"].top_p, metadata={"help": "Nucleus sampling mass, in (0, 1]."})
    max_new_tokens: int = field(default=256, metadata={"help": "Upper bound on generated tokens per completion."})
    seed: int = field(
        default=SAMPLING["api"].seed,
        metadata={"help": "Base seed; chat i gets seed + i*1000, its sample j seed + i*1000 + j."},
    )
    stop: Sequence[str] = field(
        default=(),
        metadata={"help": "Stop strings: a completion ends right after the first one it completes (kept in the text)."},
    )

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"SamplingConfig.n must be an integer >= 1, got {self.n!r}")
        if self.temperature < 0:
            raise ValueError(f"SamplingConfig.temperature must be >= 0, got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingConfig.top_p must be in (0, 1], got {self.top_p!r}")
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"SamplingConfig.max_new_tokens must be an integer >= 1, got {self.max_new_tokens!r}")
        if isinstance(self.stop, str) or not all(isinstance(s, str) and s for s in self.stop):
            raise ValueError(f"SamplingConfig.stop must be a list of non-empty strings, got {self.stop!r}")
        self.stop = tuple(self.stop)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class GenerationStats:
    """Counters a backend keeps across calls (benchmarks and summaries read them)."""

    calls: int = 0
    prompts: int = 0
    completions: int = 0
    prompt_tokens: int = 0  # per request: a prompt decoded for n samples at once counts once
    completion_tokens: int = 0
    seconds: float = 0.0


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` cut right after the first stop string it completes, and whether one was found.

    The one truncation rule of every backend: the stop string is KEPT (a completion stopped
    at the closing ```` ``` ```` of a fence stays a complete fence), and "first" means the
    earliest END position, so of two overlapping stops the one completed first wins.

    >>> truncate_at_stop("```sql\\nSELECT 1\\n```\\nThis query ...", ["\\n```\\n"])
    ('```sql\\nSELECT 1\\n```\\n', True)
    >>> truncate_at_stop("abcdef", ["cdx", "de", "bcd"])
    ('abcd', True)
    >>> truncate_at_stop("SELECT 1", ["\\n```\\n"])
    ('SELECT 1', False)
    """
    ends = [i + len(s) for s in stop if (i := text.find(s)) >= 0]
    return (text[: min(ends)], True) if ends else (text, False)


def default_seeds(n_chats: int, seed: int) -> list[int]:
    return [seed + i * SEED_STRIDE for i in range(n_chats)]


def validate_chat(chat: Any, where: str = "chat") -> Chat:
    """Check a chat is ``[system?] user (assistant user)*`` with string contents."""
    if not isinstance(chat, list) or not chat:
        raise ValueError(f"{where}: expected a non-empty list of messages, got {type(chat).__name__}")
    roles = []
    for k, msg in enumerate(chat):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str) or not isinstance(msg.get("content"), str):
            raise ValueError(f"{where}: message {k} must be a dict with string 'role' and 'content'")
        roles.append(msg["role"])
    body = roles[1:] if roles[0] == "system" else roles
    expected = ["user" if k % 2 == 0 else "assistant" for k in range(len(body))]
    if not body or body != expected or body[-1] != "user":
        raise ValueError(f"{where}: roles must be [system] user (assistant user)*, ending with user; got {roles}")
    return chat


class GenerationBackend(ABC):
    """Base class of every backend. Subclasses implement :meth:`_generate`.

    A small in-process subclass (returning canned texts) is the supported way to drive
    lfkit.prefs without a model, e.g. in tests of the labelling logic.
    """

    name: ClassVar[str] = "base"

    def __init__(self) -> None:
        self.stats = GenerationStats()

    def generate(
        self, chats: Sequence[Chat], cfg: SamplingConfig, *, seeds: Sequence[int] | None = None
    ) -> list[list[str]]:
        """Return ``cfg.n`` completions for each chat, in order.

        ``seeds[i]`` is chat i's base seed (sample j uses ``seeds[i] + j`` where the backend
        can seed per sample); default ``cfg.seed + i * SEED_STRIDE``.
        """
        chats = [validate_chat(c, f"chat {i}") for i, c in enumerate(chats)]
        seeds = list(seeds) if seeds is not None else default_seeds(len(chats), cfg.seed)
        if len(seeds) != len(chats):
            raise ValueError(f"got {len(seeds)} seeds for {len(chats)} chats")
        if not chats:
            return []
        start = time.perf_counter()
        out = self._generate(chats, cfg, seeds)
        self.stats.seconds += time.perf_counter() - start
        if len(out) != len(chats) or any(len(o) != cfg.n for o in out):
            shape = [len(o) for o in out]
            raise GenerationError(
                f"{self.name} backend returned {shape} completions for {len(chats)} chats x n={cfg.n}"
            )
        self.stats.calls += 1
        self.stats.prompts += len(chats)
        self.stats.completions += len(chats) * cfg.n
        return out

    @abstractmethod
    def _generate(self, chats: list[Chat], cfg: SamplingConfig, seeds: list[int]) -> list[list[str]]:
        """Backend-specific work; ``generate`` has validated the arguments."""

    def close(self) -> None:  # noqa: B027 -- optional hook: most test backends hold nothing
        """Release models, pools and connections."""

    def __enter__(self) -> GenerationBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# name -> "module:Class" (imported on first use) or a class registered at run time
BACKENDS: dict[str, str | type[GenerationBackend]] = {
    "hf": "lfkit.generate.hf_backend:HFBackend",
    "vllm": "lfkit.generate.vllm_backend:VLLMBackend",
    "openai": "lfkit.generate.openai_backend:OpenAIBackend",
}


def register_backend(name: str, target: str | type[GenerationBackend]) -> None:
    """Add a backend under ``name`` (a class, or ``"module:Class"`` imported lazily)."""
    BACKENDS[name] = target


def backend_class(name: str) -> type[GenerationBackend]:
    if name not in BACKENDS:
        raise ValueError(f"unknown generation backend {name!r}; choose one of: {', '.join(sorted(BACKENDS))}")
    target = BACKENDS[name]
    if isinstance(target, str):
        module_name, attr = target.split(":")
        target = getattr(importlib.import_module(module_name), attr)
    return target


def get_backend(name: str, **options: Any) -> GenerationBackend:
    """Build backend ``name`` with its options (``model``, ``adapter``, ``template``, ...)."""
    cls = backend_class(name)
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params) - {"self"})
        if unknown:
            allowed = ", ".join(p for p in params if p != "self")
            raise ValueError(f"backend {name!r} does not take option(s) {', '.join(unknown)}; it takes: {allowed}")
    return cls(**options)

"""``openai`` backend: any OpenAI-compatible chat server (vLLM serve, SGLang, ``llamafactory-cli api``).

Requests go through the official ``openai`` client (optional extra: ``pip install 'lfkit[openai]'``),
which brings timeouts and retries: connection errors, timeouts, 408, 409, 429 and 5xx are
retried ``max_retries`` times with exponential backoff (0.5 s doubling to 8 s, jittered),
honouring the server's ``Retry-After``; other HTTP errors fail at once with the server's reply.
One request per chat asks for ``n`` choices; a server that returns fewer (or ignores ``n``)
gets follow-up requests until there are ``n``.

Stop strings (:attr:`SamplingConfig.stop`) are sent as the API's ``stop``. Servers leave the
matched stop string out of the text while lfkit's rule keeps it (see
:func:`~lfkit.generate.base.truncate_at_stop`), so a completion gets it back when
``finish_reason == "stop"`` and the server names the stop string that ended it (vLLM's
``stop_reason``, SGLang's ``matched_stop``). A server that does not say why it stopped
(OpenAI's own API) cannot be told apart from an end-of-sequence stop: its text is left as
sent, without the stop string. A server that ignores ``stop`` (LLaMA-Factory's huggingface
engine) returns longer text, which is cut by the same rule as the other backends.

The server applies its own chat template: start it with the template the model was
trained with (``llamafactory-cli api ... template=<T>``, or a matching chat template for
vLLM/SGLang) -- unlike ``hf``/``vllm``, lfkit cannot encode the prompt for it.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lfkit.generate.base import Chat, GenerationBackend, GenerationError, SamplingConfig, truncate_at_stop


def import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:
        raise GenerationError(
            "the openai backend needs the official openai client, which is not installed: pip install 'lfkit[openai]'"
        ) from exc
    return openai


def _retried(status: int) -> bool:
    """Statuses the openai client retries (its ``_should_retry``, absent an x-should-retry header)."""
    return status in (408, 409, 429) or status >= 500


def with_stop(text: str, choice: Any, stop: tuple[str, ...]) -> str:
    """A server's completion under lfkit's stop rule (module docstring): cut, or the stop string put back."""
    text, cut = truncate_at_stop(text, stop)
    if cut or getattr(choice, "finish_reason", None) != "stop":
        return text
    matched = getattr(choice, "stop_reason", None) or getattr(choice, "matched_stop", None)
    return text + matched if isinstance(matched, str) and matched in stop else text


class OpenAIBackend(GenerationBackend):
    """Options: ``base_url`` (…/v1), ``api_key`` (default $OPENAI_API_KEY), ``concurrency``,
    ``max_retries`` (per request, after the first try), ``timeout`` (seconds per request),
    ``extra_body`` (merged into every request)."""

    name = "openai"

    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        template: str | None = None,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key: str | None = None,
        concurrency: int = 8,
        max_retries: int = 5,
        timeout: float = 600.0,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if adapter:
            raise GenerationError(
                "the openai backend cannot load an adapter: serve it with the server "
                "(e.g. vllm serve --lora-modules NAME=PATH) and pass NAME as the model"
            )
        if concurrency < 1 or max_retries < 0:
            raise ValueError("concurrency must be >= 1 and max_retries >= 0")
        openai = import_openai()
        self.model = str(model)
        self.template = template  # informational: the server's template governs the prompt
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.concurrency, self.max_retries = concurrency, max_retries
        self.extra_body = dict(extra_body or {})
        self.requests = 0  # HTTP requests sent, retries included
        self._lock = threading.Lock()  # counters are updated from the request threads
        self._errors = (openai.APIStatusError, openai.APIConnectionError, openai.APIError)
        self.client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
            timeout=timeout,
            max_retries=max_retries,
            http_client=openai.DefaultHttpxClient(event_hooks={"request": [self._count_request]}),
        )

    def _count_request(self, request: Any) -> None:
        with self._lock:
            self.requests += 1

    def _generate(self, chats: list[Chat], cfg: SamplingConfig, seeds: list[int]) -> list[list[str]]:
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(chats))) as pool:
            return list(pool.map(lambda a: self._complete(a[0], cfg, a[1]), zip(chats, seeds, strict=True)))

    def _complete(self, chat: Chat, cfg: SamplingConfig, seed: int) -> list[str]:
        want = 1 if cfg.greedy else cfg.n  # greedy: one decode, copied
        texts: list[str] = []
        while len(texts) < want:
            k = want - len(texts)
            reply = self._create(
                model=self.model,
                messages=chat,
                n=k,
                temperature=cfg.temperature,
                top_p=cfg.top_p if not cfg.greedy else 1.0,
                max_tokens=cfg.max_new_tokens,
                seed=seed + len(texts),
                **({"stop": list(cfg.stop)} if cfg.stop else {}),
                extra_body=self.extra_body or None,
            )
            if not hasattr(reply, "choices"):  # the client hands back a non-JSON reply as it came
                raise GenerationError(f"{self.url} did not return a chat completion: {str(reply)[:500]}")
            choices = sorted(reply.choices or [], key=lambda c: c.index or 0)
            if not choices:
                raise GenerationError(f"{self.url} returned no choices: {reply.model_dump_json()[:500]}")
            texts += [with_stop(c.message.content or "", c, cfg.stop) for c in choices[:k]]
            if reply.usage:
                with self._lock:
                    self.stats.completion_tokens += int(reply.usage.completion_tokens or 0)
                    self.stats.prompt_tokens += int(reply.usage.prompt_tokens or 0)
        return texts * cfg.n if cfg.greedy else texts

    def _create(self, **request: Any) -> Any:
        status_error, connection_error, api_error = self._errors
        tries = f"gave up after {self.max_retries + 1} tries"
        try:
            return self.client.chat.completions.create(**request)
        except status_error as exc:
            detail = f"HTTP {exc.status_code}: {exc.response.text[:500]}"
            if _retried(exc.status_code):
                raise GenerationError(f"{self.url}: {tries} ({detail})") from exc
            raise GenerationError(f"{self.url}: {detail}") from exc
        except connection_error as exc:
            cause = exc.__cause__ or exc
            raise GenerationError(
                f"{self.url}: {tries} ({type(cause).__name__}: {cause}); is the server running and reachable?"
            ) from exc
        except api_error as exc:  # e.g. a reply that is not a chat completion
            raise GenerationError(f"{self.url}: unexpected reply: {exc}") from exc

    def close(self) -> None:
        self.client.close()

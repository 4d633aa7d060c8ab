"""``openai`` backend: any OpenAI-compatible chat server (vLLM serve, SGLang, ``llamafactory-cli api``).

Standard library only (urllib + a thread pool): one request per chat asks for ``n``
choices; a server that returns fewer (or ignores ``n``) gets follow-up requests until
there are ``n``. Connection failures, timeouts, 429 and 5xx are retried with exponential
backoff (honouring ``Retry-After``); other HTTP errors fail at once with the server's reply.

The server applies its own chat template: start it with the template the model was
trained with (``llamafactory-cli api ... template=<T>``, or a matching chat template for
vLLM/SGLang) -- unlike ``hf``/``vllm``, lfkit cannot encode the prompt for it.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lfkit.generate.base import Chat, GenerationBackend, GenerationError, SamplingConfig

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIBackend(GenerationBackend):
    """Options: ``base_url`` (…/v1), ``api_key`` (default $OPENAI_API_KEY), ``concurrency``,
    ``max_retries``, ``backoff`` (first wait, doubled per retry, capped at ``max_backoff``),
    ``timeout`` (seconds per request), ``extra_body`` (merged into every request)."""

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
        backoff: float = 1.0,
        max_backoff: float = 30.0,
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
        self.model = str(model)
        self.template = template  # informational: the server's template governs the prompt
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.concurrency, self.max_retries = concurrency, max_retries
        self.backoff, self.max_backoff, self.timeout = backoff, max_backoff, timeout
        self.extra_body = dict(extra_body or {})
        self.requests = 0  # HTTP requests sent, retries included
        self._lock = threading.Lock()  # counters are updated from the request threads

    def _generate(self, chats: list[Chat], cfg: SamplingConfig, seeds: list[int]) -> list[list[str]]:
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(chats))) as pool:
            return list(pool.map(lambda a: self._complete(a[0], cfg, a[1]), zip(chats, seeds, strict=True)))

    def _complete(self, chat: Chat, cfg: SamplingConfig, seed: int) -> list[str]:
        want = 1 if cfg.greedy else cfg.n  # greedy: one decode, copied
        texts: list[str] = []
        while len(texts) < want:
            k = want - len(texts)
            body = {
                "model": self.model,
                "messages": chat,
                "n": k,
                "temperature": cfg.temperature,
                "top_p": cfg.top_p if not cfg.greedy else 1.0,
                "max_tokens": cfg.max_new_tokens,
                "seed": seed + len(texts),
                **self.extra_body,
            }
            reply = self._post(body)
            choices = sorted(reply.get("choices") or [], key=lambda c: c.get("index", 0))
            if not choices:
                raise GenerationError(f"{self.url} returned no choices: {json.dumps(reply)[:500]}")
            texts += [(c.get("message") or {}).get("content") or "" for c in choices[:k]]
            usage = reply.get("usage") or {}
            with self._lock:
                self.stats.completion_tokens += int(usage.get("completion_tokens") or 0)
                self.stats.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        return texts * cfg.n if cfg.greedy else texts

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"}
        last = ""
        for attempt in range(self.max_retries + 1):
            with self._lock:
                self.requests += 1
            wait = min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + random.random() / 2)
            try:
                req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:500]
                if exc.code not in RETRY_STATUS:
                    raise GenerationError(f"{self.url}: HTTP {exc.code}: {detail}") from exc
                last = f"HTTP {exc.code}: {detail}"
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                if retry_after and retry_after.isdigit():
                    wait = min(self.max_backoff, float(retry_after))
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            except json.JSONDecodeError as exc:
                raise GenerationError(f"{self.url} did not return JSON: {exc}") from exc
            if attempt < self.max_retries:
                time.sleep(wait)
        raise GenerationError(
            f"{self.url}: gave up after {self.max_retries + 1} tries ({last}); is the server running and reachable?"
        )

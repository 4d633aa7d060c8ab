"""``openai`` backend: any OpenAI-compatible chat server (vLLM serve, SGLang, ``llamafactory-cli api``).

Requests go through the official ``openai`` client (optional extra: ``pip install 'lfkit[openai]'``),
which brings timeouts and retries: connection errors, timeouts, 408, 409, 429 and 5xx are
retried ``max_retries`` times with exponential backoff (0.5 s doubling to 8 s, jittered),
honouring the server's ``Retry-After``; other HTTP errors fail at once with the server's reply.
A 200 reply whose body is not valid JSON (a proxy or server cut it short) is retried the same
way, within the same ``max_retries``, then fails with one line.

Defaults (:data:`DEFAULT_TIMEOUT` 120 s, :data:`DEFAULT_MAX_RETRIES` 3): the openai client's own
(600 s, and lfkit's former 5 retries) let a hung server keep a run silent for up to an hour;
a greedy SQL answer takes seconds even from a busy server, and 120 s still covers a long
sampled batch (n completions of a few hundred tokens each) queued behind others, so a hung
request now fails after at most 4 x 120 s plus about 4 s of backoff. While a request waits,
a warning goes to the log (stderr) every :data:`STALL_NOTICE` seconds, and each retry says
why it is made: a stall is visible long before the timeout. Both are options
(``--request-timeout``, ``--backend-option max_retries=N``, ``stall_notice=S``).
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

import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lfkit.generate.base import Chat, GenerationBackend, GenerationError, SamplingConfig, truncate_at_stop

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 120.0  # seconds one request may wait for its reply (see the module docstring)
DEFAULT_MAX_RETRIES = 3  # retries per request after the first try
STALL_NOTICE = 30.0  # seconds between "still waiting" warnings for one request


def import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:
        raise GenerationError(
            "the openai backend needs the official openai client, which is not installed: pip install 'lfkit[openai]'"
        ) from exc
    return openai


@dataclass(eq=False)  # hashed by identity: kept in a set while in flight
class _Tries:
    """The HTTP tries of one chat request so far, and why the last one failed (None: unknown)."""

    tries: int = 0
    last: str | None = None
    started: float = field(default_factory=time.monotonic)


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
    ``stall_notice`` (seconds between "still waiting" warnings), ``extra_body`` (merged into
    every request)."""

    name = "openai"

    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        template: str | None = None,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key: str | None = None,
        concurrency: int = 8,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout: float = DEFAULT_TIMEOUT,
        stall_notice: float = STALL_NOTICE,
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
        if timeout <= 0 or stall_notice <= 0:
            raise ValueError("timeout and stall_notice must be positive (seconds)")
        openai = import_openai()
        self.model = str(model)
        self.template = template  # informational: the server's template governs the prompt
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.concurrency, self.max_retries = concurrency, max_retries
        self.timeout, self.stall_notice = float(timeout), float(stall_notice)
        self.extra_body = dict(extra_body or {})
        self.requests = 0  # HTTP requests sent, retries included
        self._lock = threading.Lock()  # counters are updated from the request threads
        self._call = threading.local()  # .state: the _Tries of the chat request this thread makes
        self._waiting: set[_Tries] = set()  # chat requests in flight, for the stall notice
        self._errors = (openai.APIStatusError, openai.APITimeoutError, openai.APIConnectionError, openai.APIError)
        self.client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
            timeout=timeout,
            max_retries=max_retries,
            http_client=openai.DefaultHttpxClient(
                event_hooks={"request": [self._on_request], "response": [self._on_response]}
            ),
        )

    # httpx calls the hooks in the thread that makes the request, once per HTTP try.
    def _on_request(self, request: Any) -> None:
        with self._lock:
            self.requests += 1
        call = getattr(self._call, "state", None) or _Tries()
        call.tries += 1
        if call.tries > 1:
            why = call.last or "no reply in time or a connection error"
            logger.warning(f"{self.url}: retrying a request (try {call.tries} of {self.max_retries + 1}) after {why}")
        call.last = None

    def _on_response(self, response: Any) -> None:
        call = getattr(self._call, "state", None)
        if call is not None and _retried(response.status_code):
            call.last = f"HTTP {response.status_code}"

    def _generate(self, chats: list[Chat], cfg: SamplingConfig, seeds: list[int]) -> list[list[str]]:
        done = threading.Event()
        threading.Thread(target=self._watch, args=(done,), daemon=True).start()
        try:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(chats))) as pool:
                return list(pool.map(lambda a: self._complete(a[0], cfg, a[1]), zip(chats, seeds, strict=True)))
        finally:
            done.set()

    def _watch(self, done: threading.Event) -> None:
        """Every ``stall_notice`` seconds until ``done``, one warning if a request has waited that long."""
        while not done.wait(self.stall_notice):
            with self._lock:
                waiting = list(self._waiting)
            now = time.monotonic()
            stalled = [c for c in waiting if now - c.started >= self.stall_notice]
            if stalled:
                oldest = min(stalled, key=lambda c: c.started)
                logger.warning(
                    f"{self.url}: {len(stalled)} request(s) waiting for a reply, the oldest for "
                    f"{now - oldest.started:.0f} s (try {max(oldest.tries, 1)} of {self.max_retries + 1}, "
                    f"each up to {self.timeout:g} s; see --request-timeout)"
                )

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
        """One chat request: the client's retries, and a bad 200 reply retried within the same budget."""
        status_error, timeout_error, connection_error, api_error = self._errors
        call = self._call.state = _Tries()
        with self._lock:
            self._waiting.add(call)
        try:
            while True:
                # the client retries what it may, within what is left of this request's budget
                client = self.client.with_options(max_retries=max(0, self.max_retries - call.tries))
                try:
                    return client.chat.completions.create(**request)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # a 200 whose body was cut short
                    if call.tries > self.max_retries:
                        raise GenerationError(
                            f"{self.url}: gave up after {call.tries} tries (the last reply was not valid JSON: {exc})"
                        ) from exc
                    call.last = f"a reply that was not valid JSON ({exc})"
                    time.sleep(min(0.5 * 2 ** (call.tries - 1), 8.0))  # the client's backoff
        except status_error as exc:
            detail = f"HTTP {exc.status_code}: {exc.response.text[:500]}"
            if _retried(exc.status_code):
                raise GenerationError(f"{self.url}: gave up after {call.tries} tries ({detail})") from exc
            raise GenerationError(f"{self.url}: {detail}") from exc
        except timeout_error as exc:
            raise GenerationError(
                f"{self.url}: gave up after {call.tries} tries: no reply within {self.timeout:g} s to any; "
                "is the server stuck or overloaded? (--request-timeout sets the wait)"
            ) from exc
        except connection_error as exc:
            cause = exc.__cause__ or exc
            raise GenerationError(
                f"{self.url}: gave up after {call.tries} tries ({type(cause).__name__}: {cause}); "
                "is the server running and reachable?"
            ) from exc
        except api_error as exc:  # e.g. a reply that is not a chat completion
            raise GenerationError(f"{self.url}: unexpected reply: {exc}") from exc
        finally:
            with self._lock:
                self._waiting.discard(call)

    def close(self) -> None:
        self.client.close()

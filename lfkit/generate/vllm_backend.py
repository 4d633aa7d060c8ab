"""``vllm`` backend: the vLLM engine (:mod:`lfkit.generate.vllm_engine`) fed token ids.

Prompts are encoded in this process by LLaMA-Factory's template (the same
:class:`~lfkit.generate.prompts.PromptEncoder` as the ``hf`` backend) and sent as token ids to
the engine's ``/v1/completions``, so vLLM never applies a chat template of its own and both
backends see the same ids. One request per chat asks for its ``n`` samples with the chat's
seed; vLLM seeds sample ``j`` with ``seed + j``, lfkit's own per-sample rule (see
:data:`~lfkit.generate.base.SEED_STRIDE`), so a sample depends on its question and seed only.
Requests go out concurrently and the engine batches them.

LoRA: an adapter list (``"sft,dpo"``) is stacked into one exact adapter
(:func:`~lfkit.models.adapters.stack_adapters`) and loaded at run time, so one engine serves
every stage of a pipeline. The engine is either passed in (shared: a pipeline's
:class:`~lfkit.generate.vllm_engine.EnginePool`) or started here and closed with the backend.

Parallelism: ``tensor_parallel_size`` splits one model over GPUs inside the engine; data
parallelism is one engine per GPU group: one ``lfkit prefs ... --num-shards K --shard-id i`` per
group (``CUDA_VISIBLE_DEVICES``) and ``lfkit prefs merge``.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lfkit.generate.base import Chat, GenerationBackend, GenerationError, SamplingConfig, truncate_at_stop
from lfkit.generate.hf_backend import check_adapter
from lfkit.generate.prompts import PromptEncoder, offline_if_local, resolve_template
from lfkit.generate.vllm_engine import NUCLEUS_KEY, VLLMEngine, lora_rank_for
from lfkit.models.adapters import split_adapters, stack_adapters
from lfkit.models.embedded import resolve_model


def adapter_rank(path: str) -> int:
    return int(json.loads((Path(path) / "adapter_config.json").read_text())["r"])


class VLLMBackend(GenerationBackend):
    """Sampling through a vLLM engine. Engine options (``dtype``, ``max_model_len``, ...) are
    :class:`~lfkit.generate.vllm_engine.VLLMEngine`'s; ``engine_args`` passes any other of its
    keyword arguments, ``server_args`` extra ``vllm serve`` flags."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        template: str | None = None,
        engine: VLLMEngine | None = None,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = 4096,
        max_lora_rank: int | None = None,
        dtype: str = "auto",
        seed: int = 0,
        concurrency: int = 64,
        request_timeout: float = 3600.0,
        server_args: list[str] | None = None,
        engine_args: dict[str, Any] | None = None,
        trust_remote_code: bool = True,
    ) -> None:
        super().__init__()
        model = str(resolve_model(model))
        offline_if_local(model)
        adapters = [str(check_adapter(a)) for a in split_adapters(adapter)]
        try:
            self.adapter = stack_adapters(adapters) if adapters else None
        except ValueError as exc:
            raise GenerationError(f"--adapter-path {adapter}: {exc}") from exc
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.encoder = PromptEncoder(model, resolve_template(model, template), trust_remote_code=trust_remote_code)
        self.concurrency, self.request_timeout = concurrency, request_timeout
        rank = adapter_rank(self.adapter) if self.adapter else 0
        if engine is None:
            engine = VLLMEngine(
                model,
                dtype=dtype,
                max_model_len=max_model_len,
                enable_lora=self.adapter is not None,
                max_lora_rank=max_lora_rank or lora_rank_for(max(rank, 16)),
                seed=seed,
                tensor_parallel_size=tensor_parallel_size,
                gpu_memory_utilization=gpu_memory_utilization,
                server_args=server_args or (),
                **(engine_args or {}),
            )
            self._owns_engine = True
        else:
            if engine.model != model:
                raise GenerationError(f"the shared vLLM engine serves {engine.model}, not {model}")
            self._owns_engine = False
        if rank and rank > engine.max_lora_rank:
            raise GenerationError(
                f"adapter {self.adapter} has rank {rank}; the vLLM engine was started with max_lora_rank "
                f"{engine.max_lora_rank}"
            )
        self.engine = engine.start()
        self.served = engine.serve_adapter(self.adapter)

    def _request(self, ids: list[int], cfg: SamplingConfig, seed: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.served,
            "prompt": ids,
            "n": 1 if cfg.greedy else cfg.n,  # greedy: one decode, copied n times
            "temperature": cfg.temperature,
            "top_p": 1.0 if cfg.greedy or self.engine.nucleus else cfg.top_p,
            "max_tokens": cfg.max_new_tokens,
            "stop_token_ids": list(self.encoder.stop_token_ids),
            "skip_special_tokens": True,
            "include_stop_str_in_output": True,  # lfkit's rule: the stop string stays in the text
            "return_token_ids": True,  # decoded here, as the hf backend decodes (see _text)
        }
        if cfg.stop:
            body["stop"] = list(cfg.stop)
        if not cfg.greedy:
            body["seed"] = seed  # vLLM seeds sample j with seed + j: lfkit's per-sample rule
            if self.engine.nucleus and cfg.top_p < 1.0:
                body["vllm_xargs"] = {NUCLEUS_KEY: cfg.top_p}  # lfkit's top-p filter, not vLLM's full sort
        return self.engine.post("/v1/completions", body, timeout=self.request_timeout)

    def _generate(self, chats: list[Chat], cfg: SamplingConfig, seeds: list[int]) -> list[list[str]]:
        prompts = [self.encoder.encode(c) for c in chats]
        self.stats.prompt_tokens += sum(len(p) for p in prompts)
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            replies = list(pool.map(lambda a: self._request(a[0], cfg, a[1]), zip(prompts, seeds, strict=True)))
        out = []
        for reply in replies:
            choices = sorted(reply.get("choices") or [], key=lambda c: c.get("index") or 0)
            if not choices:
                raise GenerationError(f"the vLLM engine returned no choices: {str(reply)[:300]}")
            texts = [self._text(c, cfg) for c in choices]
            out.append(texts * cfg.n if cfg.greedy else texts)
            self.stats.completion_tokens += int((reply.get("usage") or {}).get("completion_tokens") or 0)
        return out

    def _text(self, choice: dict[str, Any], cfg: SamplingConfig) -> str:
        """A choice's text as the hf backend makes it: its token ids decoded by the same tokenizer, cut at
        the first stop token and after the first stop string. vLLM's own incremental detokenizer differs
        at the edges (it drops a multi-byte character cut by the token cap, which hf shows as U+FFFD)."""
        ids = choice.get("token_ids")
        text = self.encoder.decode_completion(ids)[0] if ids is not None else choice.get("text") or ""
        return truncate_at_stop(text, cfg.stop)[0]

    def close(self) -> None:
        if self._owns_engine:
            self.engine.close()

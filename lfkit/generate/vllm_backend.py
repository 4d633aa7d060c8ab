"""``vllm`` backend: offline ``vllm.LLM`` with ``SamplingParams(n=..., seed=...)``.

Prompts go in as token ids encoded by LLaMA-Factory's template (the same
:class:`~lfkit.generate.prompts.PromptEncoder` as the ``hf`` backend), so vLLM never
applies a chat template of its own. A LoRA adapter is served with a ``LoRARequest``.

Parallelism: ``tensor_parallel_size`` (and ``pipeline_parallel_size``) split one model
over GPUs inside this process. Data parallelism in offline vLLM means one engine per
GPU group in its own process: run one ``lfkit prefs ... --num-shards K --shard-id i``
per group (``CUDA_VISIBLE_DEVICES``) and ``lfkit prefs merge`` the outputs.
``data_parallel_size`` is passed to vLLM's engine for versions that run it in-process.

vLLM is an optional extra (``pip install 'lfkit[vllm]'``, GPU machines; it brings its
own torch) and is imported only when this backend is chosen.
"""

from __future__ import annotations

from typing import Any

from lfkit.generate.base import Chat, GenerationBackend, GenerationError, SamplingConfig, truncate_at_stop
from lfkit.generate.hf_backend import check_adapter
from lfkit.generate.prompts import PromptEncoder, offline_if_local, resolve_template
from lfkit.models.adapters import split_adapters
from lfkit.models.embedded import resolve_model


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise GenerationError(
            "the vllm backend needs vLLM, which is not installed: pip install 'lfkit[vllm]' "
            "(GPU machines only; vLLM brings its own torch). On CPU use --backend hf."
        ) from exc
    return vllm


class VLLMBackend(GenerationBackend):
    """Offline vLLM engine. Options mirror vLLM's engine arguments; ``engine_args`` passes any other."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        template: str | None = None,
        tensor_parallel_size: int = 1,
        pipeline_parallel_size: int = 1,
        data_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        max_lora_rank: int = 64,
        dtype: str = "auto",
        enforce_eager: bool = False,
        trust_remote_code: bool = True,
        engine_args: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        adapters = split_adapters(adapter)
        if len(adapters) > 1:
            raise GenerationError(
                "the vllm backend applies one LoRA adapter; merge the earlier ones into the base model "
                "first (llamafactory-cli export) and pass the last one"
            )
        adapter = adapters[0] if adapters else None
        vllm = import_vllm()
        from vllm.lora.request import LoRARequest

        model = resolve_model(model)
        offline_if_local(model)
        self.encoder = PromptEncoder(model, resolve_template(model, template), trust_remote_code=trust_remote_code)
        kwargs: dict[str, Any] = {
            "model": model,
            "tokenizer": model,
            "dtype": dtype,
            "tensor_parallel_size": tensor_parallel_size,
            "pipeline_parallel_size": pipeline_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "max_model_len": max_model_len,
            "enforce_eager": enforce_eager,
            "trust_remote_code": trust_remote_code,
            "enable_lora": adapter is not None,
            "max_lora_rank": max_lora_rank,
            "enable_prefix_caching": True,  # n samples and many questions share long schema prompts
        }
        if data_parallel_size > 1:
            kwargs["data_parallel_size"] = data_parallel_size
        kwargs.update(engine_args or {})
        self.llm = vllm.LLM(**kwargs)
        self.lora = LoRARequest("lfkit-adapter", 1, str(check_adapter(adapter))) if adapter else None
        self._sampling_params = vllm.SamplingParams

    def _generate(self, chats: list[Chat], cfg: SamplingConfig, seeds: list[int]) -> list[list[str]]:
        prompts = [{"prompt_token_ids": self.encoder.encode(c)} for c in chats]
        self.stats.prompt_tokens += sum(len(p["prompt_token_ids"]) for p in prompts)
        params = [
            self._sampling_params(
                n=cfg.n,
                temperature=cfg.temperature,
                top_p=cfg.top_p if not cfg.greedy else 1.0,
                max_tokens=cfg.max_new_tokens,
                seed=seed,
                stop_token_ids=self.encoder.stop_token_ids,
                skip_special_tokens=True,
                # lfkit's rule: the stop string stays in the text (see truncate_at_stop)
                stop=list(cfg.stop) or None,
                include_stop_str_in_output=True,
            )
            for seed in seeds
        ]
        results = self.llm.generate(prompts, params, lora_request=self.lora, use_tqdm=False)
        out = []
        for res in results:
            # vLLM already cut there; the same rule once more keeps the backends identical to the character
            out.append([truncate_at_stop(o.text, cfg.stop)[0] for o in res.outputs])
            self.stats.completion_tokens += sum(len(o.token_ids) for o in res.outputs)
        return out

    def close(self) -> None:
        self.llm = None

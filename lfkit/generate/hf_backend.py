"""``hf`` backend: transformers (+ peft LoRA), batched over prompts with left padding.

One ``generate`` call decodes ``batch_size`` prompts x ``n`` samples together. Sampling is
done by :class:`SeededSampler`, which draws every row from its own ``torch.Generator``
seeded ``seed + index*1000 + j``: a sample depends on its question and seed only, not on
which other prompts shared its batch (so batched runs, resumed runs and the seeds'
one-prompt loop draw from the same per-sample streams).
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any

from lfkit.generate.base import Chat, GenerationBackend, GenerationError, SamplingConfig
from lfkit.generate.prompts import PromptEncoder, offline_if_local, resolve_model, resolve_template

logger = logging.getLogger(__name__)


def pick_device(device: str | None) -> str:
    """``auto``/None -> cuda when available; ``cuda*`` without CUDA falls back to CPU (as the seeds did)."""
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("device %s requested but CUDA is not available: using cpu", device)
        return "cpu"
    return device


def check_adapter(adapter: str | os.PathLike[str]) -> Path:
    path = Path(adapter)
    if not (path / "adapter_config.json").is_file():
        raise GenerationError(f"--adapter-path {path}: no adapter_config.json there (expected a PEFT LoRA folder)")
    return path


class SeededSampler:
    """Logits processor that samples each row from its own generator (temperature + top-p).

    It returns scores that are -inf everywhere but at the drawn token, and generation runs
    in greedy mode, so the draw is what gets appended. Top-p keeps the most probable
    tokens until their mass reaches top_p, as transformers' TopPLogitsWarper does (ties at
    the cut are all kept). The cut is looked for in the top ``k`` tokens (enough whenever
    their mass reaches top_p, i.e. for any trained model) and the vocabulary is sorted
    only otherwise; each row then draws one uniform from its own generator.
    """

    def __init__(self, temperature: float, top_p: float, row_seeds: list[int], device: Any, k: int = 1024) -> None:
        import torch

        self.temperature, self.top_p, self.k = temperature, top_p, k
        gen_device = torch.device(device)
        self.generators = [torch.Generator(device=gen_device).manual_seed(int(s)) for s in row_seeds]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            vals = probs.topk(min(self.k, probs.shape[-1]), dim=-1).values
            if bool((vals.sum(-1) < self.top_p).any()):  # nucleus wider than k: sort everything
                vals = probs.sort(dim=-1, descending=True).values
            above = vals.cumsum(-1) - vals
            n_keep = (above < self.top_p).sum(-1, keepdim=True)
            # Cut by value (the last kept probability), not by position: ties and the
            # order of equal values then cannot change the nucleus between batch shapes.
            threshold = vals.gather(1, n_keep - 1)
            probs = probs * (probs >= threshold)
        # Invert the CDF in token-id order, so that tiny float differences between a batched
        # and a single forward move the draw only when it lands on a token boundary.
        cdf = probs.cumsum(-1)
        u = torch.cat([torch.rand(1, generator=g, device=g.device) for g in self.generators]).to(cdf.device)
        tokens = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1), right=True).clamp_(max=cdf.shape[-1] - 1)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, tokens, 0.0)
        return out


class HFBackend(GenerationBackend):
    """transformers + peft, CPU or CUDA.

    Options: ``device`` (auto | cpu | cuda | cuda:N), ``dtype`` (auto | float32 | bfloat16 |
    float16), ``batch_size`` (prompts per generate call; each yields n rows),
    ``merge_adapter`` (fold the LoRA into the weights for faster decoding), ``share_prompt``
    (encode each prompt once for its n samples; see :meth:`_prefill`).
    """

    name = "hf"

    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        template: str | None = None,
        device: str | None = "auto",
        dtype: str = "auto",
        batch_size: int = 8,
        merge_adapter: bool = True,
        share_prompt: bool = True,
        trust_remote_code: bool = True,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        model = resolve_model(model)
        offline_if_local(model)
        import torch
        from transformers import AutoModelForCausalLM

        self.encoder = PromptEncoder(model, resolve_template(model, template), trust_remote_code=trust_remote_code)
        self.device = pick_device(device)
        if dtype == "auto":
            torch_dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        else:
            torch_dtype = getattr(torch, dtype)
        try:
            net = AutoModelForCausalLM.from_pretrained(
                model, torch_dtype=torch_dtype, trust_remote_code=trust_remote_code
            )
        except OSError as exc:
            raise GenerationError(f"cannot load model {model}: {exc}") from exc
        if adapter:
            from peft import PeftModel

            net = PeftModel.from_pretrained(net, str(check_adapter(adapter)))
            if merge_adapter:
                net = net.merge_and_unload()
        self.model = net.to(self.device).eval()
        self.batch_size = batch_size
        self.share_prompt = share_prompt
        # The prefill needs no logits: ask for the last position only where the model allows.
        forward_params = inspect.signature(self.model.forward).parameters
        self._logits_kw = {"logits_to_keep": 1} if "logits_to_keep" in forward_params else {}
        self.model_path, self.adapter = model, adapter

    def _generate(self, chats: list[Chat], cfg: SamplingConfig, seeds: list[int]) -> list[list[str]]:
        prompts = [self.encoder.encode(c) for c in chats]
        self.stats.prompt_tokens += sum(len(p) for p in prompts)
        # Longest first: similar lengths share a batch (less padding), and an OOM shows at once.
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        out: list[list[str]] = [[] for _ in chats]
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            texts = self.generate_ids([prompts[i] for i in idx], cfg, [seeds[i] for i in idx])
            for i, t in zip(idx, texts, strict=True):
                out[i] = t
        return out

    def generate_ids(self, prompts: list[list[int]], cfg: SamplingConfig, seeds: list[int]) -> list[list[str]]:
        """One ``model.generate`` call for already-encoded prompts (n completions each)."""
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        reps = 1 if cfg.greedy else cfg.n  # greedy: decode once, copy
        width = max(len(p) for p in prompts)
        pad = self.encoder.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
        attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        extra = {}
        if reps > 1:
            if self.share_prompt and width > 1:
                extra["past_key_values"] = self._prefill(input_ids, attention_mask, reps)
            input_ids = input_ids.repeat_interleave(reps, dim=0)
            attention_mask = attention_mask.repeat_interleave(reps, dim=0)
        processors = LogitsProcessorList()
        if not cfg.greedy:
            row_seeds = [s + j for s in seeds for j in range(cfg.n)]
            processors.append(SeededSampler(cfg.temperature, cfg.top_p, row_seeds, self.device))
        gen_cfg = GenerationConfig(
            do_sample=False,
            num_beams=1,
            max_new_tokens=cfg.max_new_tokens,
            eos_token_id=self.encoder.stop_token_ids,
            pad_token_id=pad,
        )
        with torch.inference_mode():
            seqs = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=gen_cfg,
                logits_processor=processors,
                **extra,
            )
        texts = []
        for row in seqs[:, width:].tolist():
            text, n_tokens = self.encoder.decode_completion(row)
            texts.append(text)
            self.stats.completion_tokens += n_tokens * (cfg.n if cfg.greedy else 1)
        return [[texts[k * reps + (0 if cfg.greedy else j)] for j in range(cfg.n)] for k in range(len(prompts))]

    def _prefill(self, input_ids: Any, attention_mask: Any, reps: int) -> Any:
        """KV cache of every prompt but its last token, computed once and repeated ``reps`` times.

        transformers' ``num_return_sequences`` copies a prompt n times before the forward
        pass, so its prefill (most of the cost for long schema prompts) runs n times. Here
        it runs once per prompt; ``generate`` then feeds only the last prompt token. The
        positions follow the attention mask, as ``generate`` computes them for left padding.
        """
        import torch
        from transformers import DynamicCache

        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        with torch.inference_mode():
            self.model(
                input_ids=input_ids[:, :-1],
                attention_mask=attention_mask[:, :-1],
                position_ids=position_ids[:, :-1],
                past_key_values=cache,
                use_cache=True,
                **self._logits_kw,
            )
        cache.batch_repeat_interleave(reps)
        return cache

    def close(self) -> None:
        self.model = None

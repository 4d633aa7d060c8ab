"""``hf`` backend: transformers (+ peft LoRA), batched over prompts with left padding.

One ``generate`` call decodes ``batch_size`` prompts x ``n`` samples together. Sampling is
done by :class:`SeededSampler`, which draws every row from its own ``torch.Generator``
seeded ``seed + index*1000 + j``: a sample depends on its question and seed only, not on
which other prompts shared its batch (so batched runs, resumed runs and a one-prompt-at-a-time
loop draw from the same per-sample streams).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from pathlib import Path
from typing import Any

from lfkit.generate.base import Chat, GenerationBackend, GenerationError, SamplingConfig, truncate_at_stop
from lfkit.generate.prompts import PromptEncoder, offline_if_local, resolve_template
from lfkit.models.adapters import split_adapters
from lfkit.models.embedded import resolve_model

logger = logging.getLogger(__name__)


def pick_device(device: str | None) -> str:
    """``auto``/None -> cuda when available; ``cuda*`` without CUDA falls back to CPU with a warning."""
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


class StopOnStrings:
    """Stopping criterion: a row is finished once its generated text contains a stop string.

    Each step decodes only the last few generated tokens of every row (enough for the
    longest stop string plus a margin: a token decodes to at least one character, special
    tokens aside), so the check costs no more per step as completions grow. A stop string
    that spans token boundaries, or ends inside a token, is found all the same; the caller
    cuts the text with :func:`~lfkit.generate.base.truncate_at_stop`. ``lengths[row]`` is the
    number of generated tokens when the row stopped (rows then get padding until the batch ends).
    """

    def __init__(self, stop: tuple[str, ...], tokenizer: Any, prompt_width: int, rows: int) -> None:
        self.stop, self.tokenizer, self.width = stop, tokenizer, prompt_width
        self.window = max(len(s) for s in stop) + 4
        self.lengths: list[int | None] = [None] * rows

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        generated = input_ids.shape[1] - self.width
        tails = input_ids[:, self.width + max(0, generated - self.window) :].tolist()
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        done = []
        for row, text in enumerate(texts):
            hit = self.lengths[row] is not None or any(s in text for s in self.stop)
            if hit and self.lengths[row] is None:
                self.lengths[row] = generated
            done.append(hit)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


@functools.cache
def _reserved_layer() -> type:
    from transformers.cache_utils import DynamicLayer

    class ReservedLayer(DynamicLayer):
        """A ``DynamicLayer`` that writes into a buffer with room reserved after its content."""

        def __init__(self, reserve: int) -> None:
            super().__init__()
            self.reserve = reserve
            self.buffers: tuple[Any, Any] | None = None
            self.length = 0

        def update(self, key_states: Any, value_states: Any, cache_kwargs: Any = None) -> tuple[Any, Any]:
            if not self.is_initialized:
                self.lazy_initialization(key_states)
            new = key_states.shape[-2]
            # after a batch reshape (repeat / select) or a crop, keys is not our view: move it to a new buffer
            ours = (
                self.buffers is not None
                and self.keys.data_ptr() == self.buffers[0].data_ptr()
                and self.keys.shape == (*self.buffers[0].shape[:-2], self.length, self.buffers[0].shape[-1])
            )
            if not ours or self.length + new > self.buffers[0].shape[-2]:
                self.length = self.keys.shape[-2] if self.keys.numel() else 0
                shape = (*key_states.shape[:-2], self.length + new + self.reserve, key_states.shape[-1])
                self.buffers = (key_states.new_empty(shape), value_states.new_empty(shape))
                if self.length:
                    self.buffers[0][..., : self.length, :].copy_(self.keys)
                    self.buffers[1][..., : self.length, :].copy_(self.values)
            end = self.length + new
            self.buffers[0][..., self.length : end, :].copy_(key_states)
            self.buffers[1][..., self.length : end, :].copy_(value_states)
            self.length = end
            self.keys, self.values = self.buffers[0][..., :end, :], self.buffers[1][..., :end, :]
            return self.keys, self.values

    return ReservedLayer


def reserved_cache(reserve: int) -> Any:
    """A ``DynamicCache`` whose layers write new keys/values in place, into room reserved ahead.

    transformers' ``DynamicLayer`` appends each decoding step with ``torch.cat``: a new copy
    of the whole KV cache per layer and step. On CPU that copy (a fresh multi-megabyte buffer,
    page faults included) took half of a batched decode's time in the profile, and it grows with
    rows x context, so it ate what batching saves. A layer here keeps ``reserve`` free positions
    after its content (``max_new_tokens`` of them: no re-allocation while decoding) and hands
    attention a view of the filled part. Batch reshapes (``batch_repeat_interleave``,
    ``batch_select_indices``) leave plain tensors, moved into a new buffer on the next write.
    """
    from transformers import DynamicCache

    cache = DynamicCache()
    cache.layer_class_to_replicate = functools.partial(_reserved_layer(), reserve)  # one per model layer, lazily
    return cache


GROUPED_SDPA = "lfkit_grouped_sdpa"
# A common prefix shorter than this is not worth a separate forward pass.
MIN_SHARED_PREFIX = 16


def common_prefix(prompts: list[list[int]]) -> int:
    """Length of the prefix all prompts share, leaving each at least its last token."""
    first = prompts[0]
    limit = min(len(p) for p in prompts) - 1
    n = 0
    while n < limit and all(p[n] == first[n] for p in prompts):
        n += 1
    return n


def grouped_sdpa(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any) -> tuple[Any, None]:
    """transformers' ``sdpa`` attention, minus the K/V copy for grouped-query attention under a mask.

    With left padding there is a mask, and transformers then repeats every K/V head
    ``num_key_value_groups`` times before each attention call: a copy of the whole KV cache
    per layer and step, the largest cost of batched decoding on CPU. Folding the query
    heads of a group into the length axis computes the same attention on the K/V as they are.
    """
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    plain = groups == 1 or attention_mask is None or attention_mask.shape[1] != 1
    if plain or kwargs.get("dropout") or kwargs.get("output_attentions"):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    b, heads, q_len, dim = query.shape
    # head h = k * groups + r (repeat_kv's order) -> rows (r, t) of K/V head k
    query = query.reshape(b, heads // groups, groups * q_len, dim)
    mask = attention_mask[:, :, :, : key.shape[-2]]
    if q_len > 1:
        mask = mask.repeat(1, 1, groups, 1)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    out = sdpa(query, key, value, attn_mask=mask, scale=kwargs.get("scaling"))
    return out.reshape(b, heads, q_len, dim).transpose(1, 2).contiguous(), None


def use_grouped_sdpa(model: Any) -> bool:
    """Switch a model from ``sdpa`` to :func:`grouped_sdpa` when it uses grouped-query attention."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    config = model.config
    heads, kv_heads = getattr(config, "num_attention_heads", 0), getattr(config, "num_key_value_heads", 0)
    if config._attn_implementation != "sdpa" or not kv_heads or kv_heads == heads:
        return False
    AttentionInterface.register(GROUPED_SDPA, grouped_sdpa)
    AttentionMaskInterface.register(GROUPED_SDPA, sdpa_mask)
    model.set_attn_implementation(GROUPED_SDPA)
    return model.config._attn_implementation == GROUPED_SDPA


class HFBackend(GenerationBackend):
    """transformers + peft, CPU or CUDA.

    Options: ``device`` (auto | cpu | cuda | cuda:N), ``dtype`` (auto | float32 | bfloat16 |
    float16), ``batch_size`` (prompts per generate call; each yields n rows),
    ``merge_adapter`` (fold the LoRA into the weights for faster decoding), ``share_prompt``
    (encode each prompt once for its n samples; see :meth:`_prefill`), ``grouped_attention``
    (no K/V copies for grouped-query attention under padding; see :func:`grouped_sdpa`).
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
        grouped_attention: bool = True,
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
            net = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype, trust_remote_code=trust_remote_code)
        except OSError as exc:
            raise GenerationError(f"cannot load model {model}: {exc}") from exc
        self.grouped_attention = grouped_attention and use_grouped_sdpa(net)
        # The prefill needs no logits: ask for the last position only where the model allows.
        forward_params = inspect.signature(net.forward).parameters
        self._logits_kw = {"logits_to_keep": 1} if "logits_to_keep" in forward_params else {}
        adapters = split_adapters(adapter)
        if adapters:
            from peft import PeftModel

            # "sft,dpo": each adapter was trained on the model with the earlier ones merged in
            # (LLaMA-Factory's create_new_adapter), so merge them in order; the last may stay unmerged.
            for k, path in enumerate(adapters):
                net = PeftModel.from_pretrained(net, str(check_adapter(path)))
                if merge_adapter or k < len(adapters) - 1:
                    net = net.merge_and_unload()
        self.model = net.to(self.device).eval()
        self.batch_size = batch_size
        self.share_prompt = share_prompt
        self.model_path, self.adapter = model, adapter

    def _generate(self, chats: list[Chat], cfg: SamplingConfig, seeds: list[int]) -> list[list[str]]:
        prompts = [self.encoder.encode(c) for c in chats]
        self.stats.prompt_tokens += sum(len(p) for p in prompts)
        # In token order: prompts over the same schema (a shared prefix) land in the same batch.
        order = sorted(range(len(prompts)), key=lambda i: prompts[i])
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
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        reps = 1 if cfg.greedy else cfg.n  # greedy: decode once, copy
        pad = self.encoder.pad_token_id
        shared = common_prefix(prompts) if self.share_prompt else 0
        if shared < MIN_SHARED_PREFIX:
            shared = 0
        # [shared prefix][padding][rest of the prompt]: the padding sits where the prompts start
        # to differ; positions follow the attention mask, so every token keeps its position.
        width = max(len(p) for p in prompts) - shared
        rows = [p[:shared] + [pad] * (width - len(p) + shared) + p[shared:] for p in prompts]
        masks = [[1] * shared + [0] * (width - len(p) + shared) + [1] * (len(p) - shared) for p in prompts]
        input_ids = torch.tensor(rows, device=self.device)
        attention_mask = torch.tensor(masks, device=self.device)
        reserve = cfg.max_new_tokens + 1  # room for every decoding step's keys/values, one spare
        if self.share_prompt and (shared or reps > 1) and input_ids.shape[1] > 1:
            cache = self._prefill(input_ids, attention_mask, shared, reps, reserve)
        else:
            cache = reserved_cache(reserve)
        input_ids = input_ids.repeat_interleave(reps, dim=0)
        attention_mask = attention_mask.repeat_interleave(reps, dim=0)
        width = input_ids.shape[1]
        processors = LogitsProcessorList()
        if not cfg.greedy:
            row_seeds = [s + j for s in seeds for j in range(cfg.n)]
            processors.append(SeededSampler(cfg.temperature, cfg.top_p, row_seeds, self.device))
        stopper = StopOnStrings(cfg.stop, self.encoder.tokenizer, width, input_ids.shape[0]) if cfg.stop else None
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
                stopping_criteria=StoppingCriteriaList([stopper] if stopper else []),
                past_key_values=cache,
            )
        texts = []
        for r, row in enumerate(seqs[:, width:].tolist()):
            text, n_tokens = self.encoder.decode_completion(row)
            if stopper:
                text, stopped = truncate_at_stop(text, cfg.stop)
                if stopped and stopper.lengths[r] is not None:
                    n_tokens = stopper.lengths[r]  # not the padding that followed
            texts.append(text)
            self.stats.completion_tokens += n_tokens * (cfg.n if cfg.greedy else 1)
        return [[texts[k * reps + (0 if cfg.greedy else j)] for j in range(cfg.n)] for k in range(len(prompts))]

    def _prefill(self, input_ids: Any, attention_mask: Any, shared: int, reps: int, reserve: int) -> Any:
        """KV cache of the batch's prompts but their last token, each token encoded once.

        transformers' ``num_return_sequences`` copies a prompt n times before the forward
        pass, and a batch encodes the schema every prompt repeats: for long schema prompts
        that prefill is most of the cost. Here the ``shared`` prefix is encoded once for the
        batch, the rest once per prompt, and the cache is then repeated for the n samples;
        ``generate`` feeds only the last prompt token. Positions follow the attention mask,
        as ``generate`` computes them.
        """
        import torch

        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        cache = reserved_cache(reserve)
        with torch.inference_mode():
            if shared:
                self.model(
                    input_ids=input_ids[:1, :shared],
                    position_ids=position_ids[:1, :shared],
                    past_key_values=cache,
                    use_cache=True,
                    **self._logits_kw,
                )
                cache.batch_repeat_interleave(input_ids.shape[0])
            if input_ids.shape[1] - 1 > shared:
                self.model(
                    input_ids=input_ids[:, shared:-1],
                    attention_mask=attention_mask[:, :-1],
                    position_ids=position_ids[:, shared:-1],
                    past_key_values=cache,
                    use_cache=True,
                    **self._logits_kw,
                )
        if reps > 1:
            cache.batch_repeat_interleave(reps)
        return cache

    def close(self) -> None:
        self.model = None

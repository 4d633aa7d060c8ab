"""lfkit's nucleus (top-p) filter for the CPU vLLM engine: a vLLM logits processor.

Why: vLLM's CPU sampler applies top-p by sorting the whole vocabulary of every row at every decode
step (``apply_top_k_top_p_pytorch``). For SmolLM2 (49,152 tokens) at 96 rows that sort takes about
0.2 s of a 0.6 s step on two cores. A trained model's nucleus almost always lies among its most
likely few dozen tokens, so this filter sorts the top 64 (then 1,024; only rows whose nucleus is wider
still sort everything): ~0.015 s at 96 rows. It keeps the tokens vLLM's rule keeps (drop the least
likely tokens whose total probability is at most ``1 - p``; the most likely token always stays), up
to float rounding at the nucleus's edge, and vLLM's seeded noise then picks among them as before.

lfkit asks vLLM for ``top_p=1`` (its sort then never runs) and sends the nucleus as
``vllm_xargs={"lfkit_top_p": p}``; the engine loads this class with ``--logits-processors
lfkit_nucleus:NucleusLogitsProcessor`` from this folder (:mod:`lfkit.generate.vllm_engine`).
It runs inside the engine's own virtualenv, so it imports torch and vLLM only, never lfkit.
"""

from __future__ import annotations

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

KEY = "lfkit_top_p"
WIDTHS = (64, 1024)  # tried in turn before sorting the whole vocabulary


def request_top_p(params) -> float | None:
    """The request's nucleus mass, or None when it keeps every token."""
    value = (params.extra_args or {}).get(KEY)
    if value is None:
        return None
    value = float(value)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{KEY} must be in (0, 1], got {value}")
    return value if value < 1.0 else None


def nucleus_keep(logits: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Which tokens stay in each row's nucleus of mass ``top_p`` ([rows, vocab] bool; ``top_p`` is [rows, 1]).

    A token stays when the tokens more likely than it hold less than ``top_p`` of the mass (vLLM's and
    transformers' rule). Rows whose nucleus is wider than the last width go through vLLM's own arithmetic
    (ascending sort, drop the tail whose mass is at most ``1 - p``), so a flat row, whose edge lies among
    many near-equal tiny probabilities, rounds exactly as vLLM does.
    """
    probs = logits.softmax(dim=-1, dtype=torch.float32)
    keep = torch.empty_like(probs, dtype=torch.bool)
    todo = torch.arange(probs.shape[0], device=probs.device)
    for width in WIDTHS:
        if width >= probs.shape[1]:
            break
        top = probs[todo].topk(width, dim=-1).values  # most likely first
        mass = top.cumsum(dim=-1)
        wanted = top_p[todo]
        # The nucleus ends inside the top `width` once their mass reaches p (the next token would go).
        done = (mass[:, -1:] >= wanted).squeeze(1)
        kept = ((mass - top) < wanted).sum(dim=-1, keepdim=True)
        rows = todo[done]
        keep[rows] = probs[rows] >= top.gather(1, kept - 1)[done]
        todo = todo[~done]
        if todo.numel() == 0:
            return keep
    ascending, order = logits[todo].float().sort(dim=-1)
    tail = ascending.softmax(dim=-1).cumsum(dim=-1) <= 1 - top_p[todo]
    tail[:, -1] = False
    keep[todo] = ~torch.empty_like(tail).scatter_(1, order, tail)
    return keep


class NucleusLogitsProcessor(LogitsProcessor):
    """Top-p for the requests that carry ``lfkit_top_p``; other rows pass untouched."""

    @classmethod
    def validate_params(cls, sampling_params) -> None:
        request_top_p(sampling_params)

    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool) -> None:
        self.top_p: dict[int, float] = {}  # batch row -> nucleus mass
        self.device = device
        self.rows: torch.Tensor | None = None
        self.masses: torch.Tensor | None = None

    def is_argmax_invariant(self) -> bool:
        return True  # the most likely token always stays: applied after temperature, to sampled rows only

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if process_dict_updates(self.top_p, batch_update, lambda params, _prompt, _output: request_top_p(params)):
            self.rows = None

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.top_p:
            return logits
        if self.rows is None:
            rows = sorted(self.top_p)
            self.rows = torch.tensor(rows, dtype=torch.long, device=logits.device)
            self.masses = torch.tensor([[self.top_p[r]] for r in rows], dtype=torch.float32, device=logits.device)
        chosen = logits[self.rows]
        logits[self.rows] = chosen.masked_fill_(~nucleus_keep(chosen, self.masses), float("-inf"))
        return logits

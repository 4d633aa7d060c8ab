"""Benchmark: batched ``hf`` sampling vs a one-prompt-at-a-time loop (the usual sampling script).

Run:  .venv/bin/python benchmarks/bench_sampling.py              (CPU: ~7 minutes on 2 cores)
      .venv/bin/python benchmarks/bench_sampling.py --ablation   (adds hf without prompt sharing)
      (the vLLM engine against this hf backend: benchmarks/bench_vllm.py)

Both sides sample the same ``n`` completions for the same prompts with the same model
weights, prompt ids (LLaMA-Factory template via lfkit.generate) and sampling settings:

* seeds loop -- what ``step1_generate_rejected_data.py`` does: for each prompt,
  ``torch.manual_seed(seed + index*1000)`` and one ``model.generate(num_return_sequences=n)``;
* lfkit hf -- :class:`lfkit.generate.hf_backend.HFBackend`: ``batch_size`` prompts x n rows per
  ``generate`` call, left padding, per-row seeded sampling, each prompt encoded once for its
  n samples, grouped-query attention without K/V copies.

Prompts are real SFT prompts (schema + question) of the Lahman demo corpus. Tokens/s counts
generated tokens up to and including the stop token; both sides decode the same number of
tokens per sample up to sampling noise. Methods alternate ``--repeat`` times and each keeps
its best time, so load from other processes distorts the ratio less. The model is ``smollm2-135m`` when it
is prepared (``lfkit models prepare smollm2-135m``), else ``tiny``; the script says which.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pick_model(name: str | None) -> str:
    from lfkit.models.embedded import prepared_models

    if name:
        return name
    ready = {m["name"] for m in prepared_models() if m["prepared"]}
    return "smollm2-135m" if "smollm2-135m" in ready else "tiny"


def demo_chats(count: int) -> list[list[dict[str, str]]]:
    from lfkit.data.demo import build_demo_corpus
    from lfkit.data.prompts import chat_messages
    from lfkit.data.sft import SFTOptions, build_sft
    from lfkit.io import read_rows

    with tempfile.TemporaryDirectory(prefix="lfkit-bench-") as tmp:
        build_demo_corpus(Path(tmp) / "corpus", seed=0)
        build_sft(Path(tmp) / "corpus", "train", Path(tmp) / "sft.json", options=SFTOptions(limit=count))
        rows = read_rows(Path(tmp) / "sft.json")
    return [chat_messages(r["instruction"], r["input"]) for r in rows]


def one_prompt_loop(model, enc, prompts: list[list[int]], cfg) -> tuple[int, float]:
    """The usual sampling script's loop: stock transformers model, one prompt per generate call, n samples via
    num_return_sequences (prompt ids and stop tokens from the same LLaMA-Factory template)."""
    import torch
    from transformers import GenerationConfig

    gen_cfg = GenerationConfig(
        do_sample=True,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=0,
        num_return_sequences=cfg.n,
        max_new_tokens=cfg.max_new_tokens,
        eos_token_id=enc.stop_token_ids,
        pad_token_id=enc.pad_token_id,
    )
    tokens = 0
    start = time.perf_counter()
    for index, ids in enumerate(prompts):
        torch.manual_seed(cfg.seed + index * 1000)
        input_ids = torch.tensor([ids], device=model.device)
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids, attention_mask=torch.ones_like(input_ids), generation_config=gen_cfg
            )
        for row in out[:, len(ids) :].tolist():
            tokens += enc.decode_completion(row)[1]
    return tokens, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="embedded model name or folder (default: smollm2-135m if prepared, else tiny)")
    parser.add_argument("--prompts", type=int, default=8, help="number of demo prompts")
    parser.add_argument("--n", type=int, default=4, help="samples per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generate call (lfkit hf)")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeat", type=int, default=2, help="runs per method; the best time counts")
    parser.add_argument("--ablation", action="store_true", help="also time hf without prompt sharing")
    parser.add_argument("--json", help="write the results here as JSON")
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM

    from lfkit.generate import SamplingConfig, get_backend

    model = pick_model(args.model)
    chats = demo_chats(args.prompts)
    cfg = SamplingConfig(
        n=args.n, temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, seed=args.seed
    )
    backend = get_backend("hf", model=model, device=args.device, batch_size=args.batch_size)
    prompts = [backend.encoder.encode(c) for c in chats]
    # The baseline model is stock transformers, as such scripts load it (same weights).
    stock = AutoModelForCausalLM.from_pretrained(backend.model_path, dtype=next(backend.model.parameters()).dtype)
    stock = stock.to(backend.device).eval()
    lengths = sorted(len(p) for p in prompts)
    print(f"model: {model} ({backend.model_path}), template {backend.encoder.template_name}, device {backend.device}")
    print(
        f"{len(chats)} demo prompts ({lengths[0]}-{lengths[-1]} tokens), n={cfg.n}, max_new_tokens={cfg.max_new_tokens}"
    )

    # Warm-up on both paths (allocator, kernels), not timed.
    warm = SamplingConfig(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=4, seed=0)
    one_prompt_loop(stock, backend.encoder, prompts[:1], warm)
    backend.generate(chats[:2], warm)

    results = {"model": model, "device": backend.device, "prompts": len(chats), "prompt_tokens": lengths}
    results.update(n=cfg.n, max_new_tokens=cfg.max_new_tokens, batch_size=args.batch_size)

    def report(key: str, label: str, tokens: int, seconds: float) -> float:
        rate = tokens / seconds
        results[key] = {"tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(rate, 2)}
        print(f"{label:<44} {tokens:6d} tokens in {seconds:8.2f} s = {rate:8.2f} tok/s")
        return rate

    def run_hf(share_prompt: bool) -> tuple[int, float]:
        backend.share_prompt = share_prompt
        backend.stats.completion_tokens = 0
        start = time.perf_counter()
        outs = backend.generate(chats, cfg)
        assert [len(o) for o in outs] == [cfg.n] * len(chats)
        return backend.stats.completion_tokens, time.perf_counter() - start

    # Alternate the methods and keep each one's best time: other load on the machine then
    # slows a method only if it hits every one of its repeats.
    runs: dict[str, list[tuple[int, float]]] = {"loop": [], "hf": [], "hf_batch_only": []}
    for _ in range(args.repeat):
        runs["loop"].append(one_prompt_loop(stock, backend.encoder, prompts, cfg))
        runs["hf"].append(run_hf(share_prompt=True))
        if args.ablation:
            runs["hf_batch_only"].append(run_hf(share_prompt=False))
    best = {k: (v[0][0], min(t for _, t in v)) for k, v in runs.items() if v}
    assert all(len({tok for tok, _ in v}) == 1 for v in runs.values() if v), "repeats sampled differently"
    results["repeat"] = args.repeat
    loop_rate = report("one_prompt_loop", "one-prompt loop (1 prompt x n per call):", *best["loop"])
    hf_rate = report("lfkit_hf", f"lfkit hf ({args.batch_size} prompts x n per call):", *best["hf"])
    if args.ablation:
        report("lfkit_hf_batch_only", "lfkit hf, batching only (no prompt sharing):", *best["hf_batch_only"])
    results["speedup"] = round(hf_rate / loop_rate, 2)
    print(f"speedup (tokens/s): {results['speedup']:.2f}x  (target >= 3x on CPU)")
    del stock

    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

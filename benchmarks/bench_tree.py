"""Benchmark: revision trees built breadth-first across questions vs one question at a time.

Run:  .venv/bin/python benchmarks/bench_tree.py                          (CPU hf, 16 trees per side, depth 2)
      .venv/bin/python benchmarks/bench_tree.py --questions 4 --max-depth 2 --max-new-tokens 32   (smallest)
      .venv/bin/python benchmarks/bench_tree.py --adapter-path work/saves/smollm2-135m/sft
      .venv/bin/python benchmarks/bench_tree.py --backend vllm --questions 256 --max-new-tokens 256  (GPU)

Both sides build the same revision trees (:class:`lfkit.tree.build.WaveBuilder`: same
backend object, model, adapter, prompts, seeds, sampling settings, labelling) for the
same demo-corpus train questions:

* one question at a time -- ReSQLver's loop (``tree/tree_builder.py``): a question's tree is
  finished before the next one starts, so each generate call holds only that question's
  frontier (``sample_num`` prompts at depth 1, its few wrong nodes below): wave size 1;
* lfkit -- ``lfkit tree build --wave-size Q``: the frontier of all Q questions at a depth is
  ONE generate call (the hf backend's ``--batch-size`` is set to hold it whole).

Trees/minute counts finished trees over wall-clock time (generation, SQL labelling and
feedback included). Seeds depend on the question and the parent node only, so both sides
sample the same trees up to batch-shape float noise; the script reports how many trees came
out identical. Methods alternate ``--repeat`` times and each keeps its best time, so load
from other processes distorts the ratio less; the load average is printed with the table.
The model is SmolLM2-135M (``--preset smollm2-135m``), the SFT adapter when ``--adapter-path``
is given, else the base model.

Measured 2026-12-03 on the 2-core CPU machine (AMD EPYC), SmolLM2 + the demo's SFT adapter,
``--questions 16 --max-depth 2 --max-new-tokens 64``, quiet (load 1-2): one question at a time
3.25 trees/min (30 generate calls, 295 s), lfkit 11.80 trees/min (2 calls, 81 s): **3.63x**,
16/16 trees identical. Before the hf backend wrote its KV cache in place (``reserved_cache``),
the same run gave 1.94x: transformers' cache appended every decoding step with ``torch.cat``,
a copy of the whole cache that grows with rows x context and was half of a wave's time.
A smaller wave fills smaller batches: ``--questions 8 --max-depth 3`` (the earlier default) gave
1.85 vs 4.87 trees/min, 2.64x, 8/8 identical (quiet, same day). ``lfkit tree build`` runs waves of 64.
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


def demo_sft(tmp: Path, count: int) -> tuple[Path, Path]:
    """SFT rows of the first ``count`` demo-corpus train questions, and their database folder."""
    from lfkit.data.demo import build_demo_corpus
    from lfkit.data.sft import SFTOptions, build_sft

    build_demo_corpus(tmp / "corpus", seed=0)
    build_sft(tmp / "corpus", "train", tmp / "sft.json", options=SFTOptions(limit=count))
    return tmp / "sft.json", tmp / "corpus" / "train_databases"


def build(cfg, backend, questions, wave: int) -> tuple[list[dict], float, int, float]:
    """Build the trees ``wave`` questions at a time; (trees, seconds, generate calls, seconds generating)."""
    from lfkit.sql import Verifier
    from lfkit.tree.build import WaveBuilder

    # a fresh verifier per run: its result cache must not favour the method that runs second
    with Verifier(comparison=cfg.comparison, timeout=cfg.timeout, workers=0) as verifier:
        builder = WaveBuilder(cfg, backend, verifier)
        gen_before = backend.stats.seconds
        start = time.perf_counter()
        trees = []
        for i in range(0, len(questions), wave):
            trees += builder.build(questions[i : i + wave])
        seconds = time.perf_counter() - start
        return trees, seconds, builder.generate_calls, backend.stats.seconds - gen_before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=16, help="demo train questions (trees)")
    parser.add_argument("--max-depth", type=int, default=2)
    parser.add_argument("--sample-num", type=int, default=2)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--sql-timeout", type=float, default=10.0, help="seconds per SQL execution (both sides)")
    parser.add_argument("--backend", default="hf", choices=["hf", "vllm"])
    parser.add_argument("--preset", default="smollm2-135m")
    parser.add_argument("--adapter-path", help="LoRA adapter (e.g. the SFT adapter); default: the base model")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, help="hf: chats per generate call (default: the whole frontier)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per method; the best time counts")
    parser.add_argument("--json", help="write the results here as JSON")
    args = parser.parse_args()

    from lfkit.data.sft_questions import load_questions
    from lfkit.generate.options import BACKEND_KEYS, backend_from_options
    from lfkit.tree.build import TreeBuildConfig
    from lfkit.tree.model import RevisionTree

    # the frontier of Q questions is at most Q * sample_num**(depth-1) chats
    frontier = args.questions * args.sample_num ** (args.max_depth - 1)
    opts = dict.fromkeys(BACKEND_KEYS)
    opts.update(
        backend=args.backend, preset=args.preset, adapter_path=args.adapter_path, device=args.device, dtype="auto"
    )
    opts.update(batch_size=args.batch_size or frontier, concurrency=1, tensor_parallel_size=1, backend_extra={})
    if args.backend == "vllm":
        opts["backend_extra"] = {"gpu_memory_utilization": 0.5}
    backend, identity, _ = backend_from_options(opts)

    with tempfile.TemporaryDirectory(prefix="lfkit-bench-tree-") as tmp:
        sft, db_root = demo_sft(Path(tmp), args.questions)
        questions = load_questions(sft, db_root)
        cfg = TreeBuildConfig(
            sft_data=str(sft),
            db_root=str(db_root),
            output_dir=tmp,
            max_depth=args.max_depth,
            sample_num=args.sample_num,
            temperature=args.temperature,
            max_new_tokens=args.max_new_tokens,
            seed=args.seed,
            timeout=args.sql_timeout,
            wave_size=len(questions),
        )
        model = f"{identity['model']}" + (f" + adapter {args.adapter_path}" if args.adapter_path else " (base)")
        print(f"model: {model}, backend {args.backend}, device {getattr(backend, 'device', '-')}")
        print(
            f"{len(questions)} demo train questions, max_depth={cfg.max_depth}, sample_num={cfg.sample_num}, "
            f"T={cfg.temperature}, max_new_tokens={cfg.max_new_tokens}, batch_size={opts['batch_size']}"
        )
        build(cfg, backend, questions[:1], 1)  # warm-up (allocator, kernels), not timed

        runs: dict[str, list] = {"loop": [], "wave": []}
        load = []
        for _ in range(args.repeat):
            load.append(os.getloadavg()[0])
            runs["loop"].append(build(cfg, backend, questions, 1))
            runs["wave"].append(build(cfg, backend, questions, len(questions)))
        load.append(os.getloadavg()[0])
    backend.close()

    results = {"model": model, "backend": args.backend, "questions": len(questions), "repeat": args.repeat}
    results.update(max_depth=cfg.max_depth, sample_num=cfg.sample_num, max_new_tokens=cfg.max_new_tokens)
    rates = {}
    labels = {
        "loop": "one question at a time (wave 1, ReSQLver):",
        "wave": f"lfkit breadth-first (wave {len(questions)}):",
    }
    for key, label in labels.items():
        trees, seconds, calls, gen_seconds = min(runs[key], key=lambda r: r[1])
        nodes = sum(len(t["nodes"]) for t in trees)
        rates[key] = len(trees) / seconds * 60
        results[key] = {
            "trees": len(trees),
            "nodes": nodes,
            "generate_calls": calls,
            "seconds": round(seconds, 2),
            "generate_seconds": round(gen_seconds, 2),
            "trees_per_min": round(rates[key], 2),
        }
        print(
            f"{label:<42} {len(trees):4d} trees {nodes:5d} nodes {calls:4d} calls "
            f"in {seconds:8.2f} s ({gen_seconds:7.2f} s generating) = {rates[key]:7.2f} trees/min"
        )

    def shape(t: dict) -> list:  # what a tree decided: its nodes' SQL and labels
        tree = RevisionTree.from_dict(t)
        return sorted((nid, n.generated_sql, n.is_correct) for nid, n in tree.nodes.items())

    same = sum(shape(a) == shape(b) for a, b in zip(runs["loop"][0][0], runs["wave"][0][0], strict=True))
    results["identical_trees"] = same
    results["speedup"] = round(rates["wave"] / rates["loop"], 2)
    results["load_average"] = [round(x, 2) for x in load]
    print(f"identical trees on both sides: {same}/{len(questions)} (batch-shape float noise may flip a draw)")
    print(f"speedup (trees/min): {results['speedup']:.2f}x  (target >= 3x on CPU hf)")
    print(f"1-min load average during the runs: {', '.join(f'{x:.1f}' for x in load)} ({os.cpu_count()} CPUs)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

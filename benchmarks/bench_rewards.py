"""Benchmark: reward time of one GRPO batch (8 prompts x 4 completions) next to its generation time.

Run:  .venv/bin/python benchmarks/bench_rewards.py            (CPU: ~2 minutes, most of it generation)
      .venv/bin/python benchmarks/bench_rewards.py --adapter saves/sft   (completions of an SFT model)

The batch: the first ``--prompts`` train questions of the Lahman demo corpus (their SFT
prompts), run against the *full* Lahman database (``build_lahman_db(tables="all")``: Batting
and friends have 100k+ rows, so gold queries cost what real ones do). Completions are sampled
with the ``hf`` backend from SmolLM2-135M (``--n`` per prompt, temperature 0.7, as GRPO does),
timed as the generation side. Each side then scores the same 32 completions with every reward
of the default config (execution + format + the seed's four):

* lfkit -- :class:`lfkit.reward.execution.ExecutionReward` holding one Verifier for the run:
  each gold SQL runs once per question (cold batch: 8 gold runs for 32 completions) and never
  again while cached (warm batch: the same questions in a later epoch), identical candidates
  run once, a worker pool runs the rest;
* no cache -- the same rewards, but the execution reward executes gold and candidate for every
  completion on every call (one process, lfkit's sandboxed ``execute_sql``), what a reward
  written without a cache does.

Prints generation seconds, reward seconds (cold / warm / no cache) and the reward share of a
GRPO step's generation + reward time. ``--synthetic`` skips the model and scores gold/variant
SQL instead (execution-heavy: every completion runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lfkit.reward import process as process_module
from lfkit.reward.config import DEFAULT_WEIGHTS, combine
from lfkit.reward.execution import ExecutionReward
from lfkit.reward.process import PROCESS_REWARDS, answer_sql, completion_text
from lfkit.sql import results_match
from lfkit.sql.execute import execute_sql


def naive_execution(timeout: float):
    """1 / 0.1 / 0 with gold and candidate executed for every completion, nothing cached."""

    def execution(prompts, completions, db_path=None, gold_sql=None, **columns):
        out = []
        for c, db, gold in zip(completions, db_path, gold_sql, strict=True):
            sql = answer_sql(completion_text(c))
            if not sql:
                out.append(0.0)
                continue
            g = execute_sql(db, gold, timeout=timeout)
            p = execute_sql(db, sql, timeout=timeout)
            out.append(1.0 if g.ok and p.ok and results_match(p, g) else 0.1 if p.ok else 0.0)
        return out

    execution.__name__ = "execution"
    return execution


def clear_process_caches() -> None:
    for value in vars(process_module).values():
        if hasattr(value, "cache_clear"):
            value.cache_clear()


def synthetic_completions(rows: list[dict], n: int) -> list[str]:
    variants = []
    for r in rows:
        gold = r["gold_sql"]
        for k in range(n):
            sql = [gold, gold.lower(), gold.replace("SELECT", "SELECT DISTINCT", 1), gold + " LIMIT 1"][k % 4]
            variants.append(f"<think>\nplan\n</think>\n\n<answer>\n{sql}\n</answer>")
    return variants


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, help="an existing full Lahman SQLite file (default: build one in a tmp dir)")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=4, help="completions per prompt (GRPO num_generations)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--adapter", default=None, help="LoRA adapter (e.g. the SFT adapter)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3, help="warm reward calls (the best counts)")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--synthetic", action="store_true", help="no model: gold and variant SQL as completions")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="lfkit-bench-rewards-") as tmp:
        from lfkit.data.demo import build_demo_corpus, build_lahman_db
        from lfkit.data.grpo import grpo_rows_from_bird
        from lfkit.data.prompts import SchemaPromptBuilder

        db = args.db
        if db is None:
            start = time.perf_counter()
            db = build_lahman_db(Path(tmp) / "lahman" / "lahman.sqlite", tables="all")
            seconds = time.perf_counter() - start
            print(f"built the full Lahman database ({db.stat().st_size / 1e6:.0f} MB) in {seconds:.1f}s")
        db.read_bytes()  # page cache warm for every side
        build_demo_corpus(Path(tmp) / "corpus", n_train=max(args.prompts, 8), n_dev=8)
        rows = grpo_rows_from_bird(Path(tmp) / "corpus", "train", SchemaPromptBuilder(n_examples=0))[: args.prompts]
        for r in rows:
            r["db_path"] = str(db)  # the same questions on the full tables
        group = [r for r in rows for _ in range(args.n)]  # TRL repeats each row for its n completions
        columns = {k: [r[k] for r in group] for k in ("db_path", "gold_sql", "type", "question")}

        gen_seconds = None
        if args.synthetic:
            completions = synthetic_completions(rows, args.n)
        else:
            from lfkit.generate import SamplingConfig, get_backend
            from lfkit.grpo.data import chat_of

            backend = get_backend("hf", model=args.model, adapter=args.adapter, batch_size=args.prompts)
            cfg = SamplingConfig(n=args.n, temperature=0.7, top_p=1.0, max_new_tokens=args.max_new_tokens, seed=0)
            chats = [chat_of(r["prompt"]) for r in rows]
            backend.generate(chats[:1], SamplingConfig(n=1, max_new_tokens=4))  # warm-up
            start = time.perf_counter()
            outs = backend.generate(chats, cfg)
            gen_seconds = time.perf_counter() - start
            tokens = backend.stats.completion_tokens
            backend.close()
            completions = [c for o in outs for c in o]
            print(
                f"generation: {len(completions)} completions ({args.prompts} prompts x {args.n}) of {args.model}"
                f"{' + ' + args.adapter if args.adapter else ''}, <= {args.max_new_tokens} tokens: "
                f"{gen_seconds:.2f}s ({tokens} tokens counted)"
            )

        # process rewards (format + the seed's four), their parse caches emptied first
        clear_process_caches()
        start = time.perf_counter()
        for fn in PROCESS_REWARDS.values():
            fn(None, completions, **columns)
        process = time.perf_counter() - start

        reward = ExecutionReward(timeout=args.timeout)
        reward.verifier.execute_many([(db, "SELECT 1")])  # start the worker pool: once per run, not per batch
        start = time.perf_counter()
        values = reward(None, completions, **columns)
        cold = time.perf_counter() - start
        warm_runs = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            again = reward(None, completions, **columns)
            warm_runs.append(time.perf_counter() - start)
        assert again == values
        stats = dict(reward.verifier.stats)
        reward.close()

        naive = naive_execution(args.timeout)
        naive_runs = []
        for _ in range(max(1, args.repeat)):
            start = time.perf_counter()
            naive_values = naive(None, completions, **columns)
            naive_runs.append(time.perf_counter() - start)
        if naive_values != values:
            print("execution rewards differ between lfkit and the no-cache loop", file=sys.stderr)
            return 1
        total = combine(DEFAULT_WEIGHTS, execution=lambda p, c, **k: values)(None, completions, **columns)

        warm = min(warm_runs)
        nocache = min(naive_runs)
        correct = sum(1 for v in values if v == 1.0)
        print(f"rewards for {len(completions)} completions ({correct} execute correctly):")
        print(f"  process rewards (format + seed's four, parse cache cold): {process:7.3f}s")
        print(
            f"  execution, lfkit cold batch (gold once per question):     {cold:7.3f}s  ({stats['executed']} executed)"
        )
        print(f"  execution, lfkit warm batch (everything cached):          {warm:7.3f}s")
        print(f"  execution, no cache (gold + candidate every completion):  {nocache:7.3f}s")
        result = {
            "prompts": args.prompts,
            "n": args.n,
            "completions": len(completions),
            "model": None if args.synthetic else args.model,
            "adapter": args.adapter,
            "generation_seconds": round(gen_seconds, 3) if gen_seconds is not None else None,
            "process_reward_seconds": round(process, 4),
            "execution_seconds_cold": round(cold, 4),
            "execution_seconds_warm": round(warm, 4),
            "execution_seconds_no_cache": round(nocache, 4),
            "verifier_stats": stats,
            "correct": correct,
            "mean_total_reward": round(statistics.fmean(total), 4),
        }
        cold = cold + process
        if gen_seconds:
            share = cold / (cold + gen_seconds)
            result["reward_share_of_step_cold"] = round(share, 4)
            print(f"generation: {gen_seconds:.2f}s; rewards (process + execution, cold): {cold:.3f}s")
            print(f"  reward share of generation + reward (cold): {100 * share:.1f}%")
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

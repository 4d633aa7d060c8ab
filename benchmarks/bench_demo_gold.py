"""Benchmark: how long the demo corpus's gold queries take on the Lahman database.

Run:  .venv/bin/python benchmarks/bench_demo_gold.py [--corpus DIR] [--max-seconds 0.25]   (or `make bench`)

Builds the demo corpus (:func:`lfkit.data.demo.build_demo_corpus`, seed 0, the one every test
and demo uses) in a temporary folder unless ``--corpus`` names one, then executes every gold
query of both splits with :func:`lfkit.sql.execute_sql` (the sandboxed executor labelling and
scoring use) and prints the elapsed times per split: median, 95th percentile, maximum and the
slowest query. Exit status 1 when any query takes longer than ``--max-seconds`` (default 0.25 s;
measured on a shared 2-core machine: median 0.2 ms, maximum 73 ms): a corpus whose gold is
slow makes every sampling and scoring run slow. The bound lives here, not in a test, because it
measures the machine as much as the corpus.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path


def gold_times(corpus: Path, split: str) -> list[tuple[float, str]]:
    """``(elapsed seconds, SQL)`` of every gold query of ``split``, executed once each."""
    from lfkit.sql import execute_sql

    db = corpus / f"{split}_databases" / "lahman" / "lahman.sqlite"
    out = []
    for item in json.loads((corpus / f"{split}.json").read_text(encoding="utf-8")):
        result = execute_sql(db, item["SQL"], timeout=5.0)
        if not result.ok:
            raise SystemExit(f"gold query {item['question_id']} of {split} failed: {result.error}")
        out.append((result.elapsed, item["SQL"]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="An existing demo corpus (default: build one, seed 0).")
    parser.add_argument("--max-seconds", type=float, default=0.25, help="Slowest gold query allowed.")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus
        if corpus is None:
            from lfkit.data.demo import build_demo_corpus

            corpus = Path(tmp) / "corpus"
            build_demo_corpus(corpus, seed=0)
        worst = 0.0
        for split in ("train", "dev"):
            times = sorted(gold_times(corpus, split))
            elapsed = [t for t, _ in times]
            p95 = elapsed[min(len(elapsed) - 1, int(0.95 * len(elapsed)))]
            print(
                f"{split}: {len(elapsed)} gold queries, median {statistics.median(elapsed) * 1000:.1f} ms, "
                f"p95 {p95 * 1000:.1f} ms, max {elapsed[-1] * 1000:.1f} ms\n  slowest: {times[-1][1]}"
            )
            worst = max(worst, elapsed[-1])
    if worst > args.max_seconds:
        print(f"FAIL: the slowest gold query took {worst:.3f} s > --max-seconds {args.max_seconds}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

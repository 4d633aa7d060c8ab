"""The openai backend against a real OpenAI-compatible server: ``llamafactory-cli api`` with the
tiny model, started by the test on loopback and stopped at the end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lfkit.data.prompts import chat_messages
from lfkit.generate import GenerationError, SamplingConfig, get_backend
from lfkit.generate.prompts import PromptEncoder

CHATS = [chat_messages("Write one SQLite query.", f"Question {i}: how many teams won in {2000 + i}?") for i in range(3)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lf_api(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """``llamafactory-cli api`` serving the tiny model on 127.0.0.1; yields its /v1 URL."""
    port = free_port()
    env = {**os.environ, "API_HOST": "127.0.0.1", "API_PORT": str(port), "HF_HUB_OFFLINE": "1"}
    env.pop("API_KEY", None)
    cli = Path(sys.executable).with_name("llamafactory-cli")
    log = (tmp_path_factory.mktemp("lf_api") / "server.log").open("w")
    cmd = [str(cli), "api", "--model_name_or_path", str(tiny_model), "--template", "qwen3_nothink"]
    proc = subprocess.Popen(
        [*cmd, "--infer_backend", "huggingface"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield f"http://127.0.0.1:{port}/v1", proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.mark.slow
def test_openai_backend_against_llamafactory_api(lf_api, tiny_model: Path) -> None:
    url, proc = lf_api
    # Sent while the server is still loading: connection refused is retried with backoff
    # (bounded: at most ~60 tries x 2 s) until the server answers.
    backend = get_backend(
        "openai", model="tiny", base_url=url, concurrency=3, max_retries=60, backoff=0.25, max_backoff=2.0, timeout=120
    )
    start = time.monotonic()
    out = backend.generate(CHATS, SamplingConfig(n=2, temperature=1.0, top_p=0.9, max_new_tokens=8))
    assert proc.poll() is None, "server exited"
    assert time.monotonic() - start < 180
    assert [len(x) for x in out] == [2, 2, 2]
    assert all(isinstance(t, str) for x in out for t in x)
    assert backend.requests > len(CHATS), "the first requests should have met a server still starting"
    # LLaMA-Factory honours n: one request per chat once up, and it reports the prompt length
    # it encoded -- equal to lfkit's encoding with the same template (prompt identity).
    encoder = PromptEncoder(tiny_model, "qwen3_nothink")
    assert backend.stats.prompt_tokens == sum(len(encoder.encode(c)) for c in CHATS)
    assert backend.stats.completion_tokens > 0

    requests = backend.requests
    greedy = backend.generate(CHATS[:2], SamplingConfig(n=3, temperature=0, max_new_tokens=6))
    assert all(len(x) == 3 and len(set(x)) == 1 for x in greedy)
    assert backend.requests == requests + 2  # greedy: one decode per chat, copied


@pytest.mark.slow
def test_prefs_cli_with_the_openai_backend(lf_api, demo_sft: Path, demo_corpus: Path, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from lfkit.cli import main

    url, _ = lf_api
    out = tmp_path / "dpo.jsonl"
    args = ["prefs", "rejects", "--backend", "openai", "--base-url", url, "--base-model", "tiny"]
    args += ["--sft-data", str(demo_sft), "--db-root", str(demo_corpus / "train_databases"), "--output", str(out)]
    args += ["--num-rejects", "2", "--max-samples", "2", "--max-new-tokens", "6", "--workers", "0", "--quiet"]
    args += ["--backend-option", "max_retries=60", "--backend-option", "max_backoff=2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = Path(str(out) + ".candidates.jsonl").read_text().splitlines()
    header, records = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
    assert header["settings"]["backend"] == "openai" and header["settings"]["model"] == "tiny"
    assert len(records) == 2 and all(len(r["candidates"]) == 2 for r in records)


def test_unreachable_server_fails_with_a_clear_message() -> None:
    backend = get_backend(
        "openai", model="m", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=2, backoff=0.01
    )
    with pytest.raises(GenerationError, match=r"gave up after 3 tries .*is the server running"):
        backend.generate(CHATS[:1], SamplingConfig(n=1, max_new_tokens=4))
    assert backend.requests == 3


def test_adapter_must_be_served_by_the_server() -> None:
    with pytest.raises(GenerationError, match="lora-modules"):
        get_backend("openai", model="m", adapter="/some/adapter")

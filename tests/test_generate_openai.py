"""The openai backend against real OpenAI-compatible servers on loopback: ``llamafactory-cli api``
with the tiny model, and a small ``http.server`` that answers 429 / fewer choices / stop reasons
on cue (started by the tests and stopped at the end)."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lfkit.data.prompts import chat_messages
from lfkit.generate import GenerationError, SamplingConfig, get_backend, truncate_at_stop
from lfkit.generate.prompts import PromptEncoder

HAS_OPENAI = importlib.util.find_spec("openai") is not None
needs_openai = pytest.mark.skipif(not HAS_OPENAI, reason="needs the openai extra (pip install 'lfkit[openai]')")

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


@needs_openai
@pytest.mark.slow
def test_openai_backend_against_llamafactory_api(lf_api, tiny_model: Path) -> None:
    url, proc = lf_api
    # Sent while the server is still loading: connection refused is retried with backoff
    # (the client's: 0.5 s doubling to 8 s; bounded by 60 tries) until the server answers.
    backend = get_backend("openai", model="tiny", base_url=url, concurrency=3, max_retries=60, timeout=120)
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

    # Stop strings: LLaMA-Factory's huggingface engine ignores `stop` (it logs a warning), so the
    # client cuts the text by lfkit's rule -- right after the first stop string, which stays in.
    full = backend.generate(CHATS, SamplingConfig(n=1, temperature=0, max_new_tokens=16))
    stop = full[0][0][4:7]
    assert len(stop) == 3, full
    stopped = backend.generate(CHATS, SamplingConfig(n=1, temperature=0, max_new_tokens=16, stop=[stop]))
    assert stopped == [[truncate_at_stop(x[0], [stop])[0]] for x in full]
    assert stopped[0][0] == full[0][0][: full[0][0].find(stop) + 3] and stopped[0][0].endswith(stop)


@needs_openai
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
    args += ["--backend-option", "max_retries=60"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = Path(str(out) + ".candidates.jsonl").read_text().splitlines()
    header, records = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
    assert header["settings"]["backend"] == "openai" and header["settings"]["model"] == "tiny"
    assert len(records) == 2 and all(len(r["candidates"]) == 2 for r in records)


@needs_openai
def test_unreachable_server_fails_with_a_clear_message() -> None:
    backend = get_backend("openai", model="m", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=2)
    with pytest.raises(GenerationError, match=r"gave up after 3 tries .*is the server running"):
        backend.generate(CHATS[:1], SamplingConfig(n=1, max_new_tokens=4))
    assert backend.requests == 3


@pytest.mark.skipif(HAS_OPENAI, reason="the openai client is installed")
def test_missing_openai_client_names_the_extra() -> None:
    with pytest.raises(GenerationError, match=r"pip install 'lfkit\[openai\]'"):
        get_backend("openai", model="m")


def test_adapter_must_be_served_by_the_server() -> None:
    with pytest.raises(GenerationError, match="lora-modules"):
        get_backend("openai", model="m", adapter="/some/adapter")


HANG = 0  # a ScriptedServer reply status: read the request, never answer


class ScriptedServer(ThreadingHTTPServer):
    """A real chat-completions server on loopback whose replies follow a script.

    ``replies`` is a list of (status, headers, body) popped one per request; each request's
    JSON body is kept in ``seen``. ``choices(k, texts, ...)`` builds a completion body.
    A ``bytes`` body is sent as it is (a truncated reply); status :data:`HANG` never answers
    (until the test ends and sets ``release``).
    """

    def __init__(self, replies: list[tuple[int, dict[str, str], dict | bytes]]) -> None:
        self.replies, self.seen = list(replies), []
        self.release = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler) -> None:  # `handler` is the request handler, `self` the server
                length = int(handler.headers.get("Content-Length", 0))
                self.seen.append(json.loads(handler.rfile.read(length)))
                status, headers, body = self.replies.pop(0)
                if status == HANG:
                    self.release.wait(60)
                    return
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                handler.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    handler.send_header(key, value)
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                handler.wfile.write(data)

            def log_message(handler, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


def completion(*choices: dict, prompt_tokens: int = 5, completion_tokens: int = 3) -> dict:
    return {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": c.pop("text")}, "finish_reason": "stop", **c}
            for i, c in enumerate(choices)
        ],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": 8},
    }


@pytest.fixture
def scripted():
    servers = []

    def start(replies):
        server = ScriptedServer(replies)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.release.set()
        server.shutdown()
        server.server_close()


@needs_openai
def test_429_and_5xx_are_retried_and_missing_choices_asked_again(scripted) -> None:
    server = scripted(
        [
            (429, {"Retry-After": "0"}, {"error": {"message": "slow down"}}),
            (503, {}, {"error": {"message": "overloaded"}}),
            (200, {}, completion({"text": "a"})),  # one choice of the three asked for
            (200, {}, completion({"text": "b"}, {"text": "c"})),
        ]
    )
    backend = get_backend("openai", model="m", base_url=server.url, max_retries=3)
    out = backend.generate(CHATS[:1], SamplingConfig(n=3, temperature=1.0, max_new_tokens=4, seed=10))
    assert out == [["a", "b", "c"]]
    assert backend.requests == 4
    assert [r["n"] for r in server.seen] == [3, 3, 3, 2]
    assert [r["seed"] for r in server.seen] == [10, 10, 10, 11]  # the follow-up continues the seeds
    assert backend.stats.prompt_tokens == 10 and backend.stats.completion_tokens == 6


@needs_openai
def test_other_http_errors_fail_at_once_with_the_servers_reply(scripted) -> None:
    server = scripted([(400, {}, {"error": {"message": "unknown model m"}})])
    backend = get_backend("openai", model="m", base_url=server.url, max_retries=3)
    with pytest.raises(GenerationError, match=r"HTTP 400: .*unknown model m"):
        backend.generate(CHATS[:1], SamplingConfig(n=1, max_new_tokens=4))
    assert backend.requests == 1


@needs_openai
def test_stop_string_is_put_back_when_the_server_names_it(scripted) -> None:
    fence = "\n```\n"
    server = scripted(
        [
            # vLLM names the stop string that ended the choice (stop_reason), SGLang matched_stop;
            # an end-of-sequence stop has stop_reason null; a server that ignored `stop` sends more.
            (
                200,
                {},
                completion(
                    {"text": "```sql\nSELECT 1", "stop_reason": fence},
                    {"text": "```sql\nSELECT 2", "matched_stop": fence},
                    {"text": "```sql\nSELECT 3", "stop_reason": None},
                    {"text": "```sql\nSELECT 4\n```\nIt counts.", "stop_reason": None},
                ),
            ),
        ]
    )
    backend = get_backend("openai", model="m", base_url=server.url)
    out = backend.generate(CHATS[:1], SamplingConfig(n=4, temperature=1.0, max_new_tokens=32, stop=[fence]))
    closed = [f"```sql\nSELECT {k}{fence}" for k in (1, 2)]
    assert out == [[*closed, "```sql\nSELECT 3", f"```sql\nSELECT 4{fence}"]]
    assert server.seen[0]["stop"] == [fence]


@needs_openai
def test_a_truncated_200_reply_is_retried_like_a_5xx(scripted, caplog: pytest.LogCaptureFixture) -> None:
    cut = json.dumps(completion({"text": "never seen"})).encode()[:60]  # a proxy cut the body short
    server = scripted([(200, {}, cut), (200, {}, completion({"text": "a"}))])
    backend = get_backend("openai", model="m", base_url=server.url, max_retries=2)
    with caplog.at_level(logging.WARNING, logger="lfkit.generate.openai_backend"):
        out = backend.generate(CHATS[:1], SamplingConfig(n=1, temperature=1.0, max_new_tokens=4))
    assert out == [["a"]] and backend.requests == 2 and len(server.seen) == 2
    assert "retrying a request (try 2 of 3) after a reply that was not valid JSON" in caplog.text


@needs_openai
def test_truncated_replies_use_the_same_retry_budget_then_fail_in_one_line(scripted) -> None:
    cut = json.dumps(completion({"text": "x"})).encode()[:60]
    server = scripted([(503, {}, {"error": {"message": "busy"}}), (200, {}, cut), (200, {}, cut), (200, {}, cut)])
    backend = get_backend("openai", model="m", base_url=server.url, max_retries=2)
    with pytest.raises(GenerationError, match=r"gave up after 3 tries \(the last reply was not valid JSON: ") as err:
        backend.generate(CHATS[:1], SamplingConfig(n=1, max_new_tokens=4))
    assert "\n" not in str(err.value)
    assert backend.requests == 3 and len(server.replies) == 1  # the 503, then two cut replies: 3 tries in all


@needs_openai
def test_a_hung_request_is_reported_while_it_waits_and_then_given_up(
    scripted, caplog: pytest.LogCaptureFixture
) -> None:
    server = scripted([(HANG, {}, {}), (HANG, {}, {})])
    backend = get_backend("openai", model="m", base_url=server.url, max_retries=1, timeout=1.0, stall_notice=0.3)
    logs = caplog.at_level(logging.WARNING, logger="lfkit.generate.openai_backend")
    with logs, pytest.raises(GenerationError, match=r"gave up after 2 tries: no reply within 1 s to any; ") as err:
        backend.generate(CHATS[:1], SamplingConfig(n=1, max_new_tokens=4))
    assert "\n" not in str(err.value)
    assert backend.requests == 2 and len(server.seen) == 2
    assert "1 request(s) waiting for a reply, the oldest for" in caplog.text
    assert re.search(r"\(try [12] of 2, each up to 1 s; see --request-timeout\)", caplog.text)
    assert "retrying a request (try 2 of 2) after no reply in time or a connection error" in caplog.text


@needs_openai
def test_request_timeout_option_reaches_the_client_and_defaults_are_bounded() -> None:
    from lfkit.generate.openai_backend import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT
    from lfkit.generate.options import BACKEND_KEYS, backend_from_options

    opts = dict.fromkeys(BACKEND_KEYS) | {"backend": "openai", "base_model": "m", "backend_extra": {}, "concurrency": 1}
    default, _, _ = backend_from_options(opts)
    assert default.client.timeout == DEFAULT_TIMEOUT and default.client.max_retries == DEFAULT_MAX_RETRIES
    # the worst case a hung server keeps a run waiting without an error: at most 10 minutes
    assert (DEFAULT_MAX_RETRIES + 1) * DEFAULT_TIMEOUT <= 600
    backend, _, _ = backend_from_options(opts | {"request_timeout": 7.5})
    assert backend.client.timeout == 7.5
    with pytest.raises(GenerationError, match="--request-timeout applies to --backend openai"):
        backend_from_options(opts | {"backend": "hf", "base_model": "tiny", "request_timeout": 7.5})

"""`lfkit eval predict` journals every answer and resumes: a real OpenAI-compatible server on loopback
(``http.server``, started by the test) fails request 3 of 12; the re-run asks only for the missing ones."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from lfkit.cli import main

pytest.importorskip("openai", reason="needs the openai extra (pip install 'lfkit[openai]')")

QUESTIONS = 12


class AnsweringServer(ThreadingHTTPServer):
    """Chat completions on 127.0.0.1: question N is answered ``SELECT N``; request number ``fail_on``
    (counted from 1, in arrival order) gets HTTP 400, which the client does not retry.

    ``answered`` holds the question numbers it answered with 200, ``asked`` every question asked.
    """

    def __init__(self, fail_on: int | None = None) -> None:
        self.fail_on, self.asked, self.answered = fail_on, [], []
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler) -> None:  # `handler` is the request handler, `self` the server
                body = json.loads(handler.rfile.read(int(handler.headers.get("Content-Length", 0))))
                number = int(re.findall(r"question number (\d+)", body["messages"][-1]["content"])[-1])
                with self.lock:
                    self.asked.append(number)
                    fail = len(self.asked) == self.fail_on
                    if not fail:
                        self.answered.append(number)
                if fail:
                    status, reply = 400, {"error": {"message": "scripted failure", "type": "invalid_request_error"}}
                else:
                    message = {"role": "assistant", "content": f"```sql\nSELECT {number}\n```"}
                    choice = {"index": 0, "message": message, "finish_reason": "stop"}
                    reply = {"id": "c", "object": "chat.completion", "created": 0, "model": "m", "choices": [choice]}
                data = json.dumps(reply).encode()
                handler.send_response(status if fail else 200)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                handler.wfile.write(data)

            def log_message(handler, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.fixture
def serve():
    servers = []

    def start(fail_on: int | None = None) -> AnsweringServer:
        server = AnsweringServer(fail_on)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def corpus(root: Path) -> Path:
    """A BIRD-style corpus of 12 dev questions on one real SQLite database."""
    db = root / "dev_databases" / "shop"
    db.mkdir(parents=True)
    conn = sqlite3.connect(db / "shop.sqlite")
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    rows = [
        {"question_id": i, "db_id": "shop", "question": f"What is question number {i}?", "evidence": "",
         "SQL": f"SELECT {i}", "difficulty": "simple"}
        for i in range(QUESTIONS)
    ]  # fmt: skip
    (root / "dev.json").write_text(json.dumps(rows))
    return root


def predict(bird: Path, out: Path, url: str, *extra: str):
    args = ["eval", "predict", "--bird-dir", str(bird), "--split", "dev", "--out", str(out), "--no-progress"]
    args += ["--backend", "openai", "--base-url", url, "--base-model", "m", "--concurrency", "4"]
    args += ["--backend-option", "max_retries=0", "--n-examples", "0", *extra]
    return CliRunner().invoke(main, args)


def journal_records(path: Path) -> tuple[dict, list[dict]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return lines[0], lines[1:]


def test_failed_request_keeps_the_answers_and_the_rerun_asks_only_the_rest(serve, tmp_path: Path) -> None:
    bird = corpus(tmp_path / "corpus")
    out = tmp_path / "predict_dev.json"
    journal = Path(f"{out}.journal.jsonl")

    first = serve(fail_on=3)
    result = predict(bird, out, first.url)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "HTTP 400" in result.output and "Traceback" not in result.output
    assert not out.exists()  # the output is written only once every question has its answer
    header, records = journal_records(journal)
    assert header["settings"]["kind"] == "predict" and header["settings"]["backend"] == "openai"
    # every answer the server returned is journalled, with its own SQL; the failed one is not
    assert sorted(r["question_id"] for r in records) == sorted(first.answered)
    assert all(r["sql"] == f"SELECT {r['question_id']}" for r in records)
    assert 2 <= len(records) < QUESTIONS and len(first.asked) == len(records) + 1

    second = serve()
    result = predict(bird, out, second.url)
    assert result.exit_code == 0, result.output
    assert f"{len(records)} resumed" in result.output
    # only the missing questions were asked, each once
    assert sorted(second.asked) == sorted(set(range(QUESTIONS)) - set(first.answered))
    _, records = journal_records(journal)
    keys = [r["question_id"] for r in records]
    assert len(keys) == len(set(keys)) == QUESTIONS  # no duplicates
    predictions = json.loads(out.read_text())
    assert predictions == {str(i): f"SELECT {i}\t----- bird -----\tshop" for i in range(QUESTIONS)}

    # other settings are refused, not mixed into the journal
    third = serve()
    result = predict(bird, out, third.url, "--max-new-tokens", "64")
    assert result.exit_code == 1 and "other settings (max_new_tokens: 256 -> 64)" in result.output
    assert third.asked == []
    result = predict(bird, out, third.url, "--max-new-tokens", "64", "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(third.asked) == list(range(QUESTIONS))


def test_candidates_are_journalled_chunk_by_chunk(serve, tmp_path: Path) -> None:
    bird = corpus(tmp_path / "corpus")
    out = tmp_path / "cands.jsonl"
    extra = ("--n", "2", "--batch-size", "3", "--workers", "0")
    # the server answers one choice per request, so each question takes 2 requests: chunk 1 (questions 0-2)
    # is requests 1-6, and request 8 fails inside chunk 2
    first = serve(fail_on=8)
    result = predict(bird, out, first.url, *extra)
    assert result.exit_code == 1 and "HTTP 400" in result.output
    header, records = journal_records(Path(f"{out}.journal.jsonl"))
    assert header["settings"]["kind"] == "candidates" and header["settings"]["n"] == 2
    assert [r["question_id"] for r in records] == [0, 1, 2]
    assert all(c["label"] == "correct" for r in records for c in r["candidates"])

    second = serve()
    result = predict(bird, out, second.url, *extra)
    assert result.exit_code == 0, result.output
    assert sorted(set(second.asked)) == list(range(3, QUESTIONS)) and len(second.asked) == 2 * (QUESTIONS - 3)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["question_id"] for r in rows] == list(range(QUESTIONS))
    assert all(len(r["candidates"]) == 2 for r in rows)

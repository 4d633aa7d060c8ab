"""`lfkit eval predict`: greedy BIRD predictions, and N labelled candidates per question."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from lfkit.cli import main
from lfkit.data.bird import load_bird
from lfkit.data.demo import DEMO_PROMPT_OPTIONS
from lfkit.data.prompts import SchemaPromptBuilder, chat_messages
from lfkit.eval.predict import predict_sql, sample_candidates
from lfkit.generate import GenerationBackend, SamplingConfig
from lfkit.sql import Verifier


class GoldBackend(GenerationBackend):
    """Sample j of question q: gold (j even) or a wrong rewrite (j odd); greedy: an error."""

    name = "gold"

    def __init__(self, golds: dict[str, str]) -> None:
        super().__init__()
        self.golds = golds
        self.calls: list[tuple[SamplingConfig, list[int]]] = []

    def _generate(self, chats, cfg, seeds):
        self.calls.append((cfg, list(seeds)))
        out = []
        for chat in chats:
            gold = self.golds[chat[-1]["content"]]
            if cfg.greedy:
                out.append(["```sql\nSELECT no_such_col FROM People\n```"] * cfg.n)
            else:
                out.append(
                    [f"```sql\n{gold if j % 2 == 0 else f'SELECT * FROM ({gold}) LIMIT 0'}\n```" for j in range(cfg.n)]
                )
        return out


def test_sample_candidates_labels_and_seeds(demo_corpus: Path) -> None:
    examples = load_bird(demo_corpus, "dev")[:5]
    builder = SchemaPromptBuilder(**DEMO_PROMPT_OPTIONS)
    golds = {chat_messages(*builder.build(ex))[0]["content"]: ex.gold_sql for ex in examples}
    backend = GoldBackend(golds)
    with Verifier(workers=0) as verifier:
        records = sample_candidates(
            examples, backend, builder, verifier, n=3, temperature=0.7, seed=5, with_greedy=True, chunk_size=2,
            progress=False,
        )  # fmt: skip
    assert [r["question_id"] for r in records] == [ex.question_id for ex in examples]
    for r, ex in zip(records, examples, strict=True):
        assert [c["label"] for c in r["candidates"]] == ["correct", "wrong", "correct"]
        assert r["candidates"][0]["sql"] == ex.gold_sql.strip()
        assert r["greedy"]["label"] == "error" and r["greedy"]["status"] == "error"
        assert (r["instruction"], r["input"]) == builder.build(ex)
        assert r["difficulty"] == ex.difficulty and r["gold_status"] == "ok"
    sampled = [call for call in backend.calls if not call[0].greedy]
    # question i samples with seed + index * 1000, chunks of 2
    assert [s for _, seeds in sampled for s in seeds] == [5 + ex.index * 1000 for ex in examples]
    assert all(cfg.n == 3 and cfg.temperature == 0.7 for cfg, _ in sampled)


def test_predict_sql_greedy(demo_corpus: Path) -> None:
    examples = load_bird(demo_corpus, "dev")[:3]
    builder = SchemaPromptBuilder(**DEMO_PROMPT_OPTIONS)
    golds = {chat_messages(*builder.build(ex))[0]["content"]: ex.gold_sql for ex in examples}
    preds = predict_sql(examples, GoldBackend(golds), builder, progress=False)
    assert preds == {ex.question_id: ("SELECT no_such_col FROM People", ex.db_id) for ex in examples}


def test_cli_predict_greedy_and_candidates_with_tiny(demo_corpus: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["eval", "predict", "--bird-dir", str(demo_corpus), "--split", "dev", "--base-model", "tiny",
              "--n-examples", "0", "--limit", "2", "--max-new-tokens", "4", "--no-progress"]  # fmt: skip
    greedy = tmp_path / "predict_dev.json"
    result = runner.invoke(main, [*common, "--out", str(greedy)])
    assert result.exit_code == 0, result.output
    data = json.loads(greedy.read_text())
    assert list(data) == ["0", "1"] and all(v.endswith("\t----- bird -----\tlahman") for v in data.values())
    cands = tmp_path / "cands.jsonl"
    result = runner.invoke(main, [*common, "--n", "2", "--workers", "0", "--out", str(cands)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in cands.read_text().splitlines()]
    assert [len(r["candidates"]) for r in rows] == [2, 2]
    # a random tiny model writes no SQL: labelled no_sql by the one labelling step
    assert {c["label"] for r in rows for c in r["candidates"]} <= {"no_sql", "error", "wrong", "correct"}
    assert "pass@2" in result.output

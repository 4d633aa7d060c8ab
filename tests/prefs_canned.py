"""A canned in-process generation backend for the prefs tests.

The real backends (hf, openai, vllm) are tested on their own in tests/test_generate_*.py.
A random tiny model never writes SQL, so the labelling, pairing and resume logic of
lfkit.prefs is exercised with completions derived from each question's gold SQL:
execution-equivalent rewrites, wrong queries, broken queries and prose. Every one of
them is still executed for real against the demo database by lfkit.sql.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from lfkit.data.prompts import chat_messages
from lfkit.generate import GenerationBackend, SamplingConfig
from lfkit.io import read_rows
from lfkit.sql import extract_sql


def fence(sql: str) -> str:
    return f"Here is the query.\n```sql\n{sql}\n```"


def variants(gold: str) -> dict[str, str]:
    """Completions of known kinds for one gold query."""
    core = gold.strip().rstrip(";")
    assert core.upper().startswith("SELECT"), core  # the re-spaced variant below assumes it
    return {
        # same rows as gold, different text (and a different normalised SQL)
        "correct_rewrite": fence(f"SELECT * FROM ({core})"),
        # gold up to whitespace and keyword case: normalises to gold
        "gold_spacing": fence("  select" + core[len("SELECT") :].replace(" FROM ", "\n    FROM ", 1) + " ;"),
        "wrong": fence(f"SELECT * FROM ({core}) LIMIT 0"),
        "wrong_dup": fence(f"select *   from ({core})   limit 0"),
        "error": fence("SELECT no_such_column FROM no_such_table"),
        "prose": "I am not sure which table holds this.",
    }


def gold_by_prompt(sft_file: str | Path) -> dict[str, str]:
    """User turn of each SFT row -> its gold SQL."""
    out = {}
    for row in read_rows(sft_file):
        out[chat_messages(row["instruction"], row["input"])[0]["content"]] = extract_sql(row["output"])
    return out


class CannedBackend(GenerationBackend):
    """Answers sample j of a chat with ``answer(user_text, j)``; remembers what it was asked."""

    name = "canned"

    def __init__(self, answer: Callable[[str, int], str], delay: float = 0.0) -> None:
        super().__init__()
        self.answer = answer
        self.delay = delay
        self.chats: list[list[dict[str, str]]] = []
        self.seeds: list[int] = []

    def _generate(self, chats, cfg: SamplingConfig, seeds):
        if self.delay:
            time.sleep(self.delay)
        self.chats += chats
        self.seeds += seeds
        return [[self.answer(chat[-1]["content"], j) for j in range(cfg.n)] for chat in chats]


def cycle_answers(sft_file: str | Path, kinds: list[str], lookup: Callable[[str], str] | None = None):
    """answer(user_text, j) giving the ``kinds[j % len(kinds)]`` variant of the question's gold."""
    golds = gold_by_prompt(sft_file)

    def answer(user_text: str, j: int) -> str:
        gold = golds[lookup(user_text) if lookup else user_text]
        return variants(gold)[kinds[j % len(kinds)]]

    return answer

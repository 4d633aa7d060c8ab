"""The execution reward on a real SQLite database: 1 / 0.1 / 0, bad rows, hangs, writes, the
gold cache, and the reward-hacking check under the default weights."""

from __future__ import annotations

import doctest
import sqlite3
import time
from pathlib import Path

import pytest

import lfkit.reward.execution as execution_module
from lfkit.reward.config import DEFAULT_WEIGHTS, SEED_WEIGHTS, combine
from lfkit.reward.execution import ExecutionReward, execution_reward
from lfkit.reward.process import PROCESS_REWARDS
from lfkit.sql.verify import Verifier

GOLD = "SELECT name FROM singer WHERE country = 'France'"
HANG = "SELECT COUNT(*) FROM nums AS a, nums AS b, nums AS c"


def answer(sql: str, think: str | None = None) -> str:
    return (f"<think>\n{think}\n</think>\n\n" if think is not None else "") + f"<answer>\n{sql}\n</answer>"


@pytest.fixture
def reward():
    r = ExecutionReward(workers=0, timeout=0.5)
    yield r
    r.close()


def test_values_on_a_real_database(reward: ExecutionReward, toy_sqlite: Path) -> None:
    completions = [
        answer("SELECT s.name FROM singer AS s WHERE s.country = 'France' ORDER BY s.name DESC"),  # same set
        [{"role": "assistant", "content": answer("select NAME from singer where country='France'")}],
        answer("SELECT name FROM singer WHERE country = 'Spain'"),  # runs, wrong
        answer("SELECT nme FROM singer"),  # error
        "```sql\nDELETE FROM singer\n```",  # a write: denied
        answer(HANG),  # timeout
        "I do not know.",  # nothing extracted
        "",
    ]
    n = len(completions)
    start = time.monotonic()
    got = reward(None, completions, db_path=[str(toy_sqlite)] * n, gold_sql=[GOLD] * n)
    assert got == [1.0, 1.0, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert time.monotonic() - start < 10
    with sqlite3.connect(toy_sqlite) as conn:  # the write did not happen
        assert conn.execute("SELECT COUNT(*) FROM singer").fetchone() == (5,)


def test_rows_without_database_or_gold_score_zero(reward: ExecutionReward, toy_sqlite: Path) -> None:
    c = answer(GOLD)
    assert reward(None, [c, c]) == [0.0, 0.0]  # no columns at all
    assert reward.verifier.stats["requested"] == 0  # nothing ran
    got = reward(
        None,
        [c, c, c, c, c],
        db_path=[str(toy_sqlite), None, str(toy_sqlite), str(toy_sqlite.parent / "missing.sqlite"), str(toy_sqlite)],
        gold_sql=[None, GOLD, "  ", GOLD, "SELECT nope FROM singer"],
    )
    assert got == [0.0, 0.0, 0.0, 0.0, 0.0]  # no gold, no db, blank gold, missing file, gold that fails


def test_gold_runs_once_for_the_whole_run(reward: ExecutionReward, toy_sqlite: Path) -> None:
    group = [answer(GOLD), answer(GOLD + " "), answer("SELECT name FROM singer"), answer(GOLD)]
    for _ in range(3):  # three training steps over the same question
        assert reward(None, group, db_path=[str(toy_sqlite)] * 4, gold_sql=[GOLD] * 4) == [1.0, 1.0, 0.1, 1.0]
    # gold and the candidates normalise to two distinct queries: executed once each, ever
    assert reward.verifier.stats["executed"] == 2
    assert reward.verifier.stats["requested"] == 3 * 2 * 4


def test_a_verifier_passed_in_is_shared_and_left_open(toy_sqlite: Path) -> None:
    with Verifier(workers=1, timeout=0.5) as verifier:  # a real worker pool
        r = ExecutionReward(verifier)
        assert r.__name__ == "execution"
        got = r(None, [answer(GOLD), answer(HANG)], db_path=[str(toy_sqlite)] * 2, gold_sql=[GOLD] * 2)
        assert got == [1.0, 0.0]
        r.close()
        assert r.verifier is verifier and verifier._pool is not None  # still the caller's
    with pytest.raises(TypeError, match="not both"):
        ExecutionReward(Verifier(workers=0), timeout=1)


def test_custom_values(toy_sqlite: Path) -> None:
    r = ExecutionReward(workers=0, correct=2.0, executes=0.5)
    wrong = answer("SELECT name FROM singer")
    assert r(None, [answer(GOLD), wrong], db_path=[toy_sqlite] * 2, gold_sql=[GOLD] * 2) == [2.0, 0.5]  # a Path too
    r.close()


def test_module_level_instance_is_named_and_lazy() -> None:
    assert execution_reward.__name__ == "execution"
    assert execution_reward._verifier is None  # no pool until first use


PERFECT_THINK = (
    "First, the question asks which singers come from France, so the answer reads table singer.\n"
    "1. Table singer holds the name and the country of every singer.\n"
    "2. Filter on country because only singers from one country count.\n"
    "3. Then return name; no join, no aggregation, no issue to report."
)


def test_reward_hacking_perfect_reasoning_with_a_wrong_sql_loses(toy_sqlite: Path) -> None:
    """Perfect think/self-assessment text and a wrong SQL must score below a bare correct SQL."""
    hack = answer("SELECT name FROM singer WHERE country = 'Spain'", PERFECT_THINK)
    plain = GOLD
    columns = {"db_path": [str(toy_sqlite)] * 2, "gold_sql": [GOLD] * 2, "type": ["sql"] * 2}
    # the hack maxes out every text reward: it is only the SQL that is wrong
    for name, fn in PROCESS_REWARDS.items():
        assert fn(None, [hack], type=["sql"])[0] == 1.0, name
    r = ExecutionReward(workers=0)
    total = combine(None, execution=r)
    hack_score, plain_score = total(None, [hack, plain], **columns)
    # hack: 1.0 * 0.1 + 0.1 + 0.04 + 0.05 + 0.05 + 0.06; plain: 1.0 * 1 + type 0.04 + sql_structure 0.06
    assert (hack_score, plain_score) == pytest.approx((0.4, 1.1))
    assert hack_score < plain_score
    # the seed's text-only weights reward the hack instead: why lfkit defaults to execution-led
    seed_hack, seed_plain = combine(SEED_WEIGHTS)(None, [hack, plain], **columns)
    assert seed_hack > seed_plain
    assert DEFAULT_WEIGHTS["execution"] == 1.0
    r.close()


def test_doctests() -> None:
    result = doctest.testmod(execution_module)
    assert result.attempted >= 5 and result.failed == 0

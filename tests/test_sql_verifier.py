"""Verifier: result cache, process pool, dying workers, agreement with in-process execution."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from lfkit.sql import ExecPool, Verifier, execute_sql, normalize_sql, results_match

GOLD = "SELECT name FROM singer WHERE country = 'France'"
SLOW = "SELECT count(*) FROM nums a, nums b, nums c"


def test_cache_runs_each_gold_and_each_distinct_candidate_once(toy_sqlite: Path) -> None:
    candidates = [
        "SELECT name FROM singer WHERE country = 'France'",
        "select NAME from SINGER where COUNTRY='France';",
        "SELECT s.name FROM singer AS s WHERE s.country = 'France'",
        "SELECT T1.name FROM singer T1 WHERE T1.country = 'France'",
        "SELECT name FROM singer WHERE country = 'Spain'",
        "SELECT name FROM singer WHERE country = 'Spain'",
        "SELECT nme FROM singer",
        "",
    ]
    with Verifier(workers=0) as verifier:
        verdicts = verifier.verify([(toy_sqlite, GOLD, c) for c in candidates])
        # gold once + 3 distinct runnable candidates ("" is answered without executing)
        assert verifier.stats == {"requested": 16, "executed": 4, "cache_hits": 12}
        assert [v.correct for v in verdicts] == [True, True, True, True, False, False, False, False]
        assert [v.status for v in verdicts] == ["ok"] * 6 + ["error", "error"]
        assert "empty SQL" in verdicts[-1].pred.error
        # a second batch for the same question executes nothing new (every text seen is cached)
        verifier.verify([(toy_sqlite, GOLD, candidates[1])])
        assert verifier.stats["executed"] == 4


def test_one_candidate_per_question_is_keyed_by_exact_text_without_normalising(toy_sqlite: Path) -> None:
    # scoring: each question has one prediction; re-spellings are not worth a sqlglot parse each
    spain = "SELECT name FROM singer WHERE country = 'Spain'"
    items = [
        (toy_sqlite, GOLD, "select NAME from SINGER where COUNTRY='France';"),  # right, other spelling
        (toy_sqlite, spain, "SELECT name FROM singer WHERE country='France'"),  # wrong, a third spelling
    ]
    before = normalize_sql.cache_info()
    with Verifier(workers=0) as verifier:
        verdicts = verifier.verify(items)
        assert verifier.stats == {"requested": 4, "executed": 4, "cache_hits": 0}
        assert [v.correct for v in verdicts] == [True, False]
        # the same gold for two questions (paraphrases): normalize=False keeps them apart too
        verifier.verify(
            [(toy_sqlite, GOLD, "SELECT  name FROM singer WHERE country = 'France'"), items[0]], normalize=False
        )
        assert verifier.stats == {"requested": 8, "executed": 5, "cache_hits": 3}
    after = normalize_sql.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)


def test_execute_many_normalize_shares_spellings_and_remembers_them(toy_sqlite: Path) -> None:
    spellings = [
        GOLD,
        "select NAME from SINGER where COUNTRY='France';",
        "SELECT name\nFROM singer -- c\nWHERE country = 'France'",
    ]
    with Verifier(workers=0) as verifier:
        assert len({r.rows for r in verifier.execute_many([(toy_sqlite, s) for s in spellings])}) == 1
        assert verifier.stats["executed"] == 3  # exact texts by default
    with Verifier(workers=0) as verifier:
        results = verifier.execute_many([(toy_sqlite, s) for s in spellings], normalize=True)
        assert verifier.stats["executed"] == 1 and len({r.rows for r in results}) == 1
        # a later batch: another spelling of the same query hits the normalised entry
        verifier.execute_many([(toy_sqlite, "SELECT NAME FROM singer WHERE country = 'France'")], normalize=True)
        assert verifier.stats["executed"] == 1


def test_cache_key_is_per_database(tmp_path: Path, toy_sqlite: Path) -> None:
    import shutil
    import sqlite3

    other = tmp_path / "other.sqlite"
    shutil.copy(toy_sqlite, other)
    conn = sqlite3.connect(other)
    conn.execute("DELETE FROM singer WHERE singer_id = 1")
    conn.commit()
    conn.close()
    with Verifier(workers=0) as verifier:
        a, b = verifier.execute_many(
            [(toy_sqlite, "SELECT count(*) FROM singer"), (other, "SELECT count(*) FROM singer")]
        )
    assert (a.rows, b.rows) == (((5,),), ((4,),))


def test_pool_agrees_with_in_process_execution(toy_sqlite: Path) -> None:
    queries = [
        GOLD,
        "SELECT country, count(*) FROM singer GROUP BY country",
        "SELECT avg(net) FROM singer",
        "SELECT * FROM concert ORDER BY year DESC",
        "SELECT nope FROM singer",
        "DELETE FROM singer",
        "SELECT n FROM nums",
    ]
    with Verifier(workers=2, max_rows=2000) as verifier:
        pooled = verifier.execute_many([(toy_sqlite, q) for q in queries])
    local = [execute_sql(toy_sqlite, q, max_rows=2000) for q in queries]
    assert [(r.status, r.rows, r.error) for r in pooled] == [(r.status, r.rows, r.error) for r in local]
    assert [r.status for r in pooled][-3:] == ["error", "error", "too_many_rows"]


def test_slow_queries_time_out_in_parallel(toy_sqlite: Path) -> None:
    # four 1-second timeouts on two workers take about 2 s, not 4 s; gold still runs
    slow = [f"{SLOW} WHERE a.n > {i}" for i in range(4)]
    with Verifier(workers=2, timeout=1.0) as verifier:
        verifier.execute_many([(toy_sqlite, GOLD)])  # start the workers and run gold outside the timing
        start = time.monotonic()
        verdicts = verifier.verify([(toy_sqlite, GOLD, s) for s in slow])
        took = time.monotonic() - start
    assert [v.status for v in verdicts] == ["timeout"] * 4
    assert all(v.gold.ok and not v.correct for v in verdicts)
    assert took < 3.8


def test_dead_worker_is_replaced_and_batch_goes_on(toy_sqlite: Path) -> None:
    tasks = [(toy_sqlite, SLOW)] + [(toy_sqlite, f"SELECT {i}") for i in range(30)]
    with ExecPool(workers=2, timeout=30) as pool:
        killed: list[int] = []

        def kill_the_slow_one() -> None:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not killed:
                for pid, task in pool.worker_pids().items():
                    if task == 0:
                        os.kill(pid, signal.SIGKILL)  # like a segfault in the middle of a query
                        killed.append(pid)
                        return
                time.sleep(0.02)

        killer = threading.Thread(target=kill_the_slow_one)
        killer.start()
        results = pool.run(tasks)
        killer.join()
        assert killed
        assert results[0].status == "error" and "died" in results[0].error and "signal 9" in results[0].error
        assert [r.rows for r in results[1:]] == [((i,),) for i in range(30)]
        assert pool.replaced == 1
        assert killed[0] not in pool.worker_pids()
        assert pool.run([(toy_sqlite, "SELECT count(*) FROM concert")])[0].rows == ((4,),)


def test_worker_that_exits_while_idle_is_replaced(toy_sqlite: Path) -> None:
    with ExecPool(workers=1, timeout=5) as pool:
        assert pool.run([(toy_sqlite, "SELECT 1")])[0].ok
        (pid,) = pool.worker_pids()
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        assert pool.run([(toy_sqlite, "SELECT 2")])[0].rows == ((2,),)


def test_stuck_worker_is_killed_after_grace(toy_sqlite: Path) -> None:
    # SIGSTOP freezes the worker outside SQLite's control: the pool's own deadline kills it
    with ExecPool(workers=1, timeout=0.5, kill_grace=0.5) as pool:
        assert pool.run([(toy_sqlite, "SELECT 1")])[0].ok
        (pid,) = pool.worker_pids()
        os.kill(pid, signal.SIGSTOP)
        start = time.monotonic()
        (res,) = pool.run([(toy_sqlite, "SELECT 2")])
        assert res.status == "timeout" and "killed" in res.error
        assert time.monotonic() - start < 5
        assert pool.run([(toy_sqlite, "SELECT 3")])[0].rows == ((3,),)


def test_tasks_queued_behind_a_killed_query_still_run(toy_sqlite: Path) -> None:
    # more tasks than workers: the worker gets a second task before answering the first
    with ExecPool(workers=1, timeout=0.5, kill_grace=0.5) as pool:
        assert pool.run([(toy_sqlite, "SELECT 1")])[0].ok
        (pid,) = pool.worker_pids()
        os.kill(pid, signal.SIGSTOP)
        results = pool.run([(toy_sqlite, f"SELECT {i}") for i in range(2, 6)])
        assert results[0].status == "timeout" and "killed" in results[0].error
        assert [r.rows for r in results[1:]] == [((i,),) for i in range(3, 6)]
        assert pool.replaced == 1


def test_pool_starts_no_more_workers_than_tasks(toy_sqlite: Path) -> None:
    with ExecPool(workers=4, timeout=5) as pool:
        assert pool.run([(toy_sqlite, "SELECT 1")])[0].rows == ((1,),)
        assert len(pool.worker_pids()) == 1
        assert [r.rows for r in pool.run([(toy_sqlite, f"SELECT {i}") for i in range(3)])] == [
            ((0,),),
            ((1,),),
            ((2,),),
        ]
        assert len(pool.worker_pids()) == 3


def test_verifier_comparison_modes(toy_sqlite: Path) -> None:
    gold = "SELECT name, age FROM singer ORDER BY age, name"
    cand = "SELECT age, name FROM singer ORDER BY age, name"
    for comparison, expected in (("bird", False), ("testsuite", True)):
        with Verifier(comparison=comparison, workers=0) as verifier:
            (verdict,) = verifier.verify([(toy_sqlite, gold, cand)])
        assert verdict.correct is expected
        assert verdict.correct is results_match(verdict.pred, verdict.gold, comparison, gold_sql=gold)


@pytest.mark.parametrize("kwargs", [{"comparison": "nope"}, {"timeout": 0}, {"workers": -1}, {"max_rows": 0}])
def test_verifier_validates_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Verifier(**kwargs)


def test_missing_database_reported_per_item(tmp_path: Path, toy_sqlite: Path) -> None:
    with Verifier(workers=1) as verifier:
        bad, good = verifier.execute_many([(tmp_path / "gone.sqlite", "SELECT 1"), (toy_sqlite, "SELECT 1")])
    assert bad.status == "error" and "cannot open database" in bad.error
    assert good.rows == ((1,),)
    assert not (tmp_path / "gone.sqlite").exists()

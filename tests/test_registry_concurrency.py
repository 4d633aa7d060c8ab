"""Concurrent `lfkit register` into one dataset_info.json: every entry survives, no backup is overwritten."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from lfkit.registry import backup_file, register

N_PROCESSES = 16
BACKUPS_EACH = 4


def _register_one(info: str, data: str, name: str, barrier, results) -> None:  # runs in a child process
    barrier.wait()  # all start at once: the read-modify-write cycles overlap
    result = register(info, name, data, "sft")
    results.put((name, result.action, str(result.backup)))


def test_sixteen_processes_registering_at_once_keep_every_entry_and_backup(tmp_path: Path) -> None:
    data = tmp_path / "sft.json"
    data.write_text(json.dumps([{"instruction": "Write SQL.", "input": "Question: q?", "output": "SELECT 1"}]))
    info = tmp_path / "dataset_info.json"
    info.write_text(json.dumps({"existing": {"file_name": "x.json"}}) + "\n")
    ctx = multiprocessing.get_context("fork")  # real processes, started without re-importing lfkit
    barrier, results = ctx.Barrier(N_PROCESSES), ctx.Queue()
    names = [f"set_{i:02d}" for i in range(N_PROCESSES)]
    procs = [ctx.Process(target=_register_one, args=(str(info), str(data), n, barrier, results)) for n in names]
    for p in procs:
        p.start()
    reports = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(r[0] for r in reports) == names and {r[1] for r in reports} == {"added"}
    saved = json.loads(info.read_text(encoding="utf-8"))
    assert sorted(saved) == sorted(["existing", *names])  # no registration lost
    # Each process saved the file it replaced under its own name: 16 distinct backups whose
    # contents are the 16 successive states (1 entry, 2 entries, ... 16 entries).
    backups = [Path(r[2]) for r in reports]
    assert len(set(backups)) == N_PROCESSES
    assert sorted(tmp_path.glob("dataset_info.json.*.bak")) == sorted(backups)
    sizes = sorted(len(json.loads(b.read_text(encoding="utf-8"))) for b in backups)
    assert sizes == list(range(1, N_PROCESSES + 1))
    assert not list(tmp_path.glob(".dataset_info.json.*")), "a temporary or lock file was left behind"


def _backup_many(info: str, when: float, barrier, results) -> None:  # runs in a child process
    barrier.wait()
    for _ in range(BACKUPS_EACH):
        results.put(str(backup_file(info, when=when)))


def test_backups_made_at_once_in_one_second_get_distinct_names(tmp_path: Path) -> None:
    info = tmp_path / "dataset_info.json"
    info.write_text("{}\n")
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(N_PROCESSES), ctx.Queue()
    when = 1_764_750_900.0  # one fixed second for all: only the counter tells the copies apart
    procs = [ctx.Process(target=_backup_many, args=(str(info), when, barrier, results)) for _ in range(N_PROCESSES)]
    for p in procs:
        p.start()
    names = [results.get(timeout=120) for _ in range(N_PROCESSES * BACKUPS_EACH)]
    for p in procs:
        p.join(timeout=60)
    assert len(set(names)) == N_PROCESSES * BACKUPS_EACH
    assert len(list(tmp_path.glob("dataset_info.json.*.bak"))) == N_PROCESSES * BACKUPS_EACH
    assert all(Path(n).read_text() == "{}\n" for n in names)

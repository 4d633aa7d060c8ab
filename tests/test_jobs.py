"""lfkit.jobs: the generic journal, shards, resume and merge (prefs' end-to-end guarantees are in
tests/test_prefs_resume.py, which SIGKILLs a real process)."""

from __future__ import annotations

import doctest
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

import lfkit.jobs
from lfkit.errors import LfkitError
from lfkit.io import DataFileError, read_rows
from lfkit.jobs import (
    JobError,
    Journal,
    check_shard,
    file_sha256,
    merge_row_files,
    run_batches,
    settings_fingerprint,
    shard,
)


@dataclass
class Node:
    name: str

    @property
    def key(self) -> str:
        return self.name


def open_journal(path: Path, settings: dict | None = None, **kw) -> Journal:
    return Journal(path, settings_fingerprint(settings or {"depth": 2}), key=lambda rec: rec["node"], **kw)


def squares(calls: list[list[str]]):
    def process(batch: list[Node]) -> list[dict]:
        calls.append([n.name for n in batch])
        return [{"node": n.name, "value": len(n.name) ** 2} for n in batch]

    return process


def test_journal_format_and_resume(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "j.jsonl"
    nodes = [Node(x) for x in ("a", "bb", "ccc", "dddd", "eeeee")]
    calls: list[list[str]] = []

    def crash_on_third(batch: list[Node]) -> list[dict]:
        if len(calls) == 2:
            raise RuntimeError("killed")
        return squares(calls)(batch)

    with open_journal(path) as journal, pytest.raises(RuntimeError, match="killed"):
        run_batches(journal, nodes, crash_on_third, batch_size=2, progress=False)
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"lfkit_journal": 1, "settings": {"depth": 2}}
    assert [json.loads(line)["node"] for line in lines[1:]] == ["a", "bb", "ccc", "dddd"]  # two whole batches

    with path.open("a") as fh:  # a kill during a write leaves a torn line
        fh.write('{"node": "eeeee", "val')
    calls.clear()
    with open_journal(path) as journal:
        assert journal.resumed == 4 and "bb" in journal and "eeeee" not in journal
        assert run_batches(journal, nodes, squares(calls), batch_size=2, progress=False) == 1
        assert calls == [["eeeee"]]
        assert journal.records["eeeee"] == {"node": "eeeee", "value": 25}
    records = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    assert [r["node"] for r in records] == ["a", "bb", "ccc", "dddd", "eeeee"]  # none lost, none twice

    calls.clear()
    with open_journal(path) as journal:  # all done: nothing to process
        assert run_batches(journal, nodes, squares(calls), progress=False) == 0 and calls == []


def test_concurrent_batches_keep_every_returned_record_when_one_fails(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "j.jsonl"
    nodes = [Node(x) for x in "abcdefgh"]
    failing = threading.Event()
    returned: list[str] = []

    def process(batch: list[Node]) -> list[dict]:
        name = batch[0].name
        if name == "b":
            failing.set()
            raise RuntimeError("request failed")
        if name in "ac":  # in flight while "b" fails: they still finish and must be journalled
            assert failing.wait(30)
        returned.append(name)
        return [{"node": name, "value": 1}]

    with open_journal(path) as journal, pytest.raises(RuntimeError, match="request failed"):
        run_batches(journal, nodes, process, batch_size=1, workers=3, progress=False)
    with open_journal(path) as journal:
        assert {"a", "c"} <= set(journal.records) and "b" not in journal
        assert sorted(journal.records) == sorted(returned)  # every record that came back, none other
        returned.clear()
        failing.set()
        assert run_batches(journal, nodes, squares([]), batch_size=1, workers=3, progress=False) == 8 - journal.resumed
    keys = [json.loads(line)["node"] for line in path.read_text().splitlines()[1:]]
    assert sorted(keys) == list("abcdefgh")  # none lost, none twice


def test_other_settings_are_refused_unless_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with open_journal(path, {"depth": 2, "seed": 1}) as journal:
        run_batches(journal, [Node("a")], squares([]), progress=False)
    with pytest.raises(JobError, match=r"other settings \(depth: 2 -> 3\).*--overwrite"):
        open_journal(path, {"depth": 3, "seed": 1})
    with open_journal(path, {"depth": 3, "seed": 1}, overwrite=True) as journal:
        assert journal.resumed == 0
    assert json.loads(path.read_text().splitlines()[0])["settings"] == {"depth": 3, "seed": 1}
    assert len(path.read_text().splitlines()) == 1


def test_foreign_files_and_locks(tmp_path: Path) -> None:
    user = tmp_path / "data.json"
    user.write_text('[{"a": 1}]\n')
    with pytest.raises(JobError, match="not an lfkit journal"):
        open_journal(user, overwrite=True)
    assert user.read_text() == '[{"a": 1}]\n'  # never truncated
    held = open_journal(tmp_path / "j.jsonl")
    try:
        with pytest.raises(JobError, match="another run is writing"):
            open_journal(tmp_path / "j.jsonl")
    finally:
        held.close()
    open_journal(tmp_path / "j.jsonl").close()
    assert issubclass(JobError, LfkitError)


def test_callback_must_return_one_record_per_item_in_order(tmp_path: Path) -> None:
    with open_journal(tmp_path / "j.jsonl") as journal:
        with pytest.raises(RuntimeError, match=r"records for \['b', 'a'\], expected \['a', 'b'\]"):
            run_batches(journal, [Node("a"), Node("b")], lambda b: [{"node": "b"}, {"node": "a"}], progress=False)
        assert journal.records == {}  # nothing journalled under the wrong items
        with pytest.raises(ValueError, match="batch_size"):
            run_batches(journal, [Node("a")], squares([]), batch_size=0, progress=False)


def test_shards_partition_by_position() -> None:
    items = list(range(10))
    parts = [shard(items, 3, k) for k in range(3)]
    assert parts == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(x for p in parts for x in p) == items
    assert shard(items, 1, 0) == items
    for k, i in [(0, 0), (2, 2), (2, -1)]:
        with pytest.raises(ValueError, match="shard_id must be in"):
            shard(items, k, i)
    check_shard(4, 3)


def test_fingerprint_and_file_hash(tmp_path: Path) -> None:
    assert settings_fingerprint({"t": (1, 2), "p": Path("x").as_posix()}) == {"t": [1, 2], "p": "x"}
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    assert file_sha256(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")


def test_merge_row_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.json"
    a.write_text('{"id": 2, "v": "x"}\n{"id": 1, "v": "y"}\n')
    b.write_text(json.dumps([{"id": 1, "v": "y"}, {"id": 0, "v": "z"}]))

    def kind(path: Path, i: int, row: dict) -> str:
        if "v" not in row:
            raise DataFileError(f"{path}: row {i}: field 'v' is missing")
        return "kv"

    stats = merge_row_files(
        [a, b], tmp_path / "m.json", kind=kind, dedup_key=lambda k, r: (r["id"], r["v"]), order=lambda r: r["id"]
    )
    assert read_rows(tmp_path / "m.json") == [{"id": 0, "v": "z"}, {"id": 1, "v": "y"}, {"id": 2, "v": "x"}]
    assert stats == {
        "inputs": 2,
        "rows_read": 4,
        "duplicates": 1,
        "rows": 3,
        "kind": "kv",
        "output": str(tmp_path / "m.json"),
    }
    with pytest.raises(ValueError, match="also an input"):
        merge_row_files([a], a, kind=kind, dedup_key=lambda k, r: r["id"])
    with pytest.raises(ValueError, match="nothing to merge"):
        merge_row_files([], tmp_path / "m.json", kind=kind, dedup_key=lambda k, r: r["id"])
    b.write_text('[{"id": 5}]')
    with pytest.raises(DataFileError, match=r"b\.json: row 0: field 'v'"):
        merge_row_files([a, b], tmp_path / "m.json", kind=kind, dedup_key=lambda k, r: r["id"])


def test_module_doctest() -> None:
    assert doctest.testmod(lfkit.jobs).failed == 0

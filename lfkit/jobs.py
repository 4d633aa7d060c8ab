"""The resumable, sharded job engine: journal, settings fingerprint, shards, merge.

A job processes items (each with a string key) in batches; a callback turns a batch into
one record per item. Records go to a journal -- a JSONL file whose first line is a header
``{"lfkit_journal": 1, "settings": {...}}`` naming the settings that decide the records,
followed by one record per finished item, appended and fsynced batch by batch. Killed at
any point (even SIGKILL mid-write), the same command resumes: a torn last line is cut
off, finished items are skipped, and a journal written with other settings is refused
rather than mixed. The job's output is derived from the finished journal by the caller
and written atomically, so no output row is lost or written twice.

Used by ``lfkit prefs rejects|cot`` and ``lfkit eval predict`` (items: questions) and meant
for any later job (``tree build``, ...). Shards split the items by position (``i % num_shards``); their
outputs are joined by :func:`merge_row_files`.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "j.jsonl"
>>> items = ["a", "b", "c"]
>>> with Journal(path, settings_fingerprint({"seed": 1}), key=lambda r: r["id"]) as journal:
...     run_batches(journal, items, lambda batch: [{"id": x, "n": len(x)} for x in batch], key=str, progress=False)
3
>>> with Journal(path, {"seed": 1}, key=lambda r: r["id"]) as journal:
...     journal.resumed, run_batches(journal, items, lambda batch: 1 / 0, key=str, progress=False)
(3, 0)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar

from lfkit.errors import LfkitError
from lfkit.io import DataFileError, append_jsonl, iter_jsonl, read_rows, write_rows
from lfkit.progress import progress_bar

JOURNAL_VERSION = 1
T = TypeVar("T")
Record = dict[str, Any]


class JobError(LfkitError):
    """A job cannot run as asked: a journal from other settings, one in use, a file that is not a journal, ..."""


# ----------------------------------------------------------------------------- settings and shards


def settings_fingerprint(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings as they read back from a journal header (JSON round trip: tuples -> lists, ...).

    >>> settings_fingerprint({"temperature": 0.7, "sizes": (1, 2)})
    {'temperature': 0.7, 'sizes': [1, 2]}
    """
    return json.loads(json.dumps(dict(settings)))


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes: put it in the settings so an edited input is not resumed."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_shard(num_shards: int, shard_id: int) -> None:
    """Raise ValueError unless ``num_shards >= 1`` and ``0 <= shard_id < num_shards``."""
    if num_shards < 1 or not 0 <= shard_id < num_shards:
        raise ValueError(f"shard_id must be in 0..{num_shards - 1} (num_shards={num_shards}), got {shard_id}")


def shard(items: Sequence[T], num_shards: int, shard_id: int) -> list[T]:
    """The items at positions ``i`` with ``i % num_shards == shard_id``, in order.

    The shards of one list are disjoint and together hold every item exactly once.

    >>> shard(list("abcdefg"), 3, 1)
    ['b', 'e']
    """
    check_shard(num_shards, shard_id)
    return [item for i, item in enumerate(items) if i % num_shards == shard_id]


# ----------------------------------------------------------------------------- journal


class Journal:
    """Header + one record per finished item, appended with fsync; locked while open.

    ``key(record)`` is the item key a record belongs to; ``records`` maps keys to records
    (read back on resume), ``resumed`` counts the records found when opening. A context
    manager; ``close()`` releases the lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        settings: Mapping[str, Any],
        *,
        key: Callable[[Mapping[str, Any]], str],
        overwrite: bool = False,
    ) -> None:
        self.path = path = Path(path)
        self.header = dict(settings)
        self.key = key
        self.records: dict[str, Record] = {}
        self.resumed = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        # The journal itself carries the lock (append mode creates it, never truncates it).
        self._lock_fh = open(path, "a")  # noqa: SIM115 -- held for the job's lifetime
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock_fh.close()
            raise JobError(f"another run is writing {path}") from exc
        try:
            if path.stat().st_size and not self._is_journal():  # never touch a file that is not ours
                raise JobError(f"{path} exists and is not an lfkit journal; choose another --journal/--output")
            if overwrite:
                os.truncate(path, 0)
            self._load()
        except BaseException:
            self.close()
            raise

    def _load(self) -> None:
        if self.path.stat().st_size:
            self._drop_torn_tail()
            try:
                records = list(iter_jsonl(self.path))
            except json.JSONDecodeError as exc:
                raise JobError(f"journal {self.path} is corrupt ({exc}); delete it or pass --overwrite") from exc
            if records:
                old = records[0].get("settings")
                if records[0].get("lfkit_journal") != JOURNAL_VERSION or old != self.header:
                    raise JobError(self._mismatch(old))
                for rec in records[1:]:
                    self.records[self.key(rec)] = rec
                self.resumed = len(self.records)
                return
        append_jsonl(self.path, [{"lfkit_journal": JOURNAL_VERSION, "settings": self.header}])

    def _is_journal(self) -> bool:
        with self.path.open("rb") as fh:
            first = fh.readline()
        try:
            return isinstance(head := json.loads(first), dict) and "lfkit_journal" in head
        except (json.JSONDecodeError, UnicodeDecodeError):
            return not first.endswith(b"\n") and first.startswith(b'{"lfkit_journal"')  # a torn header

    def _mismatch(self, old: Any) -> str:
        if not isinstance(old, dict):
            return f"{self.path} is not an lfkit journal; delete it or pass --overwrite"
        keys = sorted(set(old) | set(self.header))
        diffs = [f"{k}: {old.get(k)!r} -> {self.header.get(k)!r}" for k in keys if old.get(k) != self.header.get(k)]
        return (
            f"journal {self.path} was written with other settings ({'; '.join(diffs)}). "
            "Resume with the same settings, or pass --overwrite to start again."
        )

    def _drop_torn_tail(self) -> None:
        # A crash can leave half a line; appending after it would glue two records together.
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            with self.path.open("r+b") as fh:
                fh.truncate(end)
                fh.flush()
                os.fsync(fh.fileno())

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def add(self, records: Sequence[Record]) -> None:
        """Append finished records (one fsynced write) and index them."""
        append_jsonl(self.path, records)
        for rec in records:
            self.records[self.key(rec)] = rec

    def close(self) -> None:
        if not self._lock_fh.closed:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_batches(
    journal: Journal,
    items: Sequence[T],
    process: Callable[[list[T]], Sequence[Record]],
    *,
    key: Callable[[T], str] = attrgetter("key"),
    batch_size: int = 8,
    workers: int = 1,
    progress: bool = True,
    description: str = "items",
) -> int:
    """Process every item the journal lacks, ``batch_size`` at a time; returns how many were processed.

    ``process(batch)`` returns one record per item, in order (``journal.key(record) ==
    key(item)``, checked); each batch is journalled as soon as it returns, so a kill loses at
    most the batches in flight. ``workers > 1`` runs that many batches at once in threads
    (for a ``process`` that waits on a server): when one fails, no further batch starts, the
    ones already running finish and are journalled, then the first error is raised -- every
    answer that came back is kept, and a re-run asks only for the rest.
    """
    if batch_size < 1 or workers < 1:
        raise ValueError(f"batch_size and workers must be >= 1, got {batch_size} and {workers}")
    todo = [it for it in items if key(it) not in journal]
    done = len(items) - len(todo)
    batches = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)]

    def record(batch: list[T], records: Sequence[Record]) -> None:
        got, want = [journal.key(r) for r in records], [key(it) for it in batch]
        if got != want:  # a bug in the callback: never journal records under the wrong items
            raise RuntimeError(f"job callback returned records for {got}, expected {want}")
        journal.add(records)  # always from this thread: the journal is written by one writer
        bar.advance(len(batch))

    with progress_bar(description, len(items), done=done, enabled=progress, transient=False, eta=True) as bar:
        bar.update()  # show where a resumed job starts
        if workers == 1:
            for batch in batches:
                record(batch, list(process(batch)))
        else:
            _run_concurrently(batches, process, record, workers)
    return len(todo)


def _run_concurrently(
    batches: list[list[T]],
    process: Callable[[list[T]], Sequence[Record]],
    record: Callable[[list[T], Sequence[Record]], None],
    workers: int,
) -> None:
    """:func:`run_batches` with ``workers`` batches in flight; ``record`` runs in the calling thread."""
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    pending: dict[Future, list[T]] = {}
    queue = iter(batches)
    error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=workers) as pool:

        def submit() -> None:
            batch = next(queue, None)
            if batch is not None:
                pending[pool.submit(lambda b: list(process(b)), batch)] = batch

        for _ in range(workers):
            submit()
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                batch = pending.pop(future)
                try:
                    records = future.result()
                except BaseException as exc:  # re-raised once the batches in flight are journalled
                    error = error or exc
                    continue
                record(batch, records)
                if error is None:
                    submit()
    if error is not None:
        raise error


# ----------------------------------------------------------------------------- merging shard outputs


def merge_row_files(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    kind: Callable[[Path, int, dict[str, Any]], str],
    dedup_key: Callable[[str, dict[str, Any]], Hashable],
    order: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, Any]:
    """Join row files (shard outputs) into ``output`` (atomic; JSONL by extension).

    ``kind(path, i, row)`` names each row's kind (raising DataFileError for a bad row);
    all inputs must hold one kind. The first row per ``dedup_key(kind, row)`` is kept;
    ``order(row)`` sorts the result (stable: ties keep file order), so it does not depend
    on the order the files are given in. Returns counts.
    """
    if not inputs:
        raise ValueError("nothing to merge: give at least one input file")
    out_path = Path(output).resolve()
    kinds: dict[str, Path] = {}
    seen: set[Hashable] = set()
    rows: list[dict[str, Any]] = []
    read = duplicates = 0
    for name in inputs:
        path = Path(name)
        if path.resolve() == out_path:
            raise ValueError(f"--output {output} is also an input; write the merge to a new file")
        for i, row in enumerate(read_rows(path)):
            read += 1
            row_kind = kind(path, i, row)
            kinds.setdefault(row_kind, path)
            if len(kinds) > 1:
                a, b = sorted(kinds.items())
                raise DataFileError(f"cannot merge {a[0]} rows ({a[1]}) with {b[0]} rows ({b[1]})")
            k = dedup_key(row_kind, row)
            if k in seen:
                duplicates += 1
                continue
            seen.add(k)
            rows.append(row)
    if order is not None:
        rows.sort(key=order)
    write_rows(output, rows)
    return {
        "inputs": len(inputs),
        "rows_read": read,
        "duplicates": duplicates,
        "rows": len(rows),
        "kind": next(iter(kinds), "empty"),
        "output": str(output),
    }

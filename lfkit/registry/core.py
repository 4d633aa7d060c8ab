"""Validated ``dataset_info.json`` entries for lfkit's datasets.

LLaMA-Factory finds a dataset through ``<dataset_dir>/dataset_info.json``. When an entry
has ``columns``, every column it does not list is reset to None: a mapping with the wrong
keys (``{"instruction": "instruction", ...}`` instead of ``{"prompt": "instruction", ...}``,
naming the data fields where LLaMA-Factory expects its column keys) leaves every response
empty and training stops with "Cannot find valid samples". lfkit writes entries only from :data:`KINDS`, checks them
against ``dataset_info/entry.schema.json`` and validates the data file first.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from lfkit.errors import LfkitError
from lfkit.io import DataFileError, atomic_write_text, read_rows
from lfkit.resources import resource_dir

SCHEMA_FILE = "entry.schema.json"
# Data files LLaMA-Factory loads with its json loader (FILEEXT2TYPE) and lfkit writes.
DATA_SUFFIXES = (".json", ".jsonl")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")  # `dataset: a,b` in a recipe splits on commas


class RegistryError(LfkitError, ValueError):
    """A dataset_info.json entry cannot be written (conflict, bad name, malformed file)."""


@dataclass(frozen=True)
class DatasetKind:
    """One kind of lfkit dataset and its LLaMA-Factory column mapping."""

    name: str = field(metadata={"help": "Kind name used by `lfkit register --kind`."})
    columns: dict[str, str] = field(metadata={"help": "LLaMA-Factory column key -> field of the data rows."})
    ranking: bool = field(default=False, metadata={"help": "Pairwise preference data (`ranking: true`)."})
    description: str = field(default="", metadata={"help": "One line for --help."})

    def __post_init__(self) -> None:
        if self.ranking != ("chosen" in self.columns and "rejected" in self.columns):
            raise ValueError(f"kind {self.name}: ranking kinds map exactly chosen and rejected")


# The one definition of each kind's mapping (DESIGN.md "dataset_info entries").
KINDS: dict[str, DatasetKind] = {
    "sft": DatasetKind(
        "sft",
        {"prompt": "instruction", "query": "input", "response": "output"},
        description="alpaca SFT rows: instruction, input, output",
    ),
    "preference": DatasetKind(
        "preference",
        {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"},
        ranking=True,
        description="alpaca pairwise rows for dpo / rm: instruction, input, chosen, rejected",
    ),
    "cot": DatasetKind(
        "cot",
        {"prompt": "instruction", "query": "input", "response": "output"},
        description="SFT-shaped rows whose output is <think>reasoning</think> then the answer",
    ),
}
KIND_COLUMNS: dict[str, dict[str, str]] = {name: dict(kind.columns) for name, kind in KINDS.items()}

# The entries shipped in dataset_info/dataset_info.json (`lfkit install` copies them; a test keeps them in sync).
STANDARD_DATASETS: dict[str, tuple[str, str]] = {
    "text2sql_sft": ("sft", "text2sql_sft.json"),
    "text2sql_dpo": ("preference", "text2sql_dpo.jsonl"),
    "text2sql_cot": ("cot", "text2sql_cot.json"),
}

# LLaMA-Factory's column keys that make up the user turn: its alpaca converter joins the
# truthy ones with "\n" and skips the rest, so "" / null / an absent key are all fine there.
PROMPT_COLUMNS = ("prompt", "query")

_THINK = re.compile(r"^\s*<think>(?P<reasoning>.*?)</think>(?P<answer>.*)$", re.DOTALL)


def entry_for(kind: str, file_name: str) -> dict[str, Any]:
    """The dataset_info.json entry for a data file of ``kind`` (``file_name`` relative to dataset_dir)."""
    spec = _kind(kind)
    entry: dict[str, Any] = {"file_name": file_name, "formatting": "alpaca"}
    if spec.ranking:
        entry["ranking"] = True
    entry["columns"] = dict(spec.columns)
    return entry


def standard_entries() -> dict[str, dict[str, Any]]:
    """lfkit's standard dataset names and entries (the content of dataset_info/dataset_info.json)."""
    return {name: entry_for(kind, file_name) for name, (kind, file_name) in STANDARD_DATASETS.items()}


def _kind(kind: str) -> DatasetKind:
    if kind not in KINDS:
        raise RegistryError(f"unknown dataset kind '{kind}'; choose one of: {', '.join(KINDS)}")
    return KINDS[kind]


@cache
def entry_schema() -> dict[str, Any]:
    """The JSON Schema of an lfkit dataset_info entry (``dataset_info/entry.schema.json``)."""
    return json.loads((resource_dir("dataset_info") / SCHEMA_FILE).read_text(encoding="utf-8"))


def validate_entry(entry: dict[str, Any], where: str = "entry") -> None:
    """Check an entry against the JSON Schema; the error names the offending key."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(entry_schema())
    errors = sorted(validator.iter_errors(entry), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        path = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise RegistryError(f"{where}: '{path}': {err.message}")


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def validate_data_file(path: str | os.PathLike[str], kind: str) -> int:
    """Check that a data file is what LLaMA-Factory needs for ``kind``; return its row count.

    The rules, as LLaMA-Factory 0.9.5's alpaca converter and preprocessing treat a row:

    - prompt fields (``instruction``, ``input``): a string (empty allowed) or null, or absent
      from the row; LLaMA-Factory joins the non-empty ones into the user turn. Each must be
      present in at least one row: a column absent from the whole file makes its loader fail
      with ``KeyError``.
    - answer fields (``output``; ``chosen`` and ``rejected``): present and strings; a null or
      absent answer is dropped by LLaMA-Factory ("Dropped invalid example"), so it is refused
      here. lfkit is stricter on purpose in one point: an empty answer, which LLaMA-Factory
      would train on as "say nothing", is refused too.
    - preference rows need ``chosen != rejected``; CoT outputs need ``<think>reasoning</think>answer``.
    - every column keeps one JSON type across rows (LLaMA-Factory loads the file with
      ``datasets``, whose Arrow schema rejects a column that changes type); nulls are fine.

    Raises :class:`~lfkit.io.DataFileError` naming the file, row and field.
    """
    spec = _kind(kind)
    path = Path(path)
    if path.suffix not in DATA_SUFFIXES:
        raise DataFileError(
            f"{path}: LLaMA-Factory reads lfkit data as {' or '.join(DATA_SUFFIXES)}, not '{path.suffix}'"
        )
    rows = read_rows(path)
    if not rows:
        raise DataFileError(f"{path}: no rows")
    prompt_fields = [spec.columns[c] for c in PROMPT_COLUMNS if c in spec.columns]
    answer_fields = [f for c, f in spec.columns.items() if c not in PROMPT_COLUMNS]
    for f in prompt_fields:
        if not any(f in row for row in rows):
            raise DataFileError(
                f"{path}: field '{f}' is in no row (kind '{kind}' maps it and LLaMA-Factory's loader "
                f"fails with KeyError: '{f}'); give it as \"\" where there is none"
            )
    column_types: dict[str, tuple[str, int]] = {}
    for i, row in enumerate(rows):
        for f in prompt_fields:
            value = row.get(f)
            if value is not None and not isinstance(value, str):
                raise DataFileError(f"{path}: row {i}: field '{f}' must be a string or null, got {_json_kind(value)}")
        for f in answer_fields:
            if f not in row:
                raise DataFileError(f"{path}: row {i}: field '{f}' is missing (kind '{kind}' maps it)")
            value = row[f]
            if not isinstance(value, str):
                raise DataFileError(f"{path}: row {i}: field '{f}' must be a string, got {_json_kind(value)}")
            if not value.strip():
                raise DataFileError(f"{path}: row {i}: field '{f}' is empty")
        if spec.ranking and row["chosen"].strip() == row["rejected"].strip():
            raise DataFileError(f"{path}: row {i}: field 'rejected' equals 'chosen' (a pair needs two answers)")
        if kind == "cot":
            m = _THINK.match(row["output"])
            if m is None:
                raise DataFileError(f"{path}: row {i}: field 'output' must start with <think>...</think>")
            if not m["reasoning"].strip() or not m["answer"].strip():
                raise DataFileError(
                    f"{path}: row {i}: field 'output' needs reasoning inside <think> and an answer after it"
                )
        for key, value in row.items():
            t = _json_kind(value)
            if t == "null":
                continue
            seen = column_types.setdefault(key, (t, i))
            if seen[0] != t:
                raise DataFileError(
                    f"{path}: row {i}: field '{key}' is a {t} but row {seen[1]} has a {seen[0]} "
                    "(datasets cannot load a column whose type changes)"
                )
    return len(rows)


def backup_file(path: str | os.PathLike[str], *, when: float | None = None) -> Path:
    """Copy ``path`` byte for byte to a new ``<name>.<YYYYmmdd-HHMMSS>.bak`` beside it; return the copy.

    The stamp is the local time ``when`` (default: now). An existing backup is never
    overwritten, even by another process saving at the same moment: the copy is written to a
    temporary file and then hard-linked to its name, which fails when the name is taken (an
    atomic claim, unlike check-then-write); a second one within the same second is
    ``<name>.<stamp>-2.bak``, then ``-3``, ...
    """
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    data = path.read_bytes()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        counter = 1
        while True:
            backup = path.with_name(f"{path.name}.{stamp}{'' if counter == 1 else f'-{counter}'}.bak")
            try:
                _claim(Path(tmp), backup)
                return backup
            except FileExistsError:
                counter += 1
    finally:
        Path(tmp).unlink(missing_ok=True)


def _claim(tmp: Path, name: Path) -> None:
    """Give the complete file ``tmp`` the name ``name`` unless that exists (FileExistsError)."""
    try:
        os.link(tmp, name)  # atomic and exclusive: the name appears with the whole content
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: claim the name exclusively, then fill it
        with open(name, "xb") as fh:
            fh.write(tmp.read_bytes())
            fh.flush()
            os.fsync(fh.fileno())


# Paths whose lock this thread holds, with a depth: `lfkit install` holds the lock around its
# backup and registrations and each register() takes it again (a second flock on a new file
# descriptor would wait for the first forever).
_held = threading.local()


@contextlib.contextmanager
def locked_dataset_info(dataset_info: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on ``dataset_info`` (a POSIX ``flock`` on a sidecar lock file).

    Every lfkit writer of a dataset_info.json reads, edits and writes it under this lock, so
    concurrent ``lfkit register`` / ``lfkit install`` runs each see the others' entries; the
    lock is on ``.dataset_info.json.lock`` beside it, because the data file itself is replaced
    by a rename (a lock on it would be held on the old inode). The lock file is removed on
    release; a waiter that then finds a different (or no) file at the path locks again.
    Re-entrant within a thread.
    """
    target = Path(dataset_info).resolve()  # a symlink and its target share one lock
    lock_path = target.with_name(f".{target.name}.lock")
    depths: dict[Path, int] = _held.__dict__.setdefault("depths", {})
    if depths.get(lock_path):
        depths[lock_path] += 1
        try:
            yield
        finally:
            depths[lock_path] -= 1
        return
    import fcntl  # POSIX; imported here so the rest of the module imports anywhere

    while True:
        try:  # 0o666 less the umask, like the data file: whoever may write that may lock it
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise RegistryError(f"{dataset_info}: cannot create its lock file {lock_path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = os.fstat(fd)
            try:
                current = os.stat(lock_path)
            except FileNotFoundError:
                current = None
        except BaseException:
            os.close(fd)
            raise
        if current is not None and (current.st_dev, current.st_ino) == (st.st_dev, st.st_ino):
            break  # locked the file that is at the path now
        os.close(fd)  # its holder removed it while this process waited: lock the new one
    depths[lock_path] = 1
    try:
        yield
    finally:
        depths.pop(lock_path, None)
        with contextlib.suppress(FileNotFoundError):
            lock_path.unlink()  # while still holding it: see the docstring
        os.close(fd)


def relative_file_name(dataset_info: str | os.PathLike[str], data_file: str | os.PathLike[str]) -> str:
    """``data_file`` relative to the dataset_info.json folder (LLaMA-Factory's ``dataset_dir``), with '/'."""
    base = Path(dataset_info).resolve().parent
    return Path(os.path.relpath(Path(data_file).resolve(), base)).as_posix()


def read_dataset_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The entries of a dataset_info.json in file order ({} when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    if not isinstance(info, dict):
        raise DataFileError(f"{path}: expected a JSON object of dataset entries, got {type(info).__name__}")
    return info


@dataclass
class Registration:
    """What :func:`register` did."""

    entry: dict[str, Any]
    action: str  # "added" | "replaced" | "unchanged" | "checked"
    rows: int
    dataset_info: Path
    backup: Path | None = None
    previous: dict[str, Any] | None = None


def register(
    dataset_info: str | os.PathLike[str],
    name: str,
    data_file: str | os.PathLike[str],
    kind: str,
    *,
    force: bool = False,
    check: bool = False,
    backup: bool = True,
) -> Registration:
    """Validate ``data_file`` and add (or confirm) its entry ``name`` in ``dataset_info``.

    The file is created when absent. Other entries and their order are kept; an existing
    entry ``name`` that differs is replaced only with ``force`` (in place, same position).
    Before changing an existing file its previous content is saved by :func:`backup_file`
    (unless ``backup`` is false: ``lfkit install`` saves the file once for several entries),
    and the new content is written atomically. ``check`` validates everything and writes nothing.
    The read, edit and write happen under :func:`locked_dataset_info`, so concurrent
    registrations into one file all survive.
    """
    dataset_info = Path(dataset_info)
    if not _NAME.fullmatch(name):
        raise RegistryError(f"dataset name '{name}': use letters, digits, '_', '-' and '.' (no spaces or commas)")
    if dataset_info.name != "dataset_info.json":
        raise RegistryError(f"{dataset_info}: LLaMA-Factory reads its entries only from a file named dataset_info.json")
    data_file = Path(data_file)
    rows = validate_data_file(data_file, kind)
    entry = entry_for(kind, relative_file_name(dataset_info, data_file))
    validate_entry(entry, f"{dataset_info}: entry '{name}'")
    if check:
        return _update(dataset_info, name, entry, rows, force=force, check=True, backup=False)
    with locked_dataset_info(dataset_info):  # read, edit and write as one step (concurrent registers)
        return _update(dataset_info, name, entry, rows, force=force, check=False, backup=backup)


def _update(
    dataset_info: Path, name: str, entry: dict[str, Any], rows: int, *, force: bool, check: bool, backup: bool
) -> Registration:
    info = read_dataset_info(dataset_info)
    previous = info.get(name)
    if previous == entry:
        return Registration(entry, "checked" if check else "unchanged", rows, dataset_info, previous=previous)
    if previous is not None and not force:
        problem = ""
        if isinstance(previous, dict) and "file_name" in previous:
            try:
                validate_entry(previous, "existing entry")
            except RegistryError as exc:  # e.g. a {"instruction": "instruction", ...} mapping
                problem = f"; the existing entry is broken ({exc})"
        raise RegistryError(
            f"{dataset_info}: entry '{name}' exists and differs: {json.dumps(previous)} "
            f"(would write {json.dumps(entry)}){problem}; pass --force to replace it"
        )
    if check:
        return Registration(entry, "checked", rows, dataset_info, previous=previous)
    saved = backup_file(dataset_info) if backup and dataset_info.exists() else None
    info[name] = entry  # an existing key keeps its position
    atomic_write_text(dataset_info, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    return Registration(entry, "replaced" if previous is not None else "added", rows, dataset_info, saved, previous)


def register_dataset(
    dataset_info: str | os.PathLike[str],
    name: str,
    data_file: str | os.PathLike[str],
    kind: str,
    *,
    force: bool = False,
    check: bool = False,
) -> dict[str, Any]:
    """:func:`register` returning just the entry (the contract in docs/CONTRACTS.md)."""
    return register(dataset_info, name, data_file, kind, force=force, check=check).entry

"""File I/O shared by every stage: atomic writes and JSON / JSONL rows.

User files (datasets, dataset_info.json, reports) are always written through
:func:`atomic_write_text`, so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lfkit.errors import LfkitError


class DataFileError(LfkitError, ValueError):
    """A data file is malformed; the message names the file, the row and the field."""


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding=encoding) as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():  # keep the user's permissions on the replaced file
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        else:  # mkstemp makes 0600; a new file gets what open() would give it
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a free temporary path next to ``path``; it replaces ``path`` when the block succeeds.

    For files a library writes itself (an SQLite database, a copy): the block creates the
    file at the yielded path; on an exception the temporary file is removed and ``path``
    is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    Path(tmp).unlink()  # a free name: sqlite3.connect and shutil.copyfile create the file themselves
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    # os.umask can only be read by setting it; restore at once (process-wide, not thread-safe
    # in theory, but nothing in lfkit creates files concurrently from threads).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def is_jsonl(path: str | os.PathLike[str]) -> bool:
    return str(path).endswith((".jsonl", ".jsonl.tmp"))


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSON array or a JSONL file (by extension, falling back to content) into dicts.

    A file that is one JSON document of another shape (a pretty-printed object, or an array
    in a ``.jsonl`` file) is refused with what was found and what is expected, not as
    "line 1: invalid JSON".
    """
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: file not found")
    text = path.read_text(encoding="utf-8-sig")
    stripped = text.lstrip()
    if not is_jsonl(path) and stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFileError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
        rows = data
    else:
        rows = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataFileError(
                    _whole_file_hint(path, text) or f"{path}: line {lineno}: invalid JSON: {exc.msg}"
                ) from exc
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataFileError(f"{path}: row {i}: expected a JSON object, got {type(row).__name__}")
    return rows


def _whole_file_hint(path: Path, text: str) -> str | None:
    """The error for a file that is valid JSON as a whole but not rows (None: it is not valid JSON)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if is_jsonl(path):
        expected = "JSONL: one JSON object per line"
    else:
        expected = "a JSON array of row objects ([{...}, ...]) or JSONL (one JSON object per line)"
    if isinstance(data, dict):
        keys = ", ".join(repr(k) for k in list(data)[:5]) + (", ..." if len(data) > 5 else "")
        return f"{path}: found one JSON object over several lines (keys: {keys}); expected {expected}"
    if isinstance(data, list):
        return f"{path}: found a JSON array over several lines; expected {expected} (or name the file .json)"
    return f"{path}: found the JSON value {json.dumps(data)[:40]}; expected {expected}"


def dumps_rows(rows: Iterable[dict[str, Any]], jsonl: bool) -> str:
    rows = list(rows)
    if jsonl:
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"


def write_rows(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> Path:
    """Atomically write rows as JSONL (``.jsonl``) or a JSON array (anything else)."""
    return atomic_write_text(path, dumps_rows(rows, is_jsonl(path)))


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield complete JSONL records, ignoring a torn last line left by a crash."""
    path = Path(path)
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # partial write from an interrupted run
            if line.strip():
                yield json.loads(line)


def append_jsonl(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> None:
    """Append records and fsync, so a resumed job sees every record that was reported done."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())

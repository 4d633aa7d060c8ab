"""The merged-model cache: a base with LoRA adapters folded in, written once per distinct adapter weights.

The vLLM engine serves a stage's model merged (:class:`lfkit.pipeline.engine.VLLMShared`) and the reward
model may start from the best policy merged; both ask :func:`merged_model`, which keeps one folder per
(base, adapters' weights) under ``$LFKIT_HOME/merged/<key>``, so a resumed run finds its merge.

Every merge is a whole float32 model (540 MB for SmolLM2-135M, 120 GB for a 30B model), and every run
that trains adapters adds new ones: unbounded, the cache filled a CI disk. So the cache keeps the most
recently used folders up to :data:`BUDGET_ENV` gigabytes (default :data:`DEFAULT_BUDGET_GB`) and removes
the rest, least recently used first, after each merge. The folder just asked for is always kept, and so
is any folder used in the last :data:`RECENT_S` seconds (another run may be about to load it). A
removed folder is merged again when asked for. Merges and removals hold one lock, so two processes
never write the same folder or remove one being written.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from lfkit.errors import LfkitError

BUDGET_ENV = "LFKIT_MERGED_CACHE_GB"
DEFAULT_BUDGET_GB = 10.0
RECENT_S = 600.0
_LOCK = ".lock"
_TMP = ".tmp"  # merge_adapter writes <key>.tmp and renames it into place


def merged_model(base: str, adapters: Sequence[str]) -> Path:
    """``base`` with ``adapters`` merged in order (:func:`lfkit.train.merge_adapter`), from the cache."""
    from lfkit.resources import cache_dir
    from lfkit.train import MERGE_MARKER, merge_marker, merge_once

    marker = merge_marker(base, list(adapters))  # hashes every adapter's weights: once, for the key and the check
    key = hashlib.sha256(json.dumps(marker, sort_keys=True).encode()).hexdigest()[:16]
    root = cache_dir() / "merged"
    budget = budget_bytes()
    with _locked(root):
        out = merge_once(base, list(adapters), root / key, marker=marker)
        os.utime(out / MERGE_MARKER)  # its last use, which eviction reads
        removed = prune(root, budget, keep=out)
    if removed:
        print(
            f"lfkit: merged-model cache {root} over {budget / 1e9:g} GB ({BUDGET_ENV}): "
            f"removed {len(removed)} least recently used",
            file=sys.stderr,
        )
    return out


class CacheBudgetError(LfkitError, ValueError):
    """``$LFKIT_MERGED_CACHE_GB`` is not a number of gigabytes >= 0."""


def budget_bytes() -> int:
    """The cache's size budget: ``$LFKIT_MERGED_CACHE_GB`` gigabytes, else :data:`DEFAULT_BUDGET_GB`."""
    raw = os.environ.get(BUDGET_ENV, "").strip()
    try:
        gb = float(raw) if raw else DEFAULT_BUDGET_GB
    except ValueError:
        raise CacheBudgetError(f"{BUDGET_ENV}={raw!r}: expected a number of gigabytes (e.g. 10 or 0.5)") from None
    if gb < 0:
        raise CacheBudgetError(f"{BUDGET_ENV}={raw!r}: expected a number of gigabytes >= 0")
    return int(gb * 1e9)


def prune(root: Path, budget: int, keep: Path | None = None, now: float | None = None) -> list[Path]:
    """Remove the least recently used folders of ``root`` until the rest fit in ``budget`` bytes.

    ``keep`` and folders used in the last :data:`RECENT_S` seconds stay even over budget; unfinished
    ``*.tmp`` folders are leftovers of killed merges (callers hold the lock) and go. Returns what was removed.
    """
    from lfkit.train import MERGE_MARKER

    now = time.time() if now is None else now
    removed, entries = [], []
    for entry in root.iterdir() if root.is_dir() else []:
        if not entry.is_dir():
            continue
        if entry.name.endswith(_TMP):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
            continue
        marker = entry / MERGE_MARKER
        used = (marker if marker.is_file() else entry).stat().st_mtime
        entries.append((used, entry))
    total = 0
    for used, entry in sorted(entries, reverse=True):
        size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
        if entry == keep or now - used < RECENT_S or total + size <= budget:
            total += size
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold the cache's lock (blocking: a second process waits for a merge rather than redo it)."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


__all__ = ["BUDGET_ENV", "DEFAULT_BUDGET_GB", "RECENT_S", "CacheBudgetError", "budget_bytes", "merged_model", "prune"]

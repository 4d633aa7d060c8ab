"""``lfkit tree merge``: shards of trees or of ReSQLver-format pairs into one dataset.

Every shard names the settings it was made with: a tree shard (``lfkit tree build
--num-shards K --shard-id i``) in its first JSONL line, a JSON-array output (a pairs shard
``final_data_emerge_shard_{i}.json``, a merged ``all_trees.json``) in a sidecar file
``<file>.lfkit.json``. Merging refuses shards whose settings differ in anything but the
shard id and the output paths, shard ids that repeat, missing shards (unless allowed),
a question that appears in two shards, and a tree shard that lacks some of its questions
(an interrupted build: re-run it to finish) -- a merged set is one run's data or nothing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lfkit.data.rows import question_key
from lfkit.io import write_rows
from lfkit.tree.model import RevisionTree, TreeError, read_sidecar, read_tree_dicts, sidecar_path, write_sidecar
from lfkit.tree.pairs import RESQLVER_TEST, RESQLVER_TRAIN, split_questions

# Settings that legitimately differ between the shards of one run.
PER_SHARD = frozenset({"shard_id", "output", "output_dir", "journal"})


def shared_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings every shard of one run must agree on."""
    return {k: v for k, v in settings.items() if k not in PER_SHARD}


def _check_shards(entries: list[tuple[str, dict[str, Any]]], allow_missing: bool) -> dict[str, Any]:
    """Compare the shards' settings; return the shared settings."""
    if not entries:
        raise TreeError("no shards given")
    ref_path, ref = entries[0]
    ref_shared = shared_settings(ref)
    ids: dict[int, str] = {}
    for path, settings in entries:
        shared = shared_settings(settings)
        if shared != ref_shared:
            keys = sorted(set(shared) | set(ref_shared))
            old, new = ref_shared, shared
            diffs = [f"{k}: {old.get(k)!r} vs {new.get(k)!r}" for k in keys if new.get(k) != old.get(k)]
            raise TreeError(f"{path} was made with other settings than {ref_path} ({'; '.join(diffs)}); not merged")
        sid = settings.get("shard_id", 0)
        if sid in ids:
            raise TreeError(f"{path} and {ids[sid]} are both shard {sid}")
        ids[sid] = path
    num = ref.get("num_shards", 1)
    missing = sorted(set(range(num)) - set(ids)) if isinstance(num, int) else []
    if missing and not allow_missing:
        raise TreeError(
            f"shard(s) {', '.join(map(str, missing))} of {num} are missing; pass them too, or --allow-missing"
        )
    return ref_shared


def _tree_record(rec: Any) -> Any:
    # A build journal may wrap a tree as {"question_id", "tree": {...}}.
    return rec["tree"] if isinstance(rec, dict) and isinstance(rec.get("tree"), dict) else rec


def expected_questions(settings: dict[str, Any]) -> set[str] | None:
    """The question keys a tree shard should hold, from its settings' SFT file; None when unknowable.

    Unknowable: no ``sft_data`` in the settings, the file is gone, or it changed since the
    build (its SHA-256 differs from ``sft_sha256``).
    """
    from lfkit.io import DataFileError, read_rows
    from lfkit.jobs import file_sha256

    path = settings.get("sft_data")
    if not isinstance(path, str) or not Path(path).is_file():
        return None
    if settings.get("sft_sha256") and file_sha256(path) != settings["sft_sha256"]:
        return None
    try:
        rows = read_rows(path)
    except DataFileError:
        return None
    if settings.get("max_samples"):
        rows = rows[: settings["max_samples"]]
    k, i = settings.get("num_shards", 1), settings.get("shard_id", 0)
    return {question_key(r.get("question_id", n)) for n, r in enumerate(rows) if n % k == i}


def merge_tree_shards(
    shards: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], allow_missing: bool = False
) -> dict[str, Any]:
    """Tree shards (JSONL with a settings header) -> one JSON array ``output`` (+ its sidecar)."""
    entries, trees = [], []
    seen: dict[str, str] = {}
    for shard in shards:
        header, raw = read_tree_dicts(shard)
        settings = header.get("settings") if isinstance(header, dict) else None
        if not isinstance(settings, dict):
            raise TreeError(
                f"{shard}: no settings header (first JSONL line or {sidecar_path(shard).name}); "
                "cannot tell which run made it, refusing to merge"
            )
        entries.append((str(shard), settings))
        keys = set()
        for i, rec in enumerate(raw):
            rec = _tree_record(rec)
            tree = RevisionTree.from_dict(rec, f"{shard}: tree {i}")  # validates types and fields
            qid = question_key(tree.question_id)
            if qid in seen:
                raise TreeError(f"{shard}: tree {i}: question_id {tree.question_id!r} is also in {seen[qid]}")
            seen[qid] = str(shard)
            keys.add(qid)
            trees.append((tree.sft_index, len(trees), rec))
        expected = expected_questions(settings)
        missing = sorted(expected - keys) if expected is not None else []
        if missing and not allow_missing:
            raise TreeError(
                f"{shard} is unfinished: {len(missing)} of its {len(expected)} questions have no tree "
                f"(e.g. question_id {missing[0]}); re-run its `lfkit tree build` to finish it, or --allow-missing"
            )
    shared = _check_shards(entries, allow_missing)
    if all(idx is not None for idx, _, _ in trees):
        trees.sort(key=lambda t: (t[0], t[1]))  # back to SFT order (shards take every K-th row)
    write_rows(output, [rec for _, _, rec in trees])
    write_sidecar(output, "trees", shared, shards=[str(s) for s, _ in entries])
    return {"output": str(output), "shards": len(entries), "trees": len(trees)}


def merge_pair_shards(
    shards: Sequence[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    test_fraction: float = 0.05,
    seed: int = 0,
    allow_missing: bool = False,
) -> dict[str, Any]:
    """ReSQLver pair shards -> ``final_data_train.json`` + ``final_data_test.json`` (split by question)."""
    from lfkit.tree.verify import read_pairs

    entries, rows = [], []
    for shard in shards:
        side = read_sidecar(shard)
        if side is None:
            raise TreeError(
                f"{shard}: no settings sidecar {sidecar_path(shard).name}; "
                "cannot tell which run made it, refusing to merge"
            )
        entries.append((str(shard), side["settings"]))
        rows += read_pairs(shard)
    _check_shards(entries, allow_missing)
    for i, row in enumerate(rows):
        if "question_id" not in row:
            raise TreeError(f"pairs row {i}: field 'question_id' is missing")
    test_ids = split_questions([r["question_id"] for r in rows], test_fraction, seed)
    train = [r for r in rows if question_key(r["question_id"]) not in test_ids]
    test = [r for r in rows if question_key(r["question_id"]) in test_ids]
    out = Path(output_dir)
    write_rows(out / RESQLVER_TRAIN, train)
    write_rows(out / RESQLVER_TEST, test)
    return {
        "output_dir": str(out),
        "shards": len(entries),
        "train_pairs": len(train),
        "test_pairs": len(test),
        "test_questions": len(test_ids),
    }


__all__ = ["PER_SHARD", "merge_pair_shards", "merge_tree_shards", "shared_settings"]

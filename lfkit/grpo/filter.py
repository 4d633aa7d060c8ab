"""Keep the GRPO questions the start policy sometimes solves (pass-rate filtering).

GRPO learns from the differences inside a group: with an execution reward of 0 or 1, a
question whose sampled answers are all wrong (or all right) gives every completion the same
advantage, 0, and its whole step of generation and backward passes teaches nothing. DAPO's
*dynamic sampling* drops such groups online by over-sampling; on a machine where every
generation counts, lfkit does it once, before training, from labelled samples of the start
policy (as the pass-rate filters of Polaris and Skywork-OR1 do):

1. sample N answers per training question with the SFT model and label them
   (``lfkit eval predict --split train --n N``, or the journal of ``lfkit prefs rejects``);
2. ``lfkit grpo filter`` counts the ``correct`` labels per question and keeps the rows whose
   count is in the chosen band (:data:`KEEP`), adding ``pass_rate`` and ``pass_samples``
   columns (TRL hands them to the rewards, which ignore them).

Labels are the shared labelling step's (:mod:`lfkit.sql.label`), so "solved" here means what
the execution reward will pay for. Questions whose gold SQL failed are never kept.

>>> rates = {"1": (0, 4), "2": (2, 4), "3": (4, 4)}
>>> [keeps(rates[k], "mixed") for k in "123"], [keeps(rates[k], "solvable") for k in "123"]
([False, True, False], [False, True, True])
>>> keeps((0, 4), "unsolved"), keeps((4, 4), "unsolved"), keeps((0, 0), "all")
(True, False, False)
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lfkit.errors import LfkitError
from lfkit.io import iter_jsonl, read_rows

KEEP = {
    "mixed": "some but not all samples correct: every group has reward variance (default)",
    "solvable": "at least one sample correct",
    "unsolved": "not every sample correct (drops what the policy already always solves)",
    "all": "every sampled question (only adds the pass-rate columns)",
}


class FilterError(LfkitError):
    """A candidates file or GRPO data file that cannot be used to filter."""


def keeps(counts: tuple[int, int], keep: str) -> bool:
    """Whether a question with ``counts = (correct, sampled)`` is kept under ``keep`` (:data:`KEEP`)."""
    correct, n = counts
    if n == 0:
        return False
    return {
        "mixed": 0 < correct < n,
        "solvable": correct > 0,
        "unsolved": correct < n,
        "all": True,
    }[keep]


def _records(path: Path) -> Iterable[dict[str, Any]]:
    # a journal of a running or killed job may end in a torn line: iter_jsonl skips it, read_rows would refuse
    if path.suffix == ".jsonl":
        yield from iter_jsonl(path)
    else:
        yield from read_rows(path)


def pass_counts(paths: Sequence[str | os.PathLike[str]]) -> tuple[dict[str, tuple[int, int]], int]:
    """``{question_id: (correct, sampled)}`` summed over labelled-candidate files, and the number of
    questions skipped because their gold SQL failed.

    A file is ``lfkit eval predict --n`` output or a ``lfkit prefs rejects`` journal (its header
    line is skipped): one record per question with ``question_id`` and ``candidates`` carrying
    a ``label``. Shards of one run may be given together; their counts add up.
    """
    counts: dict[str, list[int]] = {}
    gold_failed: set[str] = set()
    for p in map(Path, paths):
        if not p.is_file():
            raise FilterError(f"{p}: no such candidates file")
        for i, record in enumerate(_records(p)):
            if "lfkit_journal" in record:
                continue
            qid = record.get("question_id")
            if qid is None:
                raise FilterError(f"{p}: record {i}: field 'question_id' is missing")
            cands = record.get("candidates")
            if not isinstance(cands, list):
                raise FilterError(f"{p}: record {i}: field 'candidates' is missing (a list of labelled samples)")
            key = str(qid)
            if record.get("gold_status", "ok") != "ok":
                gold_failed.add(key)
                continue
            entry = counts.setdefault(key, [0, 0])
            for j, c in enumerate(cands):
                label = c.get("label") if isinstance(c, dict) else None
                if not isinstance(label, str):
                    raise FilterError(
                        f"{p}: record {i}: candidates[{j}]: field 'label' is missing "
                        "(sample with `lfkit eval predict --n`, which labels every candidate)"
                    )
                entry[0] += label == "correct"
                entry[1] += 1
    for key in gold_failed:
        counts.pop(key, None)
    return {k: (c, n) for k, (c, n) in counts.items()}, len(gold_failed)


def filter_rows(
    rows: Sequence[dict[str, Any]], counts: dict[str, tuple[int, int]], keep: str = "mixed", *, source: str = "data"
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows kept under ``keep``, with ``pass_rate`` / ``pass_samples`` added, and a summary.

    >>> rows = [{"question_id": "1"}, {"question_id": "2"}, {"question_id": "9"}]
    >>> kept, summary = filter_rows(rows, {"1": (0, 4), "2": (1, 4)})
    >>> kept, summary["kept"], summary["unsampled"], summary["by_correct"]
    ([{'question_id': '2', 'pass_rate': 0.25, 'pass_samples': 4}], 1, 1, {'0/4': 1, '1/4': 1})
    """
    if keep not in KEEP:
        raise FilterError(f"keep={keep!r}: choose one of {', '.join(KEEP)}")
    kept: list[dict[str, Any]] = []
    by_correct: Counter[tuple[int, int]] = Counter()
    unsampled = 0
    for i, row in enumerate(rows):
        qid = row.get("question_id")
        if qid is None:
            raise FilterError(f"{source}: row {i}: field 'question_id' is missing (write rows with `lfkit data grpo`)")
        c = counts.get(str(qid))
        if c is None:
            unsampled += 1
            continue
        by_correct[c] += 1
        if keeps(c, keep):
            kept.append({**row, "pass_rate": round(c[0] / c[1], 4), "pass_samples": c[1]})
    summary = {
        "rows": len(rows),
        "sampled": len(rows) - unsampled,
        "unsampled": unsampled,
        "keep": keep,
        "kept": len(kept),
        "by_correct": {f"{c}/{n}": by_correct[c, n] for c, n in sorted(by_correct, key=lambda cn: (cn[1], cn[0]))},
    }
    return kept, summary


def filter_grpo_data(
    data: str | os.PathLike[str],
    candidates: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    keep: str = "mixed",
) -> dict[str, Any]:
    """Read GRPO rows and labelled candidates, write the kept rows to ``out``; returns the summary.

    Refuses (naming the files) when no row was sampled at all, and when nothing is kept: a
    GRPO run on an empty file would fail later and less clearly.
    """
    from lfkit.data.grpo import read_grpo_rows, write_grpo_rows

    rows = read_grpo_rows(data)
    counts, gold_failed = pass_counts(candidates)
    kept, summary = filter_rows(rows, counts, keep, source=str(data))
    summary["gold_failed"] = gold_failed
    names = ", ".join(map(str, candidates))
    if summary["sampled"] == 0:
        raise FilterError(f"{data}: no row's question_id appears in {names}: sample the same split the rows come from")
    if not kept:
        raise FilterError(
            f"{data}: no question is kept with --keep {keep} (pass counts {summary['by_correct']}): "
            "sample more answers per question, or use a wider --keep"
        )
    written = write_grpo_rows(out, kept)
    return {**summary, "out": written["out"], "by_difficulty": written["by_difficulty"]}


__all__ = ["KEEP", "FilterError", "filter_grpo_data", "filter_rows", "keeps", "pass_counts"]

"""Pairwise evaluation of reward models (``lfkit rm eval``) and candidate scoring (``lfkit rm score``).

The seed's ``evaluate.py`` reports, per adapter, the share of pairs whose chosen answer
scores above the rejected one and the average margin. lfkit adds ties, the same numbers by
difficulty and by pair kind, per-pair scores and a margin histogram.

Rules:

* a pair is **correct** when ``margin = chosen - rejected > TIE_EPS``, a **tie** when
  ``|margin| <= TIE_EPS``; accuracy = correct / pairs (a tie counts against, as the seed's
  strict ``>`` does);
* pair rows: lfkit preference rows (``instruction`` [+ ``input``], ``chosen``, ``rejected``;
  the prompt is :func:`lfkit.data.prompts.chat_messages`, what LLaMA-Factory's alpaca
  converter feeds the template) or ReSQLver shard rows (``prompt`` as the user turn); an
  optional ``system`` field is the system prompt;
* difficulty: the row's ``difficulty``, else the question's in ``questions`` (a BIRD json
  or gold file, matched by :func:`lfkit.data.rows.question_key`), else ``unknown``;
* pair kind (:func:`pair_kind`): ``correct_vs_wrong`` when chosen is correct,
  ``correct_vs_error`` when it is correct and rejected failed to run,
  ``error_vs_wrong_result`` when neither is correct and exactly one of them failed to run,
  ``wrong_vs_wrong:d<chosen>-d<rejected>`` when both ran wrong (revision distances, ``none``
  for 999), else ``unknown``. Read from the row's ``chosen_label``/``rejected_label``
  (lfkit labels) when present, else its ``kind`` and ``chosen_dist``/``rejected_dist``
  (revision trees), else ``source`` (``rejects``/``cot`` pairs have a verified chosen).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lfkit.data.prompts import chat_messages
from lfkit.data.rows import UNKNOWN_DIFFICULTY, question_key
from lfkit.errors import LfkitError
from lfkit.reward.model import Messages, RewardModel, detect_kind

TIE_EPS = 1e-6
NO_REVISION = 999  # ReSQLver's revision_distance of a node with no correct descendant
FAILED = frozenset({"error", "timeout", "no_sql", "malformed"})
SOURCES_WITH_CORRECT_CHOSEN = frozenset({"rejects", "cot"})


class RmEvalError(LfkitError, ValueError):
    """Unusable pair/candidate data (message names the file, row and field)."""


@dataclass(frozen=True)
class PairRow:
    index: int
    messages: Messages
    chosen: str
    rejected: str
    question_id: str
    difficulty: str
    kind: str


def _read_any(path: Path) -> list[dict[str, Any]]:
    from lfkit.io import DataFileError, read_rows

    if not path.is_file():
        raise RmEvalError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise RmEvalError(f"{path}: empty file")
    try:
        rows = read_rows(path)
    except DataFileError as exc:
        raise RmEvalError(str(exc)) from exc
    if not rows:
        raise RmEvalError(f"{path}: no rows")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RmEvalError(f"{path}: row {i}: expected a JSON object, got {type(row).__name__}")
    return rows


def _text(path: Path, i: int, row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        what = (
            "missing" if value is None else "empty" if isinstance(value, str) else f"not text: {type(value).__name__}"
        )
        raise RmEvalError(f"{path}: row {i}: field '{name}' is {what}")
    return value


def prompt_messages(path: Path, i: int, row: dict[str, Any]) -> Messages:
    """The prompt turns of a pair/candidate row (see the module docstring)."""
    if row.get("instruction"):
        messages = chat_messages(_text(path, i, row, "instruction"), row.get("input") or "")
    elif row.get("prompt"):
        messages = [{"role": "user", "content": _text(path, i, row, "prompt")}]
    else:
        raise RmEvalError(f"{path}: row {i}: field 'instruction' (lfkit) or 'prompt' (ReSQLver) is missing")
    if isinstance(row.get("system"), str) and row["system"]:
        messages = [{"role": "system", "content": row["system"]}, *messages]
    return messages


def _dist(value: Any) -> str:
    return "none" if value is None or int(value) >= NO_REVISION else str(int(value))


def pair_kind(row: dict[str, Any]) -> str:
    """The pair kind of a row (rules in the module docstring).

    >>> pair_kind({"chosen_label": "correct", "rejected_label": "error"})
    'correct_vs_error'
    >>> pair_kind({"chosen_label": "wrong", "rejected_label": "timeout"})
    'error_vs_wrong_result'
    >>> pair_kind({"kind": "wrong_vs_wrong", "chosen_dist": 1, "rejected_dist": 999})
    'wrong_vs_wrong:d1-dnone'
    >>> pair_kind({"chosen_dist": 0, "rejected_dist": 2})
    'correct_vs_wrong'
    >>> pair_kind({"source": "rejects"})
    'correct_vs_wrong'
    """
    c, r = row.get("chosen_label"), row.get("rejected_label")
    if c and r:
        if c == "correct":
            return "correct_vs_error" if r in FAILED else "correct_vs_wrong"
        if (c in FAILED) != (r in FAILED):
            return "error_vs_wrong_result"
        if c == r == "wrong":
            if "chosen_dist" in row and "rejected_dist" in row:
                return f"wrong_vs_wrong:d{_dist(row['chosen_dist'])}-d{_dist(row['rejected_dist'])}"
            return "wrong_vs_wrong"
        return "unknown"
    kind = row.get("kind")
    cd, rd = row.get("chosen_dist"), row.get("rejected_dist")
    has_dist = isinstance(cd, int) and isinstance(rd, int)
    if kind == "correct_vs_wrong" or (kind is None and has_dist and cd == 0):
        return "correct_vs_wrong"
    if kind == "wrong_vs_wrong" or (kind is None and has_dist and cd > 0):
        return f"wrong_vs_wrong:d{_dist(cd)}-d{_dist(rd)}" if has_dist else "wrong_vs_wrong"
    if isinstance(kind, str) and kind:
        return kind
    if row.get("source") in SOURCES_WITH_CORRECT_CHOSEN:
        return "correct_vs_wrong"
    return "unknown"


def difficulty_map(path: str | os.PathLike[str] | None) -> dict[str, str]:
    """question_key -> difficulty from a BIRD json / gold file (empty when ``path`` is None)."""
    if path is None:
        return {}
    from lfkit.eval.formats import read_gold

    return {q.key: q.difficulty for q in read_gold(path)}


def read_pairs(path: str | os.PathLike[str], difficulties: dict[str, str] | None = None) -> list[PairRow]:
    """Pair rows of ``path`` (JSON array or JSONL), checked; RmEvalError names file/row/field."""
    path = Path(path)
    difficulties = difficulties or {}
    pairs = []
    for i, row in enumerate(_read_any(path)):
        messages = prompt_messages(path, i, row)
        qid = question_key(row["question_id"]) if row.get("question_id") is not None else ""
        difficulty = row.get("difficulty") or difficulties.get(qid) or UNKNOWN_DIFFICULTY
        pairs.append(
            PairRow(
                i, messages, _text(path, i, row, "chosen"), _text(path, i, row, "rejected"), qid, difficulty,
                pair_kind(row),
            )
        )  # fmt: skip
    return pairs


# ------------------------------------------------------------------------- metrics


def _group(margins: Sequence[float]) -> dict[str, Any]:
    n = len(margins)
    correct = sum(m > TIE_EPS for m in margins)
    ties = sum(abs(m) <= TIE_EPS for m in margins)
    return {
        "n": n,
        "accuracy": correct / n if n else 0.0,
        "correct": correct,
        "ties": ties,
        "avg_margin": sum(margins) / n if n else 0.0,
    }


def summarize(pairs: Sequence[PairRow], scores: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """Accuracy, ties and average margin overall, by difficulty and by pair kind.

    >>> p = [PairRow(0, [], "a", "b", "1", "simple", "correct_vs_wrong"),
    ...      PairRow(1, [], "a", "c", "2", "moderate", "correct_vs_wrong")]
    >>> s = summarize(p, [(1.0, 0.0), (0.5, 0.5)])
    >>> s["accuracy"], s["ties"], s["avg_margin"], s["by_difficulty"]["moderate"]["ties"]
    (0.5, 1, 0.5, 1)
    """
    margins = [c - r for c, r in scores]
    out = _group(margins)
    for field_name, key in (("difficulty", "by_difficulty"), ("kind", "by_kind")):
        groups: dict[str, list[float]] = {}
        for p, m in zip(pairs, margins, strict=True):
            groups.setdefault(getattr(p, field_name), []).append(m)
        out[key] = {name: _group(ms) for name, ms in sorted(groups.items(), key=lambda kv: _order(kv[0]))}
    return out


def _order(name: str) -> tuple[int, str]:
    from lfkit.data.rows import DIFFICULTIES

    return (DIFFICULTIES.index(name), name) if name in DIFFICULTIES else (len(DIFFICULTIES), name)


# ---------------------------------------------------------------------------- runs


def sibling(output: Path, suffix: str) -> Path:
    """``eval_results.json`` -> ``eval_results<suffix>`` beside it."""
    return output.with_name(output.stem + suffix)


def adapter_name(adapter: str) -> str:
    return "none" if detect_kind(adapter) == "none" else Path(adapter).name or str(adapter)


def run_rm_eval(
    base_model: str,
    adapters: Sequence[str],
    test_data: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    batch_size: int = 32,
    template: str | None = None,
    cutoff_len: int = 4096,
    questions: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    dtype: str | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Evaluate each adapter on the pairs of ``test_data``; write the report files; return the metrics.

    ``dtype`` (fp32 / bf16 / fp16; default fp32 on the CPU, bf16 elsewhere: see
    :func:`lfkit.reward.model.resolve_dtype`) is what the weights score in; ReSQLver's
    ``evaluate.py`` uses bf16, and near-zero margins can flip between the two, so every entry
    records it. Writes ``output`` (a JSON list, one entry per adapter: the seed's ``adapter``,
    ``accuracy``, ``avg_margin`` plus lfkit's fields, ``dtype`` among them), ``<stem>.pairs.jsonl`` (one line per
    adapter and pair) and ``<stem>.margins.png``. Every input is checked before any model is
    loaded, and nothing is written unless every adapter was scored.
    """
    from lfkit.io import atomic_write_text
    from lfkit.progress import progress_bar

    output = Path(output)
    if not adapters:
        raise RmEvalError("give at least one adapter (or 'none')")
    kinds = [detect_kind(a) for a in adapters]  # a bad folder fails before anything loads
    pairs = read_pairs(test_data, difficulty_map(questions))
    results: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for adapter, kind in zip(adapters, kinds, strict=True):
        model = RewardModel.load(
            base_model, adapter, template=template, cutoff_len=cutoff_len, device=device, dtype=dtype
        )
        start = time.perf_counter()
        with progress_bar(f"scoring pairs ({adapter_name(adapter)})", len(pairs), enabled=progress) as bar:
            scores = model.score_pairs(
                [(p.messages, p.chosen, p.rejected) for p in pairs], batch_size, progress=bar.advance
            )
        seconds = time.perf_counter() - start
        metrics = {
            "adapter": str(adapter),
            "name": adapter_name(adapter),
            "kind": kind,
            "dtype": model.dtype,
            **summarize(pairs, scores),
            "seconds": round(seconds, 3),
            "pairs_per_second": round(len(pairs) / seconds, 3) if seconds > 0 else None,
        }
        results.append(metrics)
        for p, (c, r) in zip(pairs, scores, strict=True):
            records.append(
                {
                    "adapter": metrics["name"],
                    "row": p.index,
                    "question_id": p.question_id,
                    "difficulty": p.difficulty,
                    "kind": p.kind,
                    "chosen_score": c,
                    "rejected_score": r,
                    "margin": c - r,
                    "correct": c - r > TIE_EPS,
                }
            )
        model.close()
    atomic_write_text(output, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(sibling(output, ".pairs.jsonl"), "".join(json.dumps(r) + "\n" for r in records))
    plot_margins(records, sibling(output, ".margins.png"))
    return results


def plot_margins(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """Histogram of chosen - rejected margins, one series per adapter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_adapter: dict[str, list[float]] = {}
    for r in records:
        by_adapter.setdefault(r["adapter"], []).append(r["margin"])
    everything = [m for ms in by_adapter.values() for m in ms]
    lo, hi = (min(everything), max(everything)) if everything else (-1.0, 1.0)
    if math.isclose(lo, hi):
        lo, hi = lo - 0.5, hi + 0.5
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, ms in by_adapter.items():
        ax.hist(ms, bins=30, range=(lo, hi), alpha=0.55, label=name)
    ax.axvline(0.0, color="black", linewidth=1)
    ax.set_xlabel("score(chosen) - score(rejected)")
    ax.set_ylabel("pairs")
    ax.set_title("Reward-model margins (right of 0 = correct)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def render_table(results: Sequence[dict[str, Any]]) -> None:
    """The comparison table on stdout: overall, then accuracy by difficulty and by kind."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="Reward-model comparison")
    for col in ("model", "kind", "dtype", "pairs", "accuracy", "ties", "avg margin", "pairs/s"):
        table.add_column(col, justify="left" if col in ("model", "kind", "dtype") else "right")
    for m in results:
        table.add_row(
            m["name"], m["kind"], m.get("dtype", ""), str(m["n"]), f"{m['accuracy']:.2%}", str(m["ties"]),
            f"{m['avg_margin']:.4f}", str(m.get("pairs_per_second") or ""),
        )  # fmt: skip
    console.print(table)
    for key, title in (("by_difficulty", "accuracy by difficulty"), ("by_kind", "accuracy by pair kind")):
        names = sorted({g for m in results for g in m[key]}, key=_order)
        sub = Table(title=title)
        sub.add_column("model")
        for g in names:
            sub.add_column(g, justify="right")
        for m in results:
            cells = [f"{m[key][g]['accuracy']:.2%} ({m[key][g]['n']})" if g in m[key] else "-" for g in names]
            sub.add_row(m["name"], *cells)
        console.print(sub)


# ------------------------------------------------------------------------ rm score


def read_candidates(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Best-of-N candidate records (``lfkit eval predict --n``), checked: one per question with
    a prompt (``instruction``/``input`` or ``prompt``) and ``candidates`` ([{"text", ...}])."""
    path = Path(path)
    rows = _read_any(path)
    for i, row in enumerate(rows):
        if row.get("question_id") is None:
            raise RmEvalError(f"{path}: row {i}: field 'question_id' is missing")
        prompt_messages(path, i, row)
        cands = row.get("candidates")
        if not isinstance(cands, list):
            raise RmEvalError(f"{path}: row {i}: field 'candidates' is missing (a list of {{'text', 'sql', ...}})")
        for j, c in enumerate(cands):
            if not isinstance(c, dict) or not isinstance(c.get("text"), str):
                raise RmEvalError(f"{path}: row {i}: candidates[{j}]: field 'text' is missing")
    return rows


def score_candidates(
    model: RewardModel, rows: Sequence[dict[str, Any]], path: Path, *, batch_size: int = 32, progress: bool = True
) -> list[dict[str, Any]]:
    """``[{"question_id", "scores": [...], "greedy_score"?}]``: one score per candidate text, in order, and
    one for the row's greedy decode when it has one (``eval predict --with-greedy``), so that
    ``eval select --greedy-candidate`` can rank it among the samples.

    Candidates whose SQL fails are scored all the same: the reward model sees text.
    """
    from lfkit.progress import progress_bar

    items: list[tuple[Messages, str]] = []
    owners: list[tuple[int, bool]] = []  # (row, is the greedy decode)
    for i, row in enumerate(rows):
        messages = prompt_messages(path, i, row)
        for c in row["candidates"]:
            items.append((messages, c["text"]))
            owners.append((i, False))
        greedy = row.get("greedy")
        if isinstance(greedy, dict) and isinstance(greedy.get("text"), str):
            items.append((messages, greedy["text"]))
            owners.append((i, True))
    with progress_bar("scoring candidates", len(items), enabled=progress) as bar:
        scores = model.score(items, batch_size, progress=bar.advance)
    out: list[dict[str, Any]] = [{"question_id": row["question_id"], "scores": []} for row in rows]
    for (i, is_greedy), s in zip(owners, scores, strict=True):
        if is_greedy:
            out[i]["greedy_score"] = s
        else:
            out[i]["scores"].append(s)
    return out


def run_rm_score(
    model: str,
    adapter: str,
    candidates: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    batch_size: int = 32,
    template: str | None = None,
    cutoff_len: int = 4096,
    device: str = "cpu",
    dtype: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score every candidate of ``candidates``; write JSONL ``output``; return a summary (``model.dtype``: see
    :func:`run_rm_eval`)."""
    from lfkit.io import atomic_write_text

    detect_kind(adapter)
    path = Path(candidates)
    rows = read_candidates(path)
    rm = RewardModel.load(model, adapter, template=template, cutoff_len=cutoff_len, device=device, dtype=dtype)
    scored = score_candidates(rm, rows, path, batch_size=batch_size, progress=progress)
    atomic_write_text(output, "".join(json.dumps(r) + "\n" for r in scored))
    failed = sum(c.get("label") in FAILED for row in rows for c in row["candidates"])
    return {
        "questions": len(rows),
        "candidates": sum(len(r["scores"]) for r in scored),
        "failed_sql": failed,
        "model": rm.describe(),
        "output": str(output),
    }

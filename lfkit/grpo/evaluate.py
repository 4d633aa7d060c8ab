"""``lfkit grpo eval``: execution accuracy by difficulty plus the process-reward recipe's metrics, as one JSON report.

:func:`evaluation_report` scores completions (one greedy answer per row) without a model, so
it is tested on hand-written answers; :func:`evaluate_model` generates them first with the
``hf`` backend (the prompt rendered with the LLaMA-Factory template the model was trained with).

Metrics (every one a percentage over the rows it applies to, each stated with its ``n``):

* ``ex``: execution accuracy, labels from :func:`lfkit.sql.label.label_candidates` (the one
  labelling step) on rows with ``db_path`` and ``gold_sql``; a gold that does not run counts
  as wrong; also ``by_difficulty``.
* ``type_accuracy``: :func:`lfkit.reward.process.predicted_type` equals the row's ``type``.
* ``sql_validity``: an SQL was extracted and has neither ``invalid_sql`` nor
  ``unclosed_parenthesis`` (``executes``: and it ran, where a database is given).
* ``reasoning_quality``: mean :func:`lfkit.reward.process.thinking_score` x 100.
* ``self_assessment_accuracy``: mean :func:`lfkit.reward.process.self_assessment_score` x 100
  (Jaccard of issues named in the reasoning and issues the SQL has).
* ``issue_detection_rate``: of all issues detected in predicted SQL, the share the reasoning
  names (micro recall; ``n`` = issues detected).
* ``complexity_distribution``: ``sql`` / ``多步推理`` counts of predicted and gold SQL.
* ``rewards``: each reward's mean under TRL's signature, and the execution-led weighted total.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lfkit.io import DataFileError, atomic_write_text, read_rows


def _pct(k: float, n: int) -> float:
    return round(100.0 * k / n, 2) if n else 0.0


def read_test_rows(path: str | os.PathLike[str], limit: int | None = None) -> list[dict[str, Any]]:
    """GRPO rows, or the process-reward recipe's ``{"query", "response", "type"}`` rows turned into GRPO rows
    (no database: no EX, the process metrics only)."""
    from lfkit.data.grpo import read_grpo_rows, read_seed_rows, seed_to_grpo_rows

    rows = read_rows(path)
    if rows and "prompt" not in rows[0] and {"query", "response"} <= set(rows[0]):
        out = seed_to_grpo_rows(read_seed_rows(path))
    else:
        out = read_grpo_rows(path)
    out = out[: limit or None]
    if not out:
        raise DataFileError(f"{path}: no rows to evaluate")
    return out


def evaluation_report(
    rows: Sequence[dict[str, Any]],
    completions: Sequence[str],
    *,
    verifier: Any = None,
    n_examples: int = 10,
    weights: Any = None,
) -> dict[str, Any]:
    """The report for ``completions[i]`` answering ``rows[i]`` (see the module docstring).

    ``verifier``: a :class:`lfkit.sql.Verifier` for rows with a database (None: a new one).
    ``weights``: reward weights for the total (default :data:`lfkit.reward.config.DEFAULT_WEIGHTS`).
    """
    from lfkit.reward.config import combine
    from lfkit.reward.process import (
        PROCESS_REWARDS,
        answer_sql,
        predicted_type,
        self_assessment_score,
        sql_issues,
        think_text,
        thinking_score,
    )
    from lfkit.sql import Verifier
    from lfkit.sql.complexity import classify_complexity, normalize_label
    from lfkit.sql.issues import INVALID_ISSUES, mentioned_issues
    from lfkit.sql.label import label_candidates

    if len(rows) != len(completions):
        raise ValueError(f"{len(rows)} rows but {len(completions)} completions")
    n = len(rows)
    sqls = [answer_sql(c or "") for c in completions]
    questions = [r.get("question") or None for r in rows]

    # execution: the one labelling step, for rows that name a database and a gold SQL
    labels: list[str | None] = [None] * n
    exec_rows = [i for i, r in enumerate(rows) if r.get("db_path") and r.get("gold_sql")]
    if exec_rows:
        from types import SimpleNamespace

        own = verifier is None
        verifier = verifier or Verifier(timeout=10.0)
        try:
            golds = [SimpleNamespace(db_path=rows[i]["db_path"], gold_sql=rows[i]["gold_sql"]) for i in exec_rows]
            labelled = label_candidates(golds, [[sqls[i]] for i in exec_rows], verifier, lambda s: s)
        finally:
            if own:
                verifier.close()
        for i, cands in zip(exec_rows, labelled, strict=True):
            c = cands[0]
            labels[i] = c.label if c.gold_status == "ok" else "gold_error"
    correct = [labels[i] == "correct" for i in exec_rows]
    by_difficulty: dict[str, dict[str, Any]] = {}
    for i, ok in zip(exec_rows, correct, strict=True):
        d = by_difficulty.setdefault(rows[i].get("difficulty") or "unknown", {"n": 0, "correct": 0})
        d["n"] += 1
        d["correct"] += int(ok)
    for d in by_difficulty.values():
        d["ex"] = _pct(d["correct"], d["n"])

    # the process-reward recipe's process metrics
    typed = [(i, normalize_label(r.get("type"))) for i, r in enumerate(rows)]
    typed = [(i, t) for i, t in typed if t is not None]
    type_hits = sum(1 for i, t in typed if predicted_type(completions[i] or "") == t)
    issues = [sql_issues(s, q) if s else () for s, q in zip(sqls, questions, strict=True)]
    valid = [bool(s) and not any(x.name in INVALID_ISSUES for x in iss) for s, iss in zip(sqls, issues, strict=True)]
    executes = [labels[i] in ("correct", "wrong") for i in exec_rows]
    thinking = [thinking_score(c or "") for c in completions]
    assessed = [i for i, c in enumerate(completions) if think_text(c or "") is not None and sqls[i]]
    self_scores = [self_assessment_score(completions[i], questions[i]) for i in assessed]
    detected = named = 0
    for i in assessed:
        names = {x.name for x in issues[i]}
        detected += len(names)
        named += len(names & mentioned_issues(think_text(completions[i]) or ""))
    predicted_complexity = Counter(classify_complexity(s) for s in sqls if s)
    gold_complexity = Counter(classify_complexity(r["gold_sql"]) for r in rows if r.get("gold_sql"))

    # rewards as GRPO computes them (execution from the labels above: nothing runs twice)
    columns = {k: [r.get(k) for r in rows] for k in ("type", "question")}
    reward_means = {
        name: round(sum(fn(None, list(completions), **columns)) / n, 4) for name, fn in PROCESS_REWARDS.items()
    }
    execution = [1.0 if lab == "correct" else 0.1 if lab == "wrong" else 0.0 for lab in labels]
    reward_means["execution"] = round(sum(execution) / n, 4)

    def precomputed_execution(prompts: Any, comps: Sequence[Any], **_: Any) -> list[float]:
        return execution

    total = combine(weights, execution=precomputed_execution)(None, list(completions), **columns)
    reward_means["total"] = round(sum(total) / n, 4)

    summary = {
        "n": n,
        "ex": _pct(sum(correct), len(exec_rows)),
        "ex_n": len(exec_rows),
        "ex_by_difficulty": {k: v["ex"] for k, v in sorted(by_difficulty.items())},
        "type_accuracy": _pct(type_hits, len(typed)),
        "sql_validity": _pct(sum(valid), n),
        "executes": _pct(sum(executes), len(exec_rows)),
        "reasoning_quality": round(100.0 * sum(thinking) / n, 2),
        "self_assessment_accuracy": round(100.0 * sum(self_scores) / len(self_scores), 2) if self_scores else 0.0,
        "issue_detection_rate": _pct(named, detected),
        "reward_total": reward_means["total"],
    }
    label_counts = Counter(lab for lab in labels if lab is not None)
    wrong_issues = Counter(x.name for i in exec_rows if labels[i] != "correct" for x in issues[i])
    by_type: dict[str, dict[str, Any]] = {}
    for i in exec_rows:
        t = normalize_label(rows[i].get("type")) or "unknown"
        d = by_type.setdefault(t, {"n": 0, "correct": 0})
        d["n"] += 1
        d["correct"] += int(labels[i] == "correct")
    for d in by_type.values():
        d["ex"] = _pct(d["correct"], d["n"])

    def example(i: int) -> dict[str, Any]:
        return {
            "question_id": rows[i].get("question_id"),
            "question": rows[i].get("question"),
            "difficulty": rows[i].get("difficulty"),
            "type": rows[i].get("type"),
            "gold_sql": rows[i].get("gold_sql"),
            "completion": completions[i],
            "predicted_sql": sqls[i],
            "predicted_type": predicted_type(completions[i] or ""),
            "label": labels[i],
            "issues": [x.name for x in issues[i]],
        }

    failures = [i for i in range(n) if labels[i] not in (None, "correct")]
    return {
        "summary": summary,
        "metrics": {
            "ex": {"value": summary["ex"], "n": len(exec_rows), "by_difficulty": by_difficulty},
            "type_accuracy": {"value": summary["type_accuracy"], "n": len(typed)},
            "sql_validity": {"value": summary["sql_validity"], "n": n, "executes": summary["executes"]},
            "reasoning_quality": {"value": summary["reasoning_quality"], "n": n},
            "self_assessment_accuracy": {"value": summary["self_assessment_accuracy"], "n": len(self_scores)},
            "issue_detection_rate": {"value": summary["issue_detection_rate"], "n": detected, "named": named},
        },
        "complexity_distribution": {
            "predicted": dict(sorted(predicted_complexity.items())),
            "gold": dict(sorted(gold_complexity.items())),
            "no_sql": sum(1 for s in sqls if not s),
        },
        "rewards": reward_means,
        "examples": [example(i) for i in range(min(n_examples, n))],
        "error_analysis": {
            "labels": dict(sorted(label_counts.items())),
            "ex_by_type": by_type,
            "issues_in_failures": dict(wrong_issues.most_common()),
            "failures": [example(i) for i in failures[:n_examples]],
        },
    }


def evaluate_model(
    model: str,
    test_file: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    adapter: str | None = None,
    template: str | None = None,
    limit: int | None = None,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    device: str = "auto",
    timeout: float = 10.0,
    n_examples: int = 10,
) -> dict[str, Any]:
    """Greedy answers of ``model`` (+ ``adapter``) for the rows of ``test_file``, scored by
    :func:`evaluation_report`; the report (with its settings) is written to ``output``."""
    import json
    import time

    from lfkit.generate import SamplingConfig, get_backend
    from lfkit.grpo.data import chat_of
    from lfkit.sql import Verifier

    rows = read_test_rows(test_file, limit)
    start = time.monotonic()
    backend = get_backend("hf", model=model, adapter=adapter, template=template, device=device, batch_size=batch_size)
    try:
        cfg = SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_new_tokens=max_new_tokens)
        outs = backend.generate([chat_of(r["prompt"]) for r in rows], cfg)
    finally:
        backend.close()
    gen_seconds = time.monotonic() - start
    with Verifier(timeout=timeout) as verifier:
        report = evaluation_report(rows, [o[0] for o in outs], verifier=verifier, n_examples=n_examples)
    report["settings"] = {
        "model": model,
        "adapter": adapter,
        "template": template,
        "test_file": str(test_file),
        "max_new_tokens": max_new_tokens,
        "decoding": "greedy",
        "generation_seconds": round(gen_seconds, 2),
    }
    atomic_write_text(Path(output), json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


__all__ = ["evaluate_model", "evaluation_report", "read_test_rows"]

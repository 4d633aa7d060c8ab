"""The demo's report: report.json, report.md and PNG plots, all from the run's own stage files."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from lfkit.data.rows import DIFFICULTIES
from lfkit.io import atomic_write_text
from lfkit.pipeline.config import DemoConfig, DemoLayout, config_dict

EVAL_STAGES = (("eval_base", "base"), ("eval_sft", "sft"), ("eval_dpo", "dpo"))


def eval_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for key, name in EVAL_STAGES:
        if key not in results:
            continue
        r = results[key]
        rows.append(
            {
                "name": name,
                "ex": r["ex"],
                "n": r["n"],
                "by_difficulty": r["by_difficulty"],
                "soft_f1": r.get("soft_f1"),
                "errors": r.get("errors"),
                "timeouts": r.get("timeouts"),
                "empty_predictions": r.get("empty_predictions"),
                "predictions": r["predictions"],
                "seconds": r.get("seconds"),
            }
        )
    return rows


def verdict(stages: list[dict[str, Any]]) -> str:
    """One honest sentence on whether each training stage moved dev EX."""
    by_name = {s["name"]: s for s in stages}
    lines = []
    for before, after in (("base", "sft"), ("sft", "dpo")):
        if before in by_name and after in by_name:
            delta = by_name[after]["ex"] - by_name[before]["ex"]
            n = by_name[after]["n"]
            # one question moves EX by 100/n points; below ~2 questions it is noise at this size
            moved = "improved" if delta > 0 else "lowered" if delta < 0 else "did not change"
            noise = " (within noise: fewer than 2 questions)" if abs(delta) < 200 / n else ""
            lines.append(f"{after.upper()} {moved} dev EX by {delta:+.1f} points vs {before}{noise}.")
    return " ".join(lines)


def machine() -> str:
    """CPU model and core count, e.g. 'Intel(R) Xeon(R) ... (2 cores, x86_64), python 3.11.2'."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:  # not Linux
        pass
    return f"{cpu} ({os.cpu_count()} cores, {platform.machine()}), python {platform.python_version()}"


def markdown(report: dict[str, Any]) -> str:
    head = "| stage | EX % | " + " | ".join(f"{d} %" for d in DIFFICULTIES) + " | n | errors |"
    sep = "|" + "---|" * (len(DIFFICULTIES) + 4)
    lines = [f"# lfkit demo report ({report['model']})", "", head, sep]
    for s in report["stages"]:
        diffs = [
            f"{s['by_difficulty'][d]['ex']:.1f} ({s['by_difficulty'][d]['n']})" if d in s["by_difficulty"] else "-"
            for d in DIFFICULTIES
        ]
        lines.append(f"| {s['name']} | {s['ex']:.1f} | " + " | ".join(diffs) + f" | {s['n']} | {s['errors']} |")
    data = report["data"]
    lines += [
        "",
        report["verdict"],
        "",
        "## Data",
        f"- corpus: {data['train_questions']} train / {data['dev_questions']} dev questions (Lahman, BIRD layout)",
        f"- SFT rows: {data['sft_rows']}",
        f"- preference sampling: {data['prefs']['questions']} questions, {data['prefs']['candidates']} candidates "
        f"({', '.join(f'{k} {v}' for k, v in data['prefs']['labels'].items())}), "
        f"{data['prefs']['duplicates']} duplicates dropped, {data['prefs']['pairs']} pairs, "
        f"{data['prefs']['questions_without_pair']} questions without a usable reject",
        "",
        "## Training",
    ]
    for stage in ("sft", "dpo"):
        t = report["training"].get(stage)
        if t:
            mean = f" (mean {t['mean_loss']:.4f})" if t.get("mean_loss") is not None else ""
            accuracy = (
                f", last-step reward accuracy {t['last_accuracy']:.2f}" if t.get("last_accuracy") is not None else ""
            )
            lines.append(
                f"- {stage}: {t['steps']} steps, loss {t['first_loss']} -> {t['last_loss']}{mean}{accuracy}, "
                f"recipe `{t['recipe']}`, adapter `{t['adapter']}`, {t['seconds']:.0f}s"
            )
    lines += [
        "",
        "## Files",
        "- predictions in BIRD's predict_dev.json format: "
        + ", ".join(f"`{s['predictions']}`" for s in report["stages"]),
        "  (re-score: `lfkit eval score --predictions FILE --gold corpus/dev.json --db-root corpus/dev_databases`)",
        "- plots: `report/ex_by_stage.png`, `report/loss.png`",
        "",
        f"Run on {report['machine']} at {report['finished']}; total {report['total_seconds'] / 60:.1f} minutes.",
        "",
    ]
    return "\n".join(lines)


def plot_ex(stages: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s["name"] for s in stages]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.2
    series = [("all", [s["ex"] for s in stages])]
    series += [(d, [s["by_difficulty"].get(d, {}).get("ex", 0.0) for s in stages]) for d in DIFFICULTIES]
    for k, (label, values) in enumerate(series):
        ax.bar([i + (k - 1.5) * width for i in range(len(names))], values, width, label=label)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("dev EX (%)")
    ax.set_title("Execution accuracy per stage")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_loss(training: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(training), figsize=(5 * len(training), 3.2), squeeze=False)
    for ax, (stage, t) in zip(axes[0], training.items(), strict=True):
        if t["loss_curve"]:
            steps, losses = zip(*t["loss_curve"], strict=True)
            ax.plot(steps, losses, marker=".")
        ax.set_title(f"{stage} training loss")
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(cfg: DemoConfig, layout: DemoLayout, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    stages = eval_rows(results)
    training = {s: results[s] for s in ("sft", "dpo") if s in results}
    report = {
        "model": cfg.model,
        "config": config_dict(cfg),
        "stages": stages,
        "verdict": verdict(stages),
        "data": {
            "train_questions": results["corpus"]["train_questions"],
            "dev_questions": results["corpus"]["dev_questions"],
            "sft_rows": results["corpus"]["sft_rows"],
            "prefs": results["prefs"],
        },
        "training": training,
        "recipes": sorted(str(p.relative_to(layout.root)) for p in layout.recipes.glob("*.yaml")),
        "stage_seconds": {k: v.get("seconds") for k, v in results.items()},
        "total_seconds": sum(v.get("seconds", 0) for v in results.values()),
        "machine": machine(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    layout.report.mkdir(parents=True, exist_ok=True)
    plot_ex(stages, layout.report / "ex_by_stage.png")
    plot_loss(training, layout.report / "loss.png")
    atomic_write_text(layout.root / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(layout.root / "report.md", markdown(report))
    return report

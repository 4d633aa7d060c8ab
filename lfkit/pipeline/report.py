"""The reports of ``lfkit demo`` and ``lfkit demo --full``: report.json, report.md and PNG plots, all from
the run's own typed stage results (``lfkit iterate``'s: ``lfkit.pipeline.report_iterate``)."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lfkit.data.rows import DIFFICULTIES
from lfkit.io import atomic_write_text
from lfkit.pipeline.config import DemoConfig, config_dict
from lfkit.pipeline.layout import RunLayout
from lfkit.pipeline.results import (
    BonSampleResult,
    BonSelectResult,
    CorpusResult,
    EvalResult,
    GrpoResult,
    PrefsResult,
    RmDataResult,
    RmEvalResult,
    TrainResult,
    TreesResult,
)
from lfkit.pipeline.stages import StageRunner

if TYPE_CHECKING:
    from lfkit.eval.report_html import ReportTable

EVAL_STAGES = (("eval_base", "base"), ("eval_sft", "sft"), ("eval_dpo", "dpo"))


def eval_rows(runner: StageRunner) -> list[dict[str, Any]]:
    rows = []
    for key, name in EVAL_STAGES:
        r = runner.get(key, EvalResult)
        if r is None:
            continue
        rows.append(
            {
                "name": name,
                "ex": r.ex,
                "n": r.n,
                "by_difficulty": r.by_difficulty,
                "soft_f1": r.soft_f1,
                "errors": r.errors,
                "timeouts": r.timeouts,
                "empty_predictions": r.empty_predictions,
                "predictions": r.predictions,
                "seconds": r.seconds,
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


def run_record(layout: RunLayout, runner: StageRunner) -> dict[str, Any]:
    """The end of a multi-stage report (``lfkit iterate``, ``lfkit demo --full``): the recipes under
    ``recipes/`` (nested), seconds per stage and in total, the machine and the finishing time."""
    seconds = runner.seconds()
    return {
        "recipes": sorted(str(p.relative_to(layout.root)) for p in layout.recipes.rglob("*.yaml")),
        "stage_seconds": seconds,
        "total_seconds": round(sum(v or 0 for v in seconds.values()), 1),
        "machine": machine(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def run_line(report: dict[str, Any]) -> str:
    """The last line of every report.md: where, when and how long it ran."""
    return f"Run on {report['machine']} at {report['finished']}; total {report['total_seconds'] / 60:.1f} minutes."


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
                f", last-step reward accuracy {t['reward_accuracy']:.2f}"
                if t.get("reward_accuracy") is not None
                else ""
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
        "- plots: `report/ex_by_stage.png`, `report/loss.png`; every dev question by stage: `report.html` (a browser)",
        "",
        run_line(report),
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
        ax.set_title(t.get("curve_title") or f"{stage} training loss")
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_html(
    layout: RunLayout,
    corpus: Path,
    stages: list[tuple[str, str]],
    title: str,
    *,
    lead: str = "",
    tables: Sequence[ReportTable] = (),
    plots: Sequence[str] = (),
) -> Path:
    """``report.html``: the page a person opens (``lfkit eval report``): the run's verdict (``lead``), EX by stage
    and difficulty, and every dev question with each stage's answer, its label, what fixed or broke it and the
    issue detectors.

    ``stages``: ``(name, predictions file relative to the run folder)`` in pipeline order. The run's PNGs
    (``report/*.png``, then ``plots``: relative to the run folder) are embedded; ``tables``: the stages' own
    summaries (:mod:`lfkit.pipeline.report_page`).
    """
    from lfkit.data.bird import split_db_root
    from lfkit.eval.report_html import write_html_report

    return write_html_report(
        layout.root / "report.html",
        [(name, layout.root / path) for name, path in stages],
        corpus / "dev.json",
        split_db_root(corpus, "dev"),
        title=title,
        images=[*sorted(layout.report.glob("*.png")), *(layout.root / p for p in plots)],
        extra_tables=tables,
        lead=lead,
    )


def write_report(cfg: DemoConfig, layout: RunLayout, runner: StageRunner) -> dict[str, Any]:
    stages = eval_rows(runner)
    training = {s: t.to_json() for s in ("sft", "dpo") if (t := runner.get(s, TrainResult)) is not None}
    corpus, prefs = runner.get("corpus", CorpusResult), runner.get("prefs", PrefsResult)
    assert corpus is not None and prefs is not None  # run_demo runs both before the report
    seconds = runner.seconds()
    report = {
        "model": cfg.model,
        "config": config_dict(cfg),
        "stages": stages,
        "verdict": verdict(stages),
        "data": {
            "train_questions": corpus.train_questions,
            "dev_questions": corpus.dev_questions,
            "sft_rows": corpus.sft_rows,
            "prefs": prefs.to_json(),
        },
        "training": training,
        "recipes": sorted(str(p.relative_to(layout.root)) for p in layout.recipes.glob("*.yaml")),
        "stage_seconds": seconds,
        "total_seconds": sum(v or 0 for v in seconds.values()),
        "machine": machine(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    layout.report.mkdir(parents=True, exist_ok=True)
    plot_ex(stages, layout.report / "ex_by_stage.png")
    plot_loss(training, layout.report / "loss.png")
    stage_files = [(s["name"], s["predictions"]) for s in stages]
    write_html(layout, layout.corpus, stage_files, f"lfkit demo: {cfg.model}", lead=report["verdict"])
    atomic_write_text(layout.root / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(layout.root / "report.md", markdown(report))
    return report


# ----------------------------------------------------------------------------- lfkit demo --full


def full_eval_stages(runner: StageRunner, rounds: int) -> list[tuple[str, str]]:
    """(row name, stage name) of every evaluation of a full run, in pipeline order."""
    names = [("base", "eval_base"), ("sft", "eval_sft")]
    names += [(f"round{k}", f"round{k}/eval") for k in range(1, rounds + 1)]
    names.append(("grpo", "eval_grpo"))
    return [(row, stage) for row, stage in names if stage in runner.results]


def rescore_eval(root: Path, result: EvalResult, corpus: Path) -> dict[str, Any]:
    """EX of an evaluation stage, re-scored from its own BIRD ``predict_dev.json`` (the stage's number is not used)."""
    from lfkit.data.bird import split_db_root
    from lfkit.eval import score_predictions

    r = score_predictions(root / result.predictions, corpus / "dev.json", split_db_root(corpus, "dev"))
    return {
        "ex": r["ex"],
        "n": r["n"],
        "by_difficulty": json.loads(json.dumps(r["by_difficulty"], default=str)),
        "errors": r["errors"],
    }


def _training_row(result: TrainResult) -> dict[str, Any]:
    keys = ("steps", "first_loss", "last_loss", "mean_loss", "reward_accuracy", "recipe", "seconds")
    return {k: getattr(result, k) for k in keys}


def full_verdict(stages: list[dict[str, Any]], best_round: int, bon: dict[str, Any] | None) -> str:
    """What each step did to dev EX, in a few sentences (a move of fewer than 2 questions is called noise)."""
    by = {s["name"]: s for s in stages}
    parts = []

    def move(after: str, before: str, label: str) -> None:
        if after in by and before in by:
            delta = by[after]["ex"] - by[before]["ex"]
            noise = " (within noise)" if abs(delta) < 200 / max(by[after]["n"], 1) else ""
            parts.append(f"{label}: {by[before]['ex']:.1f} -> {by[after]['ex']:.1f} ({delta:+.1f}){noise}.")

    move("sft", "base", "SFT vs base")
    rounds = [s["name"] for s in stages if s["name"].startswith("round")]
    if rounds:
        move(rounds[-1], "sft", f"DPO rounds (last: {rounds[-1]}) vs SFT")
    best = "sft" if best_round == 0 else f"round{best_round}"
    move("grpo", best, f"GRPO vs the best policy ({best})")
    if bon:
        strategies = bon["strategies"]
        if "greedy" in strategies:
            from lfkit.eval.select import STRATEGIES

            # every selector, not the RM's top-1 alone: on make quality's runs it is the RM's weakest use (README)
            picks = ", ".join(f"{k} {strategies[k]['ex']:.1f}" for k in STRATEGIES if k in strategies and k != "greedy")
            parts.append(
                f"Best-of-{bon['n_candidates']} on {bon['questions']} dev questions: greedy "
                f"{strategies['greedy']['ex']:.1f}; {picks}."
            )
    return " ".join(parts)


def full_markdown(report: dict[str, Any]) -> str:
    from lfkit.data.rows import DIFFICULTIES
    from lfkit.pipeline.report_page import full_tables

    head = "| stage | EX % | " + " | ".join(f"{d} % (n)" for d in DIFFICULTIES) + " | n | errors | predictions |"
    lines = [f"# lfkit demo --full report ({report['model']})", "", "## Dev EX by stage", "", head]
    lines.append("|" + "---|" * (len(DIFFICULTIES) + 5))
    for s in report["stages"]:
        diffs = [
            f"{s['by_difficulty'][d]['ex']:.1f} ({s['by_difficulty'][d]['n']})" if d in s["by_difficulty"] else "-"
            for d in DIFFICULTIES
        ]
        best = " (best policy)" if s["name"] == report["best_policy"] else ""
        lines.append(
            f"| {s['name']}{best} | {s['ex']:.1f} | " + " | ".join(diffs)
            + f" | {s['n']} | {s['errors']} | `{s['predictions']}` |"
        )  # fmt: skip
    lines += [
        "",
        report["verdict"],
        "",
        "Every EX above is re-scored from the stage's own BIRD predict_dev.json: "
        "`lfkit eval score -p FILE -g corpus/dev.json --db-root corpus/dev_databases`.",
    ]
    if report.get("stopped"):
        lines += ["", f"DPO rounds stopped: {report['stopped']}"]
    trees = report.get("trees") or {}
    if trees:
        lines += [
            "",
            f"Trees: {trees.get('trees')} trees, {trees.get('nodes')} nodes, correct at depth 1 "
            f"{trees.get('correct_at_depth_1')}, rescued by revision {trees.get('rescued_by_revision')}, "
            f"verified: {trees.get('verified_ok')}.",
        ]
    for table in full_tables(report):  # the page's tables (report_page), so report.md and report.html agree
        lines += ["", table.markdown()]
    bon = report.get("best_of_n") or {}
    if bon:
        files = ", ".join(f"{name} `{s['predictions']}`" for name, s in bon["strategies"].items())
        lines += ["", f"Each selector's predictions (re-score any): {files}."]
    lines += ["", "## Training", "", "| run | steps | loss first -> last | mean loss | reward acc. | seconds |"]
    lines.append("|---|---|---|---|---|---|")
    for name, t in report["training"].items():
        if name == "grpo":
            continue
        acc = t.get("reward_accuracy")
        lines.append(
            f"| {name} | {t.get('steps')} | {t.get('first_loss')} -> {t.get('last_loss')} | {t.get('mean_loss')} | "
            f"{'-' if acc is None else f'{acc:.2f}'} | {t.get('seconds')} |"
        )
    grpo = report["training"].get("grpo")
    if grpo:
        lines += [
            "",
            f"GRPO: {grpo.get('steps')} steps, mean reward {grpo.get('first_reward')} -> {grpo.get('last_reward')}, "
            f"reward errors {grpo.get('reward_errors')}, KL reference: {grpo.get('kl_reference')}.",
        ]
    lines += ["", "## Time per stage (seconds)", ""]
    lines += [f"- {name}: {secs}" for name, secs in report["stage_seconds"].items()]
    lines += [
        "",
        "## Files",
        "- plots: `report/ex_by_stage.png`, `report/loss.png`"
        + "".join(f", `{p}`" for p in report["plots"])
        + "; every dev question by stage: `report.html` (a browser)",
        "- recipes: " + ", ".join(f"`{p}`" for p in report["recipes"]),
        "",
        run_line(report),
        "",
    ]
    return "\n".join(lines)


def write_full_report(
    layout: RunLayout,
    runner: StageRunner,
    *,
    model: str,
    settings: dict[str, Any],
    rounds: int,
    best_round: int,
    stopped: str | None = None,
) -> dict[str, Any]:
    """report.json / report.md / report/*.png of ``lfkit demo --full``, every EX re-scored from its file."""
    stages = []
    for name, stage in full_eval_stages(runner, rounds):
        result = runner.get(stage, EvalResult)
        assert result is not None
        row = {"name": name, "stage": stage, **rescore_eval(layout.root, result, layout.corpus)}
        row.update(predictions=result.predictions, seconds=result.seconds)
        stages.append(row)
    round_rows = []
    for k in range(1, rounds + 1):
        sample = runner.get(f"round{k}/sample", PrefsResult)
        if sample is None:
            break
        row = {"round": k, "pairs": sample.pairs, "pairs_by_reject_kind": sample.pairs_by_reject_kind}
        row.update(pairs_by_chosen_source=sample.pairs_by_chosen_source, labels=sample.labels)
        row.update({"empty": sample.empty} if sample.empty else {}, pairs_file=sample.pairs_file)
        round_rows.append(row)
    training: dict[str, dict[str, Any]] = {}
    curves: dict[str, dict[str, Any]] = {}
    trained = [("sft", "sft"), *((f"round{k}_dpo", f"round{k}/dpo") for k in range(1, rounds + 1)), ("rm", "rm")]
    for name, stage in trained:
        result = runner.get(stage, TrainResult)
        if result is not None:
            training[name] = _training_row(result)
            curves[name] = {"loss_curve": result.loss_curve}
    grpo = runner.get("grpo", GrpoResult)
    if grpo is not None:
        keys = ("steps", "first_reward", "last_reward", "reward_errors", "kl_reference", "recipe", "adapter", "seconds")
        training["grpo"] = {k: getattr(grpo, k) for k in keys}
        curves["grpo"] = {"loss_curve": grpo.reward_curve, "curve_title": "grpo mean reward"}
    select, sampled = runner.get("bon/select", BonSelectResult), runner.get("bon/sample", BonSampleResult)
    bon = None if select is None else {**select.to_json(), "pass_at_n": sampled.pass_at_n if sampled else None}
    rm_eval = runner.get("rm_eval", RmEvalResult)
    trees = runner.get("trees", TreesResult)
    rm_data = runner.get("rm_data", RmDataResult)
    rm_test = runner.get("rm_test", PrefsResult)
    best_name = "sft" if best_round == 0 else f"round{best_round}"
    margins = rm_eval.report.replace(".json", ".margins.png") if rm_eval else None
    plots = [p for p in ((bon or {}).get("plot"), margins, grpo.reward_curve_png if grpo else None) if p]
    report = {
        "model": model,
        "settings": settings,
        "stages": stages,
        "best_policy": best_name,
        "best_round": best_round,
        "stopped": stopped,
        "verdict": full_verdict(stages, best_round, bon),
        "rounds": round_rows,
        "trees": trees.to_json() if trees else None,
        "pairs": rm_data.to_json() if rm_data else {},
        "rm_test": rm_test.to_json() if rm_test else None,
        "rm_eval": rm_eval.to_json() if rm_eval else None,
        "best_of_n": bon,
        "training": training,
        "plots": plots,
        **run_record(layout, runner),
    }
    layout.report.mkdir(parents=True, exist_ok=True)
    plot_ex(stages, layout.report / "ex_by_stage.png")
    if curves:
        plot_loss(curves, layout.report / "loss.png")
    stage_files = [(s["name"], s["predictions"]) for s in stages]
    from lfkit.pipeline.report_page import full_tables

    title = f"lfkit demo --full: {model}"
    write_html(
        layout, layout.corpus, stage_files, title, lead=report["verdict"], tables=full_tables(report), plots=plots
    )
    atomic_write_text(layout.root / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(layout.root / "report.md", full_markdown(report))
    return report

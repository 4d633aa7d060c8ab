"""`lfkit iterate`'s report: report.json, report.md and ex_by_round.png from the run's typed stage results,
every EX re-scored from the rounds' BIRD prediction files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lfkit.pipeline.layout import RunLayout
from lfkit.pipeline.results import EvalResult, MergeResult, PrefsResult, TrainResult
from lfkit.pipeline.stages import StageRunner
from lfkit.pipeline.steps import RunContext
from lfkit.prefs.rejects import REJECT_KINDS


def rescore_rounds(root: str | Path, corpus: str | Path | None = None) -> list[dict[str, Any]]:
    """EX by round re-scored from ``report/round<k>/predict_dev.json`` (BIRD's format) alone.

    ``corpus`` defaults to ``root/corpus``; rows are in round order, one per prediction file.
    """
    from lfkit.data.bird import split_db_root
    from lfkit.eval import score_predictions

    layout = RunLayout(Path(root))
    corpus = Path(corpus) if corpus is not None else layout.corpus
    rows = []
    files = sorted(layout.report.glob("round*/predict_dev.json"), key=lambda f: int(f.parent.name[5:]))
    for path in files:
        r = score_predictions(path, corpus / "dev.json", split_db_root(corpus, "dev"))
        rows.append(
            {
                "round": int(path.parent.name[5:]),
                "ex": r["ex"],
                "n": r["n"],
                "by_difficulty": r["by_difficulty"],
                "errors": r["errors"],
                "predictions": str(path.relative_to(layout.root)),
            }
        )
    return rows


def round_rows(run: RunContext, runner: StageRunner, rounds: int, best_round: int) -> list[dict[str, Any]]:
    """One row per round (0 = the start model): EX re-scored from the prediction files, pairs, DPO, times."""
    scored = {r["round"]: r for r in rescore_rounds(run.layout.root, run.corpus)}
    rows = []
    for k in range(0, rounds + 1):
        prefix = f"round{k}/"
        stages = {name.removeprefix(prefix): r for name, r in runner.results.items() if name.startswith(prefix)}
        if not stages:
            break
        row: dict[str, Any] = {"round": k, "best": k == best_round}
        if k in scored:
            row.update({key: scored[k][key] for key in ("ex", "n", "by_difficulty", "errors", "predictions")})
        sample = runner.get(f"{prefix}sample", PrefsResult)
        dpo = runner.get(f"{prefix}dpo", TrainResult)
        merge = runner.get(f"{prefix}merge", MergeResult)
        if sample is not None:
            row["pairs"] = sample.pairs
            row["pairs_by_reject_kind"] = sample.pairs_by_reject_kind
            row["pairs_by_chosen_source"] = sample.pairs_by_chosen_source
            row["labels"] = sample.labels
            if sample.empty:
                row["empty"] = sample.empty
        if dpo is not None:
            for key in ("steps", "first_loss", "last_loss", "mean_loss", "reward_accuracy", "recipe"):
                row[f"dpo_{key}"] = getattr(dpo, key)
            row["policy_start"] = row["reference"] = dpo.policy_start
        if merge is not None:
            row["merge_recipe"] = merge.recipe
        row["seconds"] = {name: r.seconds for name, r in stages.items()}
        rows.append(row)
    return rows


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def markdown(report: dict[str, Any]) -> str:
    from lfkit.data.rows import DIFFICULTIES
    from lfkit.pipeline.report import run_line

    head = (
        "| round | EX % | "
        + " | ".join(f"{d} %" for d in DIFFICULTIES)
        + f" | errors | pairs ({'/'.join(REJECT_KINDS)}) "
    )
    head += "| on-policy chosen | DPO loss first -> last | reward acc | steps | minutes |"
    lines = [f"# lfkit iterate report ({report['preset']})", "", head, "|" + "---|" * (len(DIFFICULTIES) + 9)]
    for r in report["rounds"]:
        diffs = [
            f"{r['by_difficulty'][d]['ex']:.1f} ({r['by_difficulty'][d]['n']})"
            if d in r.get("by_difficulty", {})
            else "-"
            for d in DIFFICULTIES
        ]
        kinds = r.get("pairs_by_reject_kind")
        pairs = f"{r['pairs']} ({'/'.join(str(kinds.get(k, 0)) for k in REJECT_KINDS)})" if kinds else "-"
        loss = (
            f"{_fmt(r.get('dpo_first_loss'), '.4f')} -> {_fmt(r.get('dpo_last_loss'), '.4f')}"
            if "dpo_steps" in r
            else "-"
        )
        minutes = sum(v or 0 for v in r["seconds"].values()) / 60
        name = f"{r['round']}{' (best)' if r['best'] else ''}{' (empty)' if r.get('empty') else ''}"
        lines.append(
            f"| {name} | {_fmt(r.get('ex'))} | " + " | ".join(diffs) + f" | {r.get('errors', '-')} | {pairs} | "
            f"{r.get('pairs_by_chosen_source', {}).get('on-policy', '-')} | {loss} | "
            f"{_fmt(r.get('dpo_reward_accuracy'), '.2f')} | {r.get('dpo_steps', '-')} | {minutes:.1f} |"
        )
    lines += ["", report["verdict"], ""]
    if report.get("stopped"):
        lines += [f"Stopped: {report['stopped']}", ""]
    lines += [
        "Round 0 is the start model; round k trains a new LoRA adapter on round k-1 merged "
        "(llamafactory-cli export), which is also its DPO reference.",
        "",
        "## Files",
        "- predictions (BIRD predict_dev.json): "
        + ", ".join(f"`{r['predictions']}`" for r in report["rounds"] if "predictions" in r),
        "  (the EX columns above are re-scored from these files: "
        "`lfkit eval score -p FILE -g corpus/dev.json --db-root corpus/dev_databases`)",
        "- recipes: " + ", ".join(f"`{p}`" for p in report["recipes"]),
        "- plot: `ex_by_round.png`",
        "",
        "## Time per stage (seconds)",
    ]
    lines += [f"- {name}: {secs}" for name, secs in report["stage_seconds"].items()]
    lines += [
        "",
        run_line(report),
        "",
    ]
    return "\n".join(lines)


def plot_rounds(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lfkit.data.rows import DIFFICULTIES

    scored = [r for r in rows if "ex" in r]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = [r["round"] for r in scored]
    ax.plot(xs, [r["ex"] for r in scored], marker="o", linewidth=2, label="all")
    for d in DIFFICULTIES:
        ax.plot(xs, [r["by_difficulty"].get(d, {}).get("ex", 0.0) for r in scored], marker=".", linestyle="--", label=d)
    ax.set_xticks(xs)
    ax.set_xlabel("round (0 = start model)")
    ax.set_ylabel("dev EX (%)")
    ax.set_title("Execution accuracy by DPO round")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    cfg: Any, run: RunContext, runner: StageRunner, *, stopped: str | None = None, best_round: int = 0
) -> dict[str, Any]:
    """report.json / report.md / ex_by_round.png of ``lfkit iterate`` (``cfg``: its IterateConfig)."""
    from lfkit.io import atomic_write_text
    from lfkit.pipeline.report import run_record, write_html

    layout = run.layout
    rows = round_rows(run, runner, cfg.rounds, best_round)
    scored = [r for r in rows if "ex" in r]
    first, best = scored[0], next(r for r in scored if r["round"] == best_round)
    trained = [r for r in rows if "dpo_steps" in r]
    verdict = (
        f"{len(trained)} DPO round(s): dev EX {first['ex']:.1f} at round 0 -> {scored[-1]['ex']:.1f} at round "
        f"{scored[-1]['round']}; best round {best_round} ({best['ex']:.1f})."
    )
    best_eval = runner.get(f"round{best_round}/eval", EvalResult)
    report = {
        "preset": cfg.preset,
        "settings": cfg.settings(),
        "rounds": rows,
        "best_round": best_round,
        "best_model": best_eval.model.as_dict() if best_eval is not None and best_eval.model else None,
        "stopped": stopped,
        "verdict": verdict,
        **run_record(layout, runner),
    }
    plot_rounds(rows, layout.root / "ex_by_round.png")
    stage_files = [(f"round {r['round']}", r["predictions"]) for r in rows if "predictions" in r]
    write_html(layout, run.corpus, stage_files, f"lfkit iterate: {cfg.preset}", lead=verdict, plots=["ex_by_round.png"])
    atomic_write_text(layout.root / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(layout.root / "report.md", markdown(report))
    return report


__all__ = ["markdown", "plot_rounds", "rescore_rounds", "round_rows", "write_report"]

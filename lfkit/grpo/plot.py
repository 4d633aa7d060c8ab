"""``reward_curve.png`` of a GRPO run, from its ``grpo_log.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path

CURVE_FILE = "reward_curve.png"


def plot_rewards(log_file: Path, out: Path) -> Path | None:
    """``reward_curve.png``: mean total reward and each reward's mean per step, dev EX on a second axis."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    records = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    train = [r for r in records if "reward" in r]
    dev = [r for r in records if "dev_ex" in r]
    if not train and not dev:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if train:
        steps = [r["step"] for r in train]
        ax.plot(steps, [r["reward"] for r in train], label="total reward (weighted)", linewidth=2)
        for key in sorted({k for r in train for k in r if k.startswith("rewards/") and k.endswith("/mean")}):
            ax.plot(steps, [r.get(key, float("nan")) for r in train], label=key[8:-5], alpha=0.6)
    ax.set_xlabel("step")
    ax.set_ylabel("reward (mean over completions)")
    if dev:
        ax2 = ax.twinx()
        ax2.plot([r["step"] for r in dev], [r["dev_ex"] for r in dev], "k--o", label="dev EX (%)")
        ax2.set_ylabel("dev EX (%)")
        ax2.legend(loc="lower right")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("GRPO rewards and dev EX")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


__all__ = ["CURVE_FILE", "plot_rewards"]

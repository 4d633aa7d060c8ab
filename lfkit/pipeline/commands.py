"""`lfkit demo`."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option(
    "--model",
    type=click.Choice(["smollm2-135m", "tiny"]),
    default="smollm2-135m",
    show_default=True,
    help="Embedded model: smollm2-135m (the real demo) or tiny (a random model; a fast smoke run).",
)
@click.option("--quick", is_flag=True, help="Same as --model tiny.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo_out"), show_default=True)
@click.option("--force", is_flag=True, help="Re-run every stage, ignoring cached results.")
@click.option("--seed", type=int, default=None, help="Seed for corpus, sampling and training (default 0).")
@click.option("--n-sft", type=int, default=None, help="SFT rows (default from the model's profile).")
@click.option("--n-prefs", type=int, default=None, help="Train questions sampled for DPO pairs.")
@click.option("--num-candidates", type=int, default=None, help="Candidates sampled per question.")
@click.option("--sft-lr", type=float, default=None, help="SFT learning rate (default from the model's profile).")
@click.option("--dpo-lr", type=float, default=None, help="DPO learning rate (default from the model's profile).")
def demo(
    model: str,
    quick: bool,
    out: Path,
    force: bool,
    seed: int | None,
    n_sft: int | None,
    n_prefs: int | None,
    num_candidates: int | None,
    sft_lr: float | None,
    dpo_lr: float | None,
) -> None:
    """Post-train a real model on a real database, SFT then DPO, and report EX per stage.

    \b
    Stages (each cached under OUT/stages/; re-run to resume, --force to redo):
      1. build the Lahman demo corpus (BIRD layout), SFT rows, dataset_info.json
      2. evaluate the base model on dev (execution accuracy by difficulty)
      3. SFT with llamafactory-cli (rendered recipe in OUT/recipes/), evaluate
      4. sample candidates with the SFT model, keep execution-verified rejects
      5. DPO from the SFT adapter with llamafactory-cli, evaluate
      6. OUT/report.md, OUT/report.json, OUT/report/ (BIRD predict_dev files, plots)

    \b
    A finished or interrupted OUT is resumed only with the same settings; other
    settings need --force or another --out.

    \b
    Examples:
      lfkit demo                       # smollm2-135m, about 20 minutes on 2 CPU cores
      lfkit demo --quick --out /tmp/d  # tiny random model, a smoke run of a few minutes
      lfkit demo --dpo-lr 2e-4 --out demo_lr2e-4   # the same run with a gentler DPO
    """
    from lfkit.pipeline.config import demo_config
    from lfkit.pipeline.demo import run_demo

    if quick:
        model = "tiny"
    # ConfigError, DemoError and every other LfkitError become one line on stderr in lfkit.cli
    cfg = demo_config(
        model,
        out=out,
        force=force,
        seed=seed,
        n_sft=n_sft,
        n_prefs=n_prefs,
        num_candidates=num_candidates,
        sft_lr=sft_lr,
        dpo_lr=dpo_lr,
    )
    run_demo(cfg)

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
@click.option(
    "--full",
    is_flag=True,
    help="Every loop: SFT, DPO rounds, revision trees, reward model, best-of-N, GRPO (default --out demo_full_out).",
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Output folder [default: demo_out]."
)
@click.option("--force", is_flag=True, help="Re-run every stage, ignoring cached results.")
@click.option("--seed", type=int, default=None, help="Seed for corpus, sampling and training (default 0).")
@click.option("--n-sft", type=int, default=None, help="SFT rows (default from the model's profile).")
@click.option("--n-prefs", type=int, default=None, help="Train questions sampled for DPO pairs.")
@click.option("--num-candidates", type=int, default=None, help="Candidates sampled per question.")
@click.option("--sft-lr", type=float, default=None, help="SFT learning rate (default from the model's profile).")
@click.option("--dpo-lr", type=float, default=None, help="DPO learning rate (default from the model's profile).")
@click.option("--pref-beta", type=float, default=None, help="DPO beta.")
@click.option("--pref-loss", type=click.Choice(["sigmoid", "ipo", "hinge", "orpo", "simpo"]), help="Preference loss.")
@click.option("--pref-ftx", type=float, default=None, help="SFT term on chosen mixed into DPO.")
@click.option(
    "--chosen",
    type=click.Choice(["gold", "on-policy"]),
    help="DPO chosen side (on-policy: the SFT model's own correct samples).",
)
@click.option("--reject-kinds", help="Sample labels that may be rejected, e.g. wrong,error (default: every failure).")
def demo(
    model: str,
    quick: bool,
    full: bool,
    out: Path | None,
    force: bool,
    seed: int | None,
    n_sft: int | None,
    n_prefs: int | None,
    num_candidates: int | None,
    sft_lr: float | None,
    dpo_lr: float | None,
    pref_beta: float | None,
    pref_loss: str | None,
    pref_ftx: float | None,
    chosen: str | None,
    reject_kinds: str | None,
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
    --full runs every loop of lfkit after the SFT (OUT default demo_full_out):
      DPO rounds from the SFT adapter (lfkit iterate), revision trees of the best policy on
      train questions (lfkit tree), a reward model on tree + reject pairs (llamafactory-cli),
      rm eval on held-out dev pairs, best-of-N on dev (greedy / vote / RM / oracle), GRPO
      from the best policy (lfkit grpo train), each evaluated; one report. Options it takes:
      --model/--quick, --out, --force, --seed, --num-candidates, --dpo-lr, --pref-beta,
      --chosen, --reject-kinds (for the DPO rounds).

    \b
    Examples:
      lfkit demo                       # smollm2-135m, about 20 minutes on 2 CPU cores
      lfkit demo --quick --out /tmp/d  # tiny random model, a smoke run of a few minutes
      lfkit demo --dpo-lr 2e-4 --out demo_lr2e-4   # the same run with a gentler DPO
      lfkit demo --full                # every loop on smollm2-135m (58.5 minutes measured on 2 CPU cores)
      lfkit demo --full --quick        # the same on the tiny model, a few minutes
    """
    from lfkit.pipeline.config import demo_config
    from lfkit.pipeline.demo import run_demo
    from lfkit.train import pin_demo_environment

    pin_demo_environment()  # the embedded CPU demo pins CPU + offline here, where it starts (issue 26)
    if quick:
        model = "tiny"
    if full:
        from lfkit.pipeline.full import full_config, run_full

        refused = {"--n-sft": n_sft, "--n-prefs": n_prefs, "--sft-lr": sft_lr, "--pref-loss": pref_loss}
        refused["--pref-ftx"] = pref_ftx
        given = [name for name, value in refused.items() if value is not None]
        if given:
            raise click.UsageError(f"--full does not take {', '.join(given)} (the SFT uses the demo profile)")
        run_full(
            full_config(
                model,
                out=out or Path("demo_full_out"),
                force=force,
                seed=seed,
                num_candidates=num_candidates,
                dpo_lr=dpo_lr,
                pref_beta=pref_beta,
                chosen=chosen,
                reject_kinds=reject_kinds,
            )
        )
        return
    out = out or Path("demo_out")
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
        pref_beta=pref_beta,
        pref_loss=pref_loss,
        pref_ftx=pref_ftx,
        chosen=chosen,
        reject_kinds=reject_kinds,
    )
    run_demo(cfg)


@click.command("iterate")
@click.option("--preset", default="smollm2-135m", show_default=True, help="Model preset (`lfkit render --list`).")
@click.option(
    "--from",
    "from_path",
    help="Round 0: a LoRA adapter folder (on the preset's model) or a model folder. "
    "Default for smollm2-135m/tiny: the demo's SFT, trained here.",
)
@click.option("--corpus", help="BIRD folder (train.json, dev.json, *_databases). Default: the Lahman demo corpus.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("iterate_out"), show_default=True)
@click.option("--rounds", type=int, default=3, show_default=True, help="DPO rounds after round 0 (the start model).")
@click.option("--questions-per-round", type=int, default=24, show_default=True, help="Fresh train questions per round.")
@click.option("--num-candidates", type=int, default=4, show_default=True, help="Candidates sampled per question.")
@click.option("--temperature", type=float, default=0.8, show_default=True, help="Sampling temperature.")
@click.option(
    "--chosen",
    type=click.Choice(["on-policy", "gold"]),
    default="on-policy",
    show_default=True,
    help="Chosen side: the model's own correct samples (gold fallback), or gold.",
)
@click.option(
    "--reject-kinds", default="wrong,error,timeout,no_sql", show_default=True, help="Labels that may be rejected."
)
@click.option("--pairs-per-question", type=int, default=1, show_default=True, help="Pairs per question, hardest first.")
@click.option("--dpo-lr", type=float, help="DPO learning rate (default: the demo profile's / the preset's).")
@click.option("--dpo-epochs", type=float, help="DPO epochs per round.")
@click.option("--pref-beta", type=float, help="DPO beta.")
@click.option("--pref-loss", type=click.Choice(["sigmoid", "ipo", "hinge", "orpo", "simpo"]), help="Preference loss.")
@click.option("--pref-ftx", type=float, help="SFT term on chosen mixed into DPO.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for corpus, question slices, sampling.")
@click.option("--stop-when-worse", is_flag=True, help="Stop after a round whose dev EX falls; the best round is kept.")
@click.option("--backend", type=click.Choice(["hf", "vllm"]), default="hf", show_default=True, help="Sampling/eval.")
@click.option("--n-dev", type=int, help="Dev questions of the demo corpus (default: the demo's 64).")
@click.option("--max-new-tokens", type=int, help="Generation cap (default: the demo profile's, else 512).")
@click.option("--force", is_flag=True, help="Redo every stage.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print every command and recipe of the run (recipes written, validated); run nothing.",
)
def iterate(**kwargs: object) -> None:
    """Iterative DPO: round k samples with round k-1, trains DPO with round k-1 as start AND reference.

    \b
    Round 0 is the start model (--from, or the demo SFT). Round k:
      1. merge round k-1 into a plain model (llamafactory-cli export) -> OUT/models/round<k-1>
      2. sample --num-candidates answers for --questions-per-round fresh train questions with it,
         label them by execution, pair them (lfkit prefs rejects), register the pairs
      3. DPO: a new LoRA adapter on the merged model (reference = the same model = round k-1)
      4. greedy dev predictions -> OUT/report/round<k>/predict_dev.json, EX by difficulty
    OUT/report.md, report.json, ex_by_round.png; recipes of every round in OUT/recipes/round<k>/.
    Each stage is cached: re-run the same command to resume (other settings are refused).
    A round with no pair is recorded as empty and the loop stops.

    \b
    Examples:
      lfkit iterate --rounds 3                                  # SmolLM2 + Lahman demo, CPU
      lfkit iterate --from saves/sft --rounds 2 --stop-when-worse
      lfkit iterate --dry-run --preset qwen3-coder-30b-a3b --rounds 3 \\
          --from saves/qwen3-coder-30b-a3b/lora/sft --corpus ~/bird --backend vllm
    """
    from lfkit.pipeline.iterate import IterateConfig, run_iterate

    run_iterate(IterateConfig(**kwargs))  # IterateError (an LfkitError) -> one line on stderr

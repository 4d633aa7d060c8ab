"""Levers on `make quality`'s finished seeds: change a few settings, redo only the stages they decide.

A lever's run is a copy of a finished seed (``OUT/seed<k>`` -> ``OUT/levers/<lever>/seed<k>``, every
absolute path inside rewritten to the copy's) without the cached stages from the first one its
settings decide onwards (in the order the seed ran them), then ``lfkit demo --full`` with the lever's
settings resumes it: the corpus, SFT and sampling journals are reused (a changed pairing re-pairs
the journalled candidates, it samples nothing), and the run stops where the lever is measured
(after the DPO rounds, or after the reward model's held-out evaluation). So a DPO lever costs its
DPO training and one evaluation, not a whole seed.
A fresh lever (a setting that decides the SFT, such as ``n_sft``) copies nothing: it runs every stage
into ``OUT/levers/<lever>/seed<k>`` itself, so it needs no finished seed, and levers can build on it.

    .venv/bin/python benchmarks/quality_levers.py run --out quality_first --levers dpo_lr5e-5 --seeds 0 1
    .venv/bin/python benchmarks/quality_levers.py table --out quality_out
    (the first command needs seeds of ``quality.py --sizes first`` in quality_first: every lever changes those sizes)

``table`` (also part of ``quality.py``'s report) compares each lever with its seed: DPO EX against the
seed's SFT and DPO, RM held-out accuracy against the seed's RM.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfkit.prefs.job import default_journal

# The stages each setting decides, earliest first (in the run order of lfkit.pipeline.full.stage_rank). A lever
# with a setting that decides the corpus and the SFT is a fresh run (Lever.fresh): it copies nothing.
DECIDES: dict[str, tuple[str, ...]] = {
    "n_train": ("corpus",),
    "n_sft": ("corpus",),
    "sft_sample": ("corpus",),
    "round_questions": ("round1/sample",),
    "questions_per_round": ("round1/sample",),
    "chosen": ("round1/sample",),
    "reject_kinds": ("round1/sample",),
    "pairs_per_question": ("round1/sample",),
    "pairing": ("round1/sample",),
    "dpo_lr": ("round1/dpo",),
    "dpo_epochs": ("round1/dpo",),
    "pref_beta": ("round1/dpo",),
    "pref_loss": ("round1/dpo",),
    "pref_ftx": ("round1/dpo",),
    "tree_questions": ("trees",),
    "rm_steps": ("rm",),
    "rm_lr": ("rm",),
    "rm_start": ("rm",),
    "rm_pairs_per_question": ("rm_data",),
    "rm_test_questions": ("rm_test",),
    "bon_temperature": ("rm_test", "bon/sample"),  # the held-out pairs are sampled at best-of-N's temperature
    "bon_n": ("bon/sample",),
    "rounds": ("round",),  # more rounds than the seed: the new ones start after its last round stage (cut_at)
}
# Stages that read only the best policy and their own sizes (no lever setting): kept when a lever leaves the
# policy as it was (no round stage decided), so an RM lever scores the seed's own held-out pairs and candidates.
POLICY_ONLY = ("trees", "rm_test", "bon/sample", "grpo", "eval_grpo")
# Settings that change how a journalled stage samples (its journal header's settings), by stage: the copy's
# journal of that stage is deleted, since it would refuse the new setting. Pairing settings are not here: their
# stages re-pair the journalled samples.
RESAMPLES: dict[str, tuple[str, ...]] = {
    "questions_per_round": ("round1/sample",),  # an edited questions file: the journal refuses it (its sha256)
    "round_questions": ("round1/sample",),
    "bon_temperature": ("rm_test",),
    "rm_test_questions": ("rm_test",),  # the journal's header holds its question count (max_samples)
}
TEXT_SUFFIXES = {".json", ".jsonl", ".yaml", ".yml", ".md", ".html", ".txt", ".bak"}


# The RM setting that met the 65% goal on both seeds (lever rm_pairs4_policy): from the policy, 4 pairs per round
# question, lr 1e-3, 60 steps; levers that put another policy through the RM reuse it.
RM_PAIRS4_POLICY: dict[str, Any] = {"rm_pairs_per_question": 4, "rm_start": "policy", "rm_lr": 1e-3, "rm_steps": 60}


@dataclass(frozen=True)
class Lever:
    """Settings changed against the seed (``FullConfig`` fields), where the run stops (``FULL_STOPS``; None:
    after best-of-N), the finished lever it builds on (``on``: its run is copied and its settings kept;
    None: the seed's) and the seed's sizes its settings change (``quality.SIZES``; every lever so far changes
    the first seeds')."""

    name: str
    about: str
    settings: dict[str, Any] = field(default_factory=dict)
    stop_after: str | None = "rounds"
    on: str | None = None
    sizes: str = "first"

    @property
    def fresh(self) -> bool:
        """A setting decides the corpus and the SFT: the lever runs every stage itself and needs no finished seed."""
        return bool(fresh_settings(lever_settings(self)))


LEVERS: dict[str, Lever] = {
    lv.name: lv
    for lv in (
        Lever("dpo_lr5e-5", "DPO lr 5e-5 (seed: 2e-4), same pairs", {"dpo_lr": 5e-5}),
        Lever("dpo_lr1e-4", "DPO lr 1e-4 (seed: 2e-4; lever dpo_lr5e-5: 5e-5), same pairs", {"dpo_lr": 1e-4}),
        Lever("dpo_lr5e-5_beta0.3", "DPO lr 5e-5, pref_beta 0.3", {"dpo_lr": 5e-5, "pref_beta": 0.3}),
        Lever(
            "same_where",
            "DPO pairs whose rejected keeps the chosen's WHERE conditions where one exists (seed: the closest reject)",
            {"pairing": "hardest_same_where"},
        ),
        Lever(
            "same_where_lr5e-5",
            "lever same_where's pairs at DPO lr 5e-5 (seed: 2e-4; lever dpo_lr5e-5: the seed's pairs)",
            {"pairing": "hardest_same_where", "dpo_lr": 5e-5},
        ),
        Lever(
            "wrong_rejects_lr5e-5",
            "only wrong-result rejects (seed: errors too), DPO lr 5e-5 (lever dpo_lr5e-5: both kinds)",
            {"reject_kinds": "wrong", "dpo_lr": 5e-5},
        ),
        Lever(
            "simpo_lr5e-5",
            "SimPO (length-normalised, no reference model; seed: DPO), beta 2.0, DPO lr 5e-5, same pairs",
            {"pref_loss": "simpo", "pref_beta": 2.0, "dpo_lr": 5e-5},
        ),
        Lever(
            "simpo_same_where",
            "SimPO (beta 2.0) on lever same_where's pairs at the seed's lr 2e-4: no length or WHERE skew to learn",
            {"pref_loss": "simpo", "pref_beta": 2.0, "pairing": "hardest_same_where"},
        ),
        Lever(
            "unseen320",
            "SFT on 320 train rows (seed: 400), the round's 64 questions from the 80 it left out, DPO lr 5e-5",
            {"n_sft": 320, "round_questions": "unseen", "dpo_lr": 5e-5},
        ),
        Lever(
            "unseen320_lr2e-4",
            "lever unseen320 (SFT on 320 rows, round on the 80 left out) at DPO lr 2e-4",
            {"dpo_lr": 2e-4},
            on="unseen320",
        ),
        Lever(
            "unseen320_lr5e-4",
            "lever unseen320 (SFT on 320 rows, round on the 80 left out) at DPO lr 5e-4",
            {"dpo_lr": 5e-4},
            on="unseen320",
        ),
        Lever(
            "unseen464",
            "a corpus of 464 train questions (seed: 400), SFT on 400 of them, the round's 64 questions the 64 it "
            "left out, DPO lr 5e-5",
            {"n_train": 464, "n_sft": 400, "round_questions": "unseen", "dpo_lr": 5e-5},
        ),
        Lever(
            "unseen464_lr2e-4",
            "lever unseen464 (SFT on 400 of 464 rows, round on the 64 left out) at DPO lr 2e-4",
            {"dpo_lr": 2e-4},
            on="unseen464",
        ),
        Lever(
            "unseen464_lr1e-4",
            "lever unseen464 (SFT on 400 of 464 rows, round on the 64 left out) at DPO lr 1e-4",
            {"dpo_lr": 1e-4},
            on="unseen464",
        ),
        Lever(
            "unseen528",
            "a corpus of 528 train questions (seed: 400), SFT on 400 of them, the round's 128 questions (seed: 64) "
            "the 128 it left out, DPO lr 1e-4",
            {"n_train": 528, "n_sft": 400, "round_questions": "unseen", "questions_per_round": 128, "dpo_lr": 1e-4},
        ),
        Lever(
            "unseen528_lr2e-4",
            "lever unseen528 (SFT on 400 of 528 rows, round on the 128 left out) at DPO lr 2e-4",
            {"dpo_lr": 2e-4},
            on="unseen528",
        ),
        Lever(
            "unseen528_lr2e-4_ftx0",
            "lever unseen528_lr2e-4 without the SFT term on the chosen (pref_ftx 0; seed: 1.0)",
            {"pref_ftx": 0.0},
            on="unseen528_lr2e-4",
        ),
        Lever(
            "unseen528_by_template",
            "lever unseen528_lr2e-4 with the SFT's 400 rows drawn per gold-SQL template (sft_sample template), so "
            "the round's 128 questions hold 3-5 of every template (random draw: 0-8)",
            {
                "n_train": 528,
                "n_sft": 400,
                "sft_sample": "template",
                "round_questions": "unseen",
                "questions_per_round": 128,
                "dpo_lr": 2e-4,
            },
        ),
        Lever(
            "unseen528_by_template_rm",
            "lever unseen528_by_template's DPO policy through the RM (from that policy, on 4 pairs per round question, "
            "lr 1e-3, 60 steps) and best-of-8",
            RM_PAIRS4_POLICY,
            stop_after=None,
            on="unseen528_by_template",
        ),
        Lever(
            "unseen528_by_template_rm120",
            "lever unseen528_by_template_rm's RM on held-out pairs from all 120 dev questions (seed: 64)",
            {"rm_test_questions": 120},
            stop_after=None,
            on="unseen528_by_template_rm",
        ),
        Lever(
            "unseen528_by_template_rm_t0.5",
            "lever unseen528_by_template_rm's RM on best-of-8 and held-out pairs sampled at T 0.5 (seed: 0.7)",
            {"bon_temperature": 0.5},
            stop_after=None,
            on="unseen528_by_template_rm",
        ),
        Lever(
            "unseen528_by_template_rm120_t0.5",
            "lever unseen528_by_template_rm_t0.5 (T 0.5) with held-out pairs from all 120 dev questions (seed: 64): "
            "make quality's sizes since 2026-12-08",
            {"rm_test_questions": 120},
            stop_after=None,
            on="unseen528_by_template_rm_t0.5",
        ),
        Lever(
            "unseen528_by_template_rm_steps120",
            "lever unseen528_by_template_rm's RM trained 120 steps, ~1.4 epochs of its pairs (seed: 60, ~0.7)",
            {"rm_steps": 120},
            stop_after=None,
            on="unseen528_by_template_rm",
        ),
        Lever(
            "same_where_epochs3",
            "lever same_where's pairs for 3 epochs (seed: 1) at the seed's lr 2e-4",
            {"dpo_epochs": 3.0},
            on="same_where",
        ),
        Lever(
            "questions192",
            "one DPO round on 192 train questions (seed: 64) x 8 samples, 1 pair each, DPO lr 1e-4",
            {"questions_per_round": 192, "dpo_lr": 1e-4},
        ),
        Lever(
            "dpo_epochs3",
            "DPO lr 5e-5 for 3 epochs (seed: 2e-4, 1 epoch), same pairs",
            {"dpo_lr": 5e-5, "dpo_epochs": 3.0},
        ),
        Lever("rm_lr1e-3", "RM lr 1e-3 (seed: 1e-4), 60 steps, same pairs", {"rm_lr": 1e-3, "rm_steps": 60}, "rm"),
        Lever(
            "pairs4_epochs3",
            "4 pairs per question, DPO lr 5e-5 for 3 epochs (seed: 1 pair, 2e-4, 1 epoch)",
            {"pairs_per_question": 4, "dpo_lr": 5e-5, "dpo_epochs": 3.0},
            stop_after="rounds",
        ),
        Lever(
            "rounds2",
            "a second DPO round on fresh samples from round 1's model (lever dpo_lr5e-5)",
            {"rounds": 2},
            on="dpo_lr5e-5",
        ),
        Lever(
            "rm_policy",
            "RM trained from the SFT policy (seed: the bare base), lr 1e-3, 60 steps, same pairs",
            {"rm_start": "policy", "rm_lr": 1e-3, "rm_steps": 60},
            stop_after=None,  # through best-of-N: the seed's candidates, scored by this RM
        ),
        Lever(
            "rm_pairs4_policy",
            "RM from the SFT policy on 4 pairs per round question re-paired from the round's samples (DPO keeps 1), "
            "lr 1e-3, 60 steps",
            RM_PAIRS4_POLICY,
            stop_after=None,
        ),
        Lever(
            "bon_t0.4",
            "best-of-8 and the held-out pairs at T 0.4 (seed: 0.7), the seed's RM (the execution vote needs none)",
            {"bon_temperature": 0.4},
            stop_after=None,
        ),
        Lever(
            "bon16",
            "best-of-16 (seed: 8), the RM of lever rm_pairs4_policy",
            {"bon_n": 16},
            stop_after=None,
            on="rm_pairs4_policy",
        ),
        Lever(
            "pairs4",
            "4 pairs per question for DPO (lr 5e-5) and the RM (lr 1e-3, 60 steps)",
            {"pairs_per_question": 4, "dpo_lr": 5e-5, "rm_lr": 1e-3, "rm_steps": 60},
            stop_after="rm",
        ),
        Lever(
            "pairs4_rm_policy",
            "4 pairs per question (lever pairs4), the RM from the SFT policy",
            {"rm_start": "policy"},
            stop_after=None,  # through best-of-N (pairs4 stopped before it: its candidates are sampled here)
            on="pairs4",
        ),
    )
}


def fresh_settings(settings: dict[str, Any]) -> list[str]:
    """Those of ``settings`` that decide the corpus and the SFT (a fresh run), sorted."""
    return sorted(k for k in settings if DECIDES[k][0] == "corpus")


def stage_order(root: Path) -> list[str]:
    """A run folder's cached stage names in the order the full demo runs them (``full.stage_rank``; not file times:
    a lever's copy keeps old stages beside redone ones)."""
    from lfkit.pipeline.full import stage_rank

    names = [p.relative_to(root / "stages").with_suffix("").as_posix() for p in (root / "stages").rglob("*.json")]
    return sorted(names, key=stage_rank)


def relocate(root: Path, old: Path, new: Path) -> int:
    """Rewrite ``old``'s absolute path to ``new``'s in every text file under ``root``; returns how many changed."""
    before, after = str(old.resolve()), str(new.resolve())
    changed = 0
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in TEXT_SUFFIXES:
            text = path.read_text(errors="surrogateescape")
            if before in text:
                path.write_text(text.replace(before, after), errors="surrogateescape")
                changed += 1
    return changed


def changes_policy(settings: dict[str, Any]) -> bool:
    """Whether ``settings`` decide a DPO round's stage (so the best policy may differ from the seed's)."""
    return any(DECIDES[k][0].startswith("round") for k in settings)


def cut_at(order: list[str], setting: str) -> int | None:
    """Where ``setting`` starts deciding stages in a run that ran ``order`` (None: it has not run there yet)."""
    if setting == "rounds":
        rounds = [k for k, stage in enumerate(order) if stage.startswith("round")]
        return rounds[-1] + 1 if rounds else None
    first = DECIDES[setting][0]
    return order.index(first) if first in order else None


def stopped_before(parent: Path, order: list[str], decided: set[str]) -> bool:
    """Whether ``parent`` is a finished run that stopped where ``run_full`` can stop (``FULL_STOPS``: after its
    rounds or its RM) before every stage in ``decided``: a lever that goes on from there, such as an RM lever on a
    lever that stopped after its rounds, redoes nothing of it."""
    from lfkit.pipeline.full import stage_rank

    # the "rm" stop ends after the RM's held-out evaluation (full.after_rounds), the "rounds" stop after a round stage
    if (
        not (parent / "report.json").is_file()
        or not order
        or not (order[-1].startswith("round") or order[-1] == "rm_eval")
    ):
        return False
    return all(stage_rank(s) > stage_rank(order[-1]) for s in decided if s != "round")


def derive(parent: Path, child: Path, settings: dict[str, Any]) -> list[str]:
    """``child`` = ``parent`` without the stages ``settings`` decide (and those after); returns the dropped
    stage names (:data:`POLICY_ONLY` stages stay when the policy does; :data:`RESAMPLES` journals go with their
    stage; none where the parent stopped before them: :func:`stopped_before`). A ``child`` already derived is
    left as it is (its run resumes). A whole copy (~630 MB for a quality seed, most of it the merged round-0
    model): nothing a lever's run writes can reach the seed."""
    if (child / "stages").is_dir():
        return []
    unknown = sorted(set(settings) - set(DECIDES))
    if unknown:
        raise SystemExit(f"not a lever setting: {unknown}; levers change {', '.join(DECIDES)}")
    fresh = fresh_settings(settings)
    if fresh:
        raise SystemExit(f"{fresh} decide the corpus and the SFT: a fresh lever's run, nothing to copy")
    order = stage_order(parent)
    decided = {stage for k in settings for stage in DECIDES[k]}
    firsts = [k for k in (cut_at(order, setting) for setting in settings) if k is not None]
    if firsts:
        keep = () if changes_policy(settings) else POLICY_ONLY
        dropped = [s for s in order[min(firsts) :] if s in decided or s not in keep]
    elif stopped_before(parent, order, decided):
        dropped = []  # the copy goes on from where the parent stopped
    else:
        raise SystemExit(f"{parent}: none of {sorted(decided)} ran there yet")
    partial = child.with_name(child.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(parent, partial, ignore=shutil.ignore_patterns("*.lfkit-lock"))
    for stage in {stage for k in settings for stage in RESAMPLES.get(k, ())} & set(dropped):
        pairs_file = json.loads((partial / "stages" / f"{stage}.json").read_text())["pairs_file"]
        default_journal(partial / pairs_file).unlink(missing_ok=True)
    for name in dropped:
        (partial / "stages" / f"{name}.json").unlink()
    for name in ("settings.json", "report.json", "report.md", "report.html"):  # the lever's run writes its own
        (partial / name).unlink(missing_ok=True)
    relocate(partial, parent, child)
    child.parent.mkdir(parents=True, exist_ok=True)
    partial.rename(child)
    return dropped


def lever_settings(lever: Lever) -> dict[str, Any]:
    """What a lever's run sets against its sizes (``quality.SIZES[lever.sizes]``): the settings of the levers it
    builds on, then its own."""
    return {**(lever_settings(LEVERS[lever.on]) if lever.on else {}), **lever.settings}


def run_lever(out: Path, seed: int, lever: Lever) -> dict[str, Any]:
    """Copy the seed's (or ``lever.on``'s) finished run without what the lever's own settings decide; resume it."""
    from quality import run_seed, seed_sizes

    parent = out / "levers" / lever.on / f"seed{seed}" if lever.on else out / f"seed{seed}"
    child = out / "levers" / lever.name / f"seed{seed}"
    if not lever.on and not lever.fresh and not (child / "stages").is_dir():
        # the copy's settings.json goes (the lever writes its own): nothing else would notice a seed at other sizes
        ran = seed_sizes(parent, seed)
        if ran != lever.sizes:
            raise SystemExit(
                f"lever {lever.name} changes the {lever.sizes!r} sizes; {parent} ran "
                f"{'other settings' if ran is None else repr(ran) + ' sizes'}: run "
                f"`benchmarks/quality.py --sizes {lever.sizes} --seeds {seed} --out DIR` and give this --out DIR"
            )
    dropped = [] if lever.fresh and not lever.on else derive(parent, child, lever.settings)
    if dropped:
        print(f"{child}: copied from {parent}, stages to redo: {', '.join(dropped)}", flush=True)
    return run_seed(seed, child, lever_settings(lever), stop_after=lever.stop_after, sizes=lever.sizes)


def lever_row(out: Path, seed: int, lever: Lever, base: dict[str, Any] | None) -> dict[str, Any] | None:
    """One lever on one seed against the seed itself (``base``: its ``quality.seed_summary``; None: the seed has
    not run here, its columns are empty): SFT / DPO EX and RM accuracy, from the report.json files."""
    from quality import seed_summary

    child = out / "levers" / lever.name / f"seed{seed}"
    if not (child / "report.json").is_file():
        return None
    mine = seed_summary(child)

    def dpo(s: dict[str, Any] | None) -> float | None:
        return s["ex"][s["best_round"]] if s and s["best_round"] else None

    def rm(s: dict[str, Any] | None) -> float | None:
        return 100 * s["rm_eval"]["accuracy"] if s and s["rm_eval"] else None

    def bon(s: dict[str, Any] | None, selector: str) -> float | None:
        return s["best_of_n"]["ex"].get(selector) if s and s.get("best_of_n") else None

    def my_bon(selector: str) -> float | None:  # a lever that stopped before best-of-N has none of its own
        return bon(mine, selector) if lever.stop_after is None else None

    pairs = sum(r["pairs"] for r in mine["rounds"])
    rounds = changes_policy(lever_settings(lever))  # else its DPO is the seed's
    return {
        "lever": lever.name,
        "seed": seed,
        "about": lever.about,
        "sft": mine["ex"].get("sft"),
        "dpo": dpo(mine) if rounds else None,
        "seed_dpo": dpo(base),
        "dpo_pairs": pairs if rounds else None,
        "rm": rm(mine) if lever.stop_after != "rounds" else None,
        "seed_rm": rm(base),
        "rm_pairs": mine["pairs"].get("pairs") if lever.stop_after != "rounds" else None,
        "rm_top1": my_bon("rm_top1"),
        "seed_rm_top1": bon(base, "rm_top1"),
        "vote": my_bon("vote"),
        "rm_vote": my_bon("rm_vote"),
        "rm_top1_exec": my_bon("rm_top1_exec"),
        "greedy": my_bon("greedy"),
        "changes": mine.get("changes"),
    }


def table(
    out: Path, seeds: dict[int, dict[str, Any] | None], sizes: str | None = "first"
) -> tuple[str, list[dict[str, Any]]]:
    """The markdown table of every lever that finished on one of ``seeds`` (seed -> its finished run's
    ``quality.seed_summary``, None where only fresh levers ran), and its rows; a lever's seed columns only where
    the seeds ran at the ``sizes`` it changes (``quality.SIZES``' name; None: unknown)."""
    rows = [
        r
        for lv in LEVERS.values()
        for k, base in seeds.items()
        if (r := lever_row(out, k, lv, base if lv.sizes == sizes else None))
    ]
    if not rows:
        return "", []
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    lines = [
        "| lever | seed | DPO pairs | SFT | DPO | seed's DPO | DPO - SFT | RM pairs | RM % | seed's RM % "
        "| RM top-1 | seed's RM top-1 | RM top-1 executable | RM-weighted vote | vote (greedy) of N |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        delta = None if r["dpo"] is None or r["sft"] is None else r["dpo"] - r["sft"]
        vote = "-" if r["vote"] is None else f"{fmt(r['vote'])} ({fmt(r['greedy'])})"
        lines.append(
            f"| {r['about']} | {r['seed']} | {r['dpo_pairs'] or '-'} | {fmt(r['sft'])} | {fmt(r['dpo'])} | "
            f"{fmt(r['seed_dpo'])} | {'-' if delta is None else f'{delta:+.1f}'} | {r['rm_pairs'] or '-'} | "
            f"{fmt(r['rm'])} | {fmt(r['seed_rm'])} | {fmt(r['rm_top1'])} | {fmt(r['seed_rm_top1'])} | "
            f"{fmt(r['rm_top1_exec'])} | {fmt(r['rm_vote'])} | {vote} |"
        )
    return "\n".join(lines), rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=["run", "table"])
    parser.add_argument("--out", type=Path, default=Path("quality_out"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--levers", default="", help=f"comma-separated, of: {', '.join(LEVERS)} (default: all)")
    args = parser.parse_args(argv)
    names = [n for n in args.levers.split(",") if n] or list(LEVERS)
    unknown = [n for n in names if n not in LEVERS]
    if unknown:
        parser.error(f"unknown lever(s) {unknown}; choose from {', '.join(LEVERS)}")
    if args.phase == "run":
        for name in names:
            for seed in args.seeds:
                run_lever(args.out, seed, LEVERS[name])
    from quality import seed_sizes, seed_summary, shared_sizes

    runs = {k: args.out / f"seed{k}" for k in args.seeds if (args.out / f"seed{k}" / "report.json").is_file()}
    summaries = {k: seed_summary(runs[k]) if k in runs else None for k in args.seeds}
    text, _ = table(args.out, summaries, shared_sizes(seed_sizes(d, k) for k, d in runs.items()))
    print(text or "no lever has finished yet")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))  # quality.py beside this file
    sys.exit(main())

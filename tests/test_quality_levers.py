"""`benchmarks/quality_levers.py`: a lever's run is a copy of a finished seed without the stages its settings
decide (and those after), every absolute path inside pointing at the copy, the seed itself untouched."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from lfkit.pipeline.full import FullError, full_config, run_full

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ORDER = ["corpus", "eval_base", "sft", "eval_sft", "round1/sample", "round1/dpo", "round1/eval", "trees", "rm"]


@pytest.fixture(scope="module")
def levers():
    sys.path.insert(0, str(BENCHMARKS))  # quality_levers imports quality from beside it
    try:
        import quality_levers

        yield quality_levers
    finally:
        sys.path.remove(str(BENCHMARKS))


def finished_seed(root: Path, order: list[str]) -> Path:
    """A seed folder whose stages ran in ``order`` (file times 10 s apart, the last first: the order comes from
    the stage names), with paths to itself inside."""
    for k, name in enumerate(order):
        f = root / "stages" / f"{name}.json"
        f.parent.mkdir(parents=True, exist_ok=True)
        pairs = "rounds/round1/pairs.jsonl" if name.startswith("round1/") else "data/p.jsonl"
        f.write_text(json.dumps({"predictions": f"{root.resolve()}/report/{name}.json", "pairs_file": pairs}))
        os.utime(f, (1_000_000 - 10 * k, 1_000_000 - 10 * k))
    (root / "settings.json").write_text(json.dumps({"seed": 0, "dpo_lr": None}))
    (root / "report.json").write_text(json.dumps({"stages": []}))  # the seed's, not the lever's
    (root / "rounds" / "round1").mkdir(parents=True)
    header = {"lfkit_journal": 1, "settings": {"model": f"{root.resolve()}/models/round0"}}
    (root / "rounds" / "round1" / "pairs.jsonl.candidates.jsonl").write_text(json.dumps(header) + "\n{}\n")
    (root / "data").mkdir()
    (root / "data" / "p.jsonl.candidates.jsonl").write_text(json.dumps(header) + "\n{}\n")
    (root / "models").mkdir()
    (root / "models" / "model.safetensors").write_bytes(b"\x00\xff" + str(root.resolve()).encode())
    (root / "saves").mkdir()
    (root / "saves" / ".sft.lfkit-lock").write_text("")
    return root


def test_derive_drops_the_stages_a_setting_decides_and_relocates(levers, tmp_path: Path) -> None:
    parent = finished_seed(tmp_path / "q" / "seed0", ORDER)
    before = {p: p.read_bytes() for p in parent.rglob("*") if p.is_file()}
    child = tmp_path / "q" / "levers" / "lr" / "seed0"
    dropped = levers.derive(parent, child, {"dpo_lr": 5e-5})
    assert dropped == ["round1/dpo", "round1/eval", "trees", "rm"]
    assert levers.stage_order(child) == ["corpus", "eval_base", "sft", "eval_sft", "round1/sample"]
    assert not {"settings.json", "report.json"} & {p.name for p in child.iterdir()}  # the lever's run writes its own
    assert not (child / "saves" / ".sft.lfkit-lock").exists()
    journal = (child / "rounds" / "round1" / "pairs.jsonl.candidates.jsonl").read_text()
    assert f"{child.resolve()}/models/round0" in journal and str(parent.resolve()) not in journal
    sft = json.loads((child / "stages" / "sft.json").read_text())
    assert sft["predictions"] == f"{child.resolve()}/report/sft.json"
    # binaries are copied byte for byte; the seed is untouched
    assert (child / "models" / "model.safetensors").read_bytes() == before[parent / "models" / "model.safetensors"]
    assert {p: p.read_bytes() for p in parent.rglob("*") if p.is_file()} == before
    # derived once: a second call resumes the copy as it is
    (child / "stages" / "round1" / "dpo.json").write_text("{}")
    assert levers.derive(parent, child, {"dpo_lr": 5e-5}) == []
    assert (child / "stages" / "round1" / "dpo.json").exists()


def test_derive_cuts_at_the_earliest_stage_of_several_settings(levers, tmp_path: Path) -> None:
    parent = finished_seed(tmp_path / "seed1", ORDER)
    dropped = levers.derive(parent, tmp_path / "lever" / "seed1", {"rm_steps": 60, "pairs_per_question": 4})
    assert dropped == ORDER[ORDER.index("round1/sample") :]


def test_an_rm_lever_keeps_the_stages_that_read_only_the_policy(levers, tmp_path: Path) -> None:
    order = [*ORDER, "rm_test", "rm_eval", "bon/sample", "bon/score", "bon/select", "grpo", "eval_grpo"]
    parent = finished_seed(tmp_path / "seed0", order)
    # the policy is the seed's: its trees, held-out pairs and best-of-N candidates stay; the RM's stages go
    dropped = levers.derive(parent, tmp_path / "rm" / "seed0", {"rm_start": "policy", "rm_lr": 1e-3})
    assert dropped == ["rm", "rm_eval", "bon/score", "bon/select"]
    # a lever that changes the policy redoes them all
    dropped = levers.derive(parent, tmp_path / "both" / "seed0", {"rm_start": "policy", "dpo_lr": 1e-4})
    assert dropped == order[order.index("round1/dpo") :]
    # a policy-only stage that a setting decides goes too
    dropped = levers.derive(parent, tmp_path / "trees" / "seed0", {"tree_questions": 32})
    assert dropped == ["trees", "rm", "rm_eval", "bon/score", "bon/select"]
    # and every policy-only stage a setting decides, not only its first
    dropped = levers.derive(parent, tmp_path / "cool" / "seed0", {"bon_temperature": 0.4})
    assert dropped == ["rm_test", "rm_eval", "bon/sample", "bon/score", "bon/select"]


def test_a_lever_on_an_rm_lever_redoes_only_its_own_stages(levers, tmp_path: Path) -> None:
    order = [*ORDER, "rm_test", "rm_eval", "bon/sample", "bon/score", "bon/select"]
    rm_lever = tmp_path / "rm" / "seed0"
    levers.derive(finished_seed(tmp_path / "seed0", order), rm_lever, {"rm_lr": 1e-3})
    for name in ("rm", "rm_eval", "bon/score", "bon/select"):  # the RM lever's run redoes these: newest files
        (rm_lever / "stages" / f"{name}.json").write_text("{}")
    assert levers.stage_order(rm_lever) == order
    dropped = levers.derive(rm_lever, tmp_path / "bon16" / "seed0", {"bon_n": 16})
    assert dropped == ["bon/sample", "bon/score", "bon/select"]  # not the kept rm_test and the RM after it
    (rm_lever / "stages" / "rm_grpo.json").write_text("{}")
    with pytest.raises(FullError, match="not a stage of lfkit demo --full: 'rm_grpo'"):
        levers.stage_order(rm_lever)


def test_a_lever_that_samples_otherwise_drops_that_stages_journal(levers, tmp_path: Path) -> None:
    parent = finished_seed(tmp_path / "seed0", [*ORDER, "rm_test", "rm_eval"])  # rm_test's pairs: data/p.jsonl
    # a sampling temperature the kept journal was not written with: the journal goes (it would refuse it)
    cool = tmp_path / "cool" / "seed0"
    assert levers.derive(parent, cool, {"bon_temperature": 0.4}) == ["rm_test", "rm_eval"]
    assert not (cool / "data" / "p.jsonl.candidates.jsonl").exists()
    assert (parent / "data" / "p.jsonl.candidates.jsonl").exists()
    # more questions per round: a new questions file, which the round's journal would refuse
    more = tmp_path / "more" / "seed0"
    assert levers.derive(parent, more, {"questions_per_round": 192})[0] == "round1/sample"
    assert not (more / "rounds" / "round1" / "pairs.jsonl.candidates.jsonl").exists()
    assert (parent / "rounds" / "round1" / "pairs.jsonl.candidates.jsonl").exists()
    assert (more / "data" / "p.jsonl.candidates.jsonl").exists()
    # more held-out questions: their journal's header holds the count, so it goes with the stage; the RM stays
    wider = tmp_path / "wider" / "seed0"
    assert levers.derive(parent, wider, {"rm_test_questions": 120}) == ["rm_test", "rm_eval"]
    assert not (wider / "data" / "p.jsonl.candidates.jsonl").exists()
    assert (wider / "stages" / "rm.json").exists()
    # an RM setting keeps the held-out pairs and their journal
    rm = tmp_path / "rm" / "seed0"
    assert levers.derive(parent, rm, {"rm_lr": 1e-3}) == ["rm", "rm_eval"]
    assert (rm / "data" / "p.jsonl.candidates.jsonl").exists()


def test_a_rounds_lever_keeps_the_seeds_rounds_and_drops_what_follows(levers, tmp_path: Path) -> None:
    order = [*ORDER, "rm_test", "bon/sample"]
    parent = finished_seed(tmp_path / "seed0", order)
    # round 2 runs after round 1 from its model: everything after the rounds goes, policy-only stages too
    dropped = levers.derive(parent, tmp_path / "r2" / "seed0", {"rounds": 2})
    assert dropped == ["trees", "rm", "rm_test", "bon/sample"]
    assert levers.changes_policy({"rounds": 2})
    # on a lever that stopped after its rounds there is nothing to drop: the copy resumes at round 2
    stopped = finished_seed(tmp_path / "lr" / "seed0", ORDER[: ORDER.index("trees")])
    assert levers.derive(stopped, tmp_path / "lr_r2" / "seed0", {"rounds": 2}) == []
    assert levers.stage_order(tmp_path / "lr_r2" / "seed0") == ORDER[: ORDER.index("trees")]
    with pytest.raises(SystemExit, match="ran there yet"):
        levers.derive(finished_seed(tmp_path / "sft" / "seed0", ORDER[:4]), tmp_path / "x" / "seed0", {"rounds": 2})
    # an RM lever on it goes on from its rounds; not on a run that never finished, nor one cut before its rounds
    rm = {"rm_start": "policy", "rm_pairs_per_question": 4}
    assert levers.derive(stopped, tmp_path / "lr_rm" / "seed0", rm) == []
    assert levers.stage_order(tmp_path / "lr_rm" / "seed0") == ORDER[: ORDER.index("trees")]
    (stopped / "report.json").unlink()
    with pytest.raises(SystemExit, match="ran there yet"):
        levers.derive(stopped, tmp_path / "lr_rm2" / "seed0", rm)
    with pytest.raises(SystemExit, match="ran there yet"):
        levers.derive(finished_seed(tmp_path / "sft2" / "seed0", ORDER[:4]), tmp_path / "y" / "seed0", rm)
    # a best-of-N lever on a lever that stopped after its RM (stop "rm": the held-out evaluation is its last stage)
    at_rm = finished_seed(tmp_path / "p4" / "seed0", [*ORDER, "rm_test", "rm_eval"])
    assert levers.derive(at_rm, tmp_path / "p4_bon" / "seed0", {"bon_n": 16}) == []
    with pytest.raises(SystemExit, match="ran there yet"):  # cut inside the RM's stages: not a place run_full stops
        levers.derive(finished_seed(tmp_path / "p5" / "seed0", ORDER), tmp_path / "p5_bon" / "seed0", {"bon_n": 16})


def test_derive_refuses_what_is_no_lever_or_has_not_run(levers, tmp_path: Path) -> None:
    parent = finished_seed(tmp_path / "seed0", ORDER[:4])
    with pytest.raises(SystemExit, match="not a lever setting: \\['tree_depth'\\]"):
        levers.derive(parent, tmp_path / "a" / "seed0", {"tree_depth": 3})
    with pytest.raises(SystemExit, match="\\['n_sft'\\] decide the corpus and the SFT"):
        levers.derive(parent, tmp_path / "a" / "seed0", {"n_sft": 100, "dpo_lr": 5e-5})
    with pytest.raises(SystemExit, match="round1/dpo"):
        levers.derive(parent, tmp_path / "b" / "seed0", {"dpo_lr": 5e-5})
    assert not (tmp_path / "b").exists()


def test_every_lever_changes_only_lever_settings_and_stops_where_run_full_can(levers, tmp_path: Path) -> None:
    import quality

    from lfkit.pipeline.full import FULL_STOPS

    for lever in levers.LEVERS.values():
        assert set(lever.settings) <= set(levers.DECIDES), lever.name
        assert lever.stop_after in (None, *FULL_STOPS)
        assert lever.sizes in quality.SIZES, lever.name
        quality.quality_config(0, tmp_path, levers.lever_settings(lever), lever.sizes)  # valid at the sizes it changes
    # a lever built on another keeps that one's settings under its own
    assert levers.lever_settings(levers.LEVERS["pairs4_rm_policy"]) == {
        **levers.LEVERS["pairs4"].settings,
        "rm_start": "policy",
    }


def test_a_fresh_lever_runs_every_stage_itself_without_a_seed(levers, monkeypatch, tmp_path: Path) -> None:
    import quality

    fresh, on_it = levers.LEVERS["unseen320"], levers.LEVERS["unseen320_lr2e-4"]
    assert fresh.fresh and on_it.fresh and not levers.LEVERS["dpo_lr5e-5"].fresh
    ran: list[tuple] = []
    monkeypatch.setattr(quality, "run_seed", lambda *args, **kwargs: ran.append((*args, kwargs)) or {})
    levers.run_lever(tmp_path, 0, fresh)  # no tmp_path/seed0 here: nothing is copied
    assert ran == [(0, tmp_path / "levers/unseen320/seed0", fresh.settings, {"stop_after": "rounds", "sizes": "first"})]
    assert not (tmp_path / "levers/unseen320/seed0").exists()
    cfg = quality.quality_config(0, tmp_path, levers.lever_settings(on_it), on_it.sizes)
    assert (cfg.demo.n_sft, cfg.round_questions, cfg.dpo_lr) == (320, "unseen", 2e-4)
    # a lever on it copies its run like any other
    finished_seed(tmp_path / "levers/unseen320/seed0", ORDER)
    levers.run_lever(tmp_path, 0, on_it)
    assert levers.stage_order(tmp_path / "levers/unseen320_lr2e-4/seed0") == ORDER[: ORDER.index("round1/dpo")]


def test_run_full_refuses_an_unknown_stop(tmp_path: Path) -> None:
    with pytest.raises(FullError, match="stop_after must be one of rounds, rm, got 'bon'"):
        run_full(full_config("tiny", out=tmp_path), stop_after="bon")


def test_quality_seeds_do_not_follow_the_full_demos_profile(levers, monkeypatch, tmp_path: Path) -> None:
    import quality

    from lfkit.pipeline import full

    before = quality.quality_config(0, tmp_path, sizes="first").settings()
    assert before["rounds"] == 1 and before["rm_start"] == "base" and before["rm_pairs_per_question"] is None
    mine = quality.quality_config(0, tmp_path).settings()
    # the profile takes a better lever: the measured seeds (and levers on them) keep what they ran with
    monkeypatch.setitem(full.FULL_PROFILES, "smollm2-135m", {**full.FULL_PROFILES["smollm2-135m"], "rm_steps": 99})
    assert full.full_config("smollm2-135m").rm_steps == 99
    assert quality.quality_config(0, tmp_path, sizes="first").settings() == before
    assert quality.quality_config(0, tmp_path).settings() == mine
    lever = quality.quality_config(1, tmp_path, {"rm_lr": 1e-3}, "first").settings()
    assert {k for k in before if lever[k] != before[k]} == {"seed", "rm_lr"}


def test_make_qualitys_sizes_are_the_lever_chain_that_met_the_goals(levers, tmp_path: Path) -> None:
    import quality

    chain = levers.LEVERS["unseen528_by_template_rm120_t0.5"]
    assert chain.sizes == "first" and chain.stop_after is None
    assert {**quality.FIRST_SEEDS, **levers.lever_settings(chain)} == quality.QUALITY
    # so a finished run of that lever is a finished make-quality seed: what it recorded is what a seed records
    ran = quality.quality_config(1, tmp_path, levers.lever_settings(chain), "first").settings()
    assert ran == quality.quality_config(1, tmp_path).settings()
    assert ran["bon_temperature"] == 0.5 and ran["rm_start"] == "policy" and ran["round_questions"] == "unseen"


def record_sizes(quality, root: Path, seed: int, sizes: str, **changed) -> None:
    settings = quality.quality_config(seed, root, changed or None, sizes).settings()
    (root / "settings.json").write_text(json.dumps({**settings, "backend": "vllm"}))  # the engine settled


def test_a_seed_knows_its_sizes_and_a_lever_refuses_a_seed_at_other_sizes(levers, monkeypatch, tmp_path: Path) -> None:
    import quality

    seed0 = finished_seed(tmp_path / "seed0", ORDER)
    assert quality.seed_sizes(seed0, 0) is None  # settings of neither
    record_sizes(quality, seed0, 0, "quality")
    assert quality.seed_sizes(seed0, 0) == "quality" and quality.seed_sizes(seed0, 1) is None  # the seed is a setting
    record_sizes(quality, seed0, 0, "quality", dpo_lr=5e-5)
    assert quality.seed_sizes(seed0, 0) is None  # a lever's run is at no named sizes
    record_sizes(quality, seed0, 0, "quality")
    ran: list[tuple] = []
    monkeypatch.setattr(quality, "run_seed", lambda *args, **kwargs: ran.append((*args, kwargs)) or {})
    lever = levers.LEVERS["dpo_lr5e-5"]
    with pytest.raises(SystemExit, match=r"lever dpo_lr5e-5 changes the 'first' sizes; .*seed0 ran 'quality' sizes"):
        levers.run_lever(tmp_path, 0, lever)
    assert not (tmp_path / "levers").exists() and not ran  # nothing copied, nothing run
    record_sizes(quality, seed0, 0, "first")
    assert quality.seed_sizes(seed0, 0) == "first"
    levers.run_lever(tmp_path, 0, lever)
    child = tmp_path / "levers/dpo_lr5e-5/seed0"
    assert ran == [(0, child, lever.settings, {"stop_after": "rounds", "sizes": "first"})]


def test_the_lever_table_compares_a_lever_only_with_seeds_at_its_sizes(levers, monkeypatch, tmp_path: Path) -> None:
    bases: dict[str, object] = {}

    def row(out, seed, lever, base):
        bases[lever.name] = base
        return None

    monkeypatch.setattr(levers, "lever_row", row)
    seed = {"ex": {"sft": 60.0}}
    levers.table(tmp_path, {0: seed}, "first")
    assert bases["dpo_lr5e-5"] is seed
    levers.table(tmp_path, {0: seed}, "quality")
    assert bases["dpo_lr5e-5"] is None and set(bases.values()) == {None}
    levers.table(tmp_path, {0: seed}, None)  # seeds at mixed or unknown sizes
    assert set(bases.values()) == {None}


def test_the_goals_hold_the_rms_top1_with_and_without_execution_first(levers) -> None:
    import quality

    seed = {
        "ex": {"sft": 55.0, "round1": 63.3},
        "best_round": "round1",
        "rm_eval": {"accuracy": 0.668, "n": 190},
        "best_of_n": {"ex": {"greedy": 63.3, "rm_top1": 60.0, "rm_top1_exec": 69.2, "vote": 67.5}},
    }
    got = quality.goals(seed)
    assert list(got) == list(quality.GOALS)
    assert got["dpo"]["met"] and got["rm"]["met"] and got["rm_top1_exec"]["met"]
    assert not got["rm_top1"]["met"] and got["rm_top1"]["margin"] == pytest.approx(-6.3)
    assert not got["vote"]["met"] and got["vote"]["margin"] == pytest.approx(-0.8)
    seed["rm_eval"]["n"] = 99  # under 100 held-out pairs: the RM goal is not measured
    assert quality.goals(seed)["rm"] == {"value": None, "target": 65.0, "margin": None, "met": False}


def test_the_report_counts_what_pairs_and_broken_answers_changed_in_their_where(levers, tmp_path: Path) -> None:
    import doctest

    import quality

    assert doctest.testmod(quality).failed == 0

    def row(chosen: str, rejected: str) -> str:
        return json.dumps({"chosen": f"```sql\n{chosen}\n```", "rejected": f"```sql\n{rejected}\n```"})

    two, one = "SELECT a FROM t WHERE y = 1 AND x = 2", "SELECT a FROM t WHERE y = 1"
    rows = [row(two, one), row(two, one), row(one, two), row(one, "SELECT b FROM t WHERE y = 2"), row(one, "SELECT (")]
    (tmp_path / "pairs.jsonl").write_text("\n".join(rows) + "\n")
    shapes = quality.pair_shapes(tmp_path / "pairs.jsonl")
    # the unparsable reject counts for length only; the same-WHERE pair (of equal length) for neither
    assert shapes == {"more_conditions": 2, "fewer_conditions": 1, "longer": 3, "shorter": 1, "pairs": 5}
    assert quality.shape_change(one, two) == "WHERE +1" and quality.shape_change(two, "SELECT (") == "unparsable"


def test_dpo_movement_reads_the_last_half_of_the_trainers_reward_log(levers, tmp_path: Path) -> None:
    import quality

    assert quality.dpo_movement(tmp_path) is None  # no trainer_state.json: a run trained elsewhere
    steps = [
        {"step": k, "loss": 0.7, "rewards/margins": m, "rewards/accuracies": a}
        for k, (m, a) in enumerate([(0.0, 0.0), (0.5, 1.0), (0.01, 0.5), (0.03, 1.0)], start=1)
    ]
    summary = {"step": 4, "train_loss": 0.7, "train_runtime": 9.0}  # the Trainer's closing entry: no rewards
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": [*steps, summary]}))
    moved = quality.dpo_movement(tmp_path)
    assert moved is not None and moved["steps"] == 4
    assert moved["margin"] == pytest.approx(0.02) and moved["accuracy"] == pytest.approx(0.75)  # steps 3-4 only
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": [summary]}))  # an SFT's log
    assert quality.dpo_movement(tmp_path) is None


def test_the_report_says_where_the_rms_top1_departs_from_greedy(levers, tmp_path: Path) -> None:
    import sqlite3

    import quality

    from lfkit.eval.formats import write_bird_predictions

    db = tmp_path / "corpus" / "dev_databases" / "t" / "t.sqlite"
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE t (a INTEGER, b INTEGER)")
        con.executemany("INSERT INTO t VALUES (?, ?)", [(1, 10), (2, 20)])
    right, wrong, broken = "SELECT a FROM t WHERE b = 10", "SELECT a FROM t WHERE b = 20", "SELECT nope FROM t"
    gold = [
        {"question_id": k, "db_id": "t", "question": f"q{k}", "SQL": right, "difficulty": "simple"} for k in range(3)
    ]
    (tmp_path / "corpus" / "dev.json").write_text(json.dumps(gold))

    def cand(sql: str) -> dict[str, str]:
        return {"sql": sql, "label": {right: "correct", wrong: "wrong", broken: "error"}[sql]}

    # q0: greedy right, the RM picks a failing one; q1: greedy wrong, the RM picks right; q2: both right
    rows = [
        {"question_id": 0, "db_id": "t", "greedy": cand(right), "candidates": [cand(broken), cand(wrong)]},
        {"question_id": 1, "db_id": "t", "greedy": cand(wrong), "candidates": [cand(right), cand(wrong)]},
        {"question_id": 2, "db_id": "t", "greedy": cand(right), "candidates": [cand(right), cand(broken)]},
    ]
    scores = [[1.0, 3.0, 0.0], [0.0, 2.0, 1.0], [2.0, 2.0, -1.0]]
    bon = tmp_path / "bon"
    bon.mkdir()
    (bon / "candidates.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (bon / "scores.jsonl").write_text(
        "".join(
            json.dumps({"question_id": k, "greedy_score": s[0], "scores": s[1:]}) + "\n" for k, s in enumerate(scores)
        )
    )
    picks = {"greedy": [right, wrong, right], "rm_top1": [broken, right, right]}
    strategies = {}
    for name, sqls in picks.items():
        path = bon / name / "predict_dev.json"
        path.parent.mkdir()
        write_bird_predictions(path, {k: (sql, "t") for k, sql in enumerate(sqls)})
        strategies[name] = {"predictions": f"bon/{name}/predict_dev.json", "errors": sqls.count(broken)}
    got = quality.rm_picks(tmp_path, {"best_of_n": {"strategies": strategies}})
    assert got == {
        "greedy_only": 1,
        "rm_only": 1,
        "rm_top1_errors": 1,
        "greedy_errors": 0,
        "mean_score": {"correct": 1.75, "error": 1.0, "wrong": 0.333},  # rounded to 3 places
        "correct_above_others": 2,  # q0 (1.0 against 1.5) is the one where the correct candidate scores lower
        "mixed_questions": 3,
        "mixed_by_selector": {"greedy": 2, "rm_top1": 2},  # q0 greedy only, q1 the RM only, q2 both
        # distinct SQL once, at its first score: q1's second wrong (1.0) is the greedy's SQL (0.0)
        "candidate_pairs": {"error": [1, 2], "wrong": [2, 2]},
    }
    assert quality.rm_picks(tmp_path, {"best_of_n": {"strategies": {"greedy": strategies["greedy"]}}}) is None

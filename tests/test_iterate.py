"""`lfkit iterate`: bad input, the dry run's recipes (the same steps as a run), an empty round through the
run's shared engine, and (slow) a tiny 2-round run killed mid-run and resumed, its round table re-scored
from the prediction files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from prefs_canned import CannedBackend, gold_by_prompt

from lfkit.cli import main
from lfkit.data.bird import split_db_root
from lfkit.eval import score_predictions
from lfkit.io import read_rows
from lfkit.models.presets import read_preset
from lfkit.pipeline import engine
from lfkit.pipeline.iterate import IterateConfig, IterateError, classify_from, question_slice
from lfkit.pipeline.report_iterate import rescore_rounds
from lfkit.pipeline.results import ModelRef
from lfkit.pipeline.stages import StageError
from lfkit.recipes import validate_recipe

REPO = Path(__file__).resolve().parents[1]


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_bad_settings_and_from_are_named(tmp_path: Path, tiny_model: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["iterate", "--rounds", "0", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "--rounds must be >= 1, got 0" in result.output
    assert not (tmp_path / "o").exists()
    result = runner.invoke(main, ["iterate", "--from", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and f"--from {tmp_path / 'nope'}: no such folder" in result.output
    (tmp_path / "empty").mkdir()
    with pytest.raises(IterateError, match=r"neither a LoRA adapter folder .* nor a model folder"):
        classify_from(tmp_path / "empty")
    assert classify_from(tiny_model) == "model"
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    assert classify_from(tmp_path / "adapter") == "adapter"
    with pytest.raises(IterateError, match="reject kind 'right' is not one of"):
        IterateConfig(reject_kinds="wrong,right")
    with pytest.raises(IterateError, match="has no demo SFT profile: give --from"):
        IterateConfig(preset="qwen3-coder-30b-a3b")


def test_question_slices_are_fresh_every_round() -> None:
    pool = [{"question_id": i} for i in range(30)]
    seen: set[int] = set()
    for k in (1, 2, 3):
        ids = {r["question_id"] for r in question_slice(pool, k, 10, seed=3)}
        assert len(ids) == 10 and not ids & seen
        seen |= ids
    with pytest.raises(IterateError, match=r"round 4 needs 10 fresh train questions .* has 30"):
        question_slice(pool, 4, 10, seed=3)


def test_unseen_rounds_never_sample_a_question_the_sft_trained_on(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--round-questions unseen: round 1's questions (the real corpus stage's pool and SFT rows, sampled through
    the run's engine) avoid every SFT question, where the default draws some; a pool too small is refused first."""
    from lfkit.models.presets import load_preset
    from lfkit.pipeline.full import FullConfig, FullError
    from lfkit.pipeline.iterate import round_steps, rounds_context
    from lfkit.pipeline.layout import RunLayout
    from lfkit.pipeline.steps import stage_corpus
    from lfkit.sql import extract_sql
    from lfkit.sql.shape import skeleton

    class Canned:
        """The run's shared engine: every candidate is the question's gold SQL (no pairs: the questions matter)."""

        def __init__(self, gen: engine.Generation) -> None:
            pass

        def backend_for(self, model: ModelRef) -> CannedBackend:
            gold = gold_by_prompt(layout.pool)  # the run's own pool, read when its sampling starts
            return CannedBackend(lambda user, j: f"```sql\n{gold[user]}\n```")

        def close(self) -> None:
            pass

    monkeypatch.setitem(engine.ENGINES, "hf", Canned)
    for kind, questions in (("all", 380), ("unseen", 368)):
        # tiny's demo SFT trains on 32 of the 400 train questions: 380 must hold some of them, 368 need not
        out = tmp_path / kind
        cfg = IterateConfig(
            preset="tiny", out=out, rounds=1, questions_per_round=questions, num_candidates=1, round_questions=kind
        )
        layout = RunLayout(out)
        run = rounds_context(cfg, cfg.preset, layout, load_preset("tiny"), corpus=None, backend="hf")
        with engine.pipeline_engine(run.gen) as gen:
            run.gen = gen
            stage_corpus(run, run.demo, pool=True)
            steps, _ = round_steps(cfg, run, 1, ModelRef(str(tiny_model)), backend="hf")
            next(s for s in steps if s.name == "round1/sample").run()
        trained = {r["question_id"] for r in read_rows(layout.sft_data)}
        pool = {r["question_id"] for r in read_rows(layout.pool)}
        drawn = {r["question_id"] for r in read_rows(out / "rounds/round1/questions.json")}
        assert len(trained) == 32 and len(pool) == 400 and len(drawn) == questions
        if kind == "unseen":
            assert drawn == pool - trained
        else:
            assert len(drawn & trained) >= 12

    # --sft-sample template (lfkit demo --full): the same corpus stage draws the SFT's 32 rows per gold template,
    # one or two of each of the corpus's templates, where the plain sample above missed some templates
    def templates(rows: list[dict]) -> Counter[str]:
        return Counter(skeleton(extract_sql(r["output"])) for r in rows)

    plain, every = templates(read_rows(layout.sft_data)), templates(read_rows(layout.pool))
    stage_corpus(run, replace(run.demo, sft_sample="template"), pool=False)
    by_template = templates(read_rows(layout.sft_data))
    assert sum(by_template.values()) == 32 and set(by_template) == set(every) and max(by_template.values()) <= 2
    assert len(plain) < len(every)
    with pytest.raises(IterateError, match=r"trains on 32 of 400 train questions, leaving 368; 2 round\(s\) x 200"):
        IterateConfig(preset="tiny", rounds=2, questions_per_round=200, round_questions="unseen")
    with pytest.raises(IterateError, match="demo SFT rows: an embedded model, no --from"):
        IterateConfig(preset="tiny", from_path=str(tiny_model), round_questions="unseen")
    with pytest.raises(FullError, match="trains on 400 of 400 train questions, leaving 0"):
        FullConfig(n_sft=400, rounds=1, questions_per_round=64, round_questions="unseen")
    wide = FullConfig(n_train=464, n_sft=400, rounds=1, questions_per_round=64, round_questions="unseen")
    assert wide.demo.n_train - wide.demo.n_sft == 64  # a larger corpus leaves room beside a 400-row SFT
    result = CliRunner().invoke(main, ["demo", "--full", "--round-questions", "unseen", "--n-sft", "400"])
    assert result.exit_code == 1 and "leaving 0" in result.output and "raise --n-train" in result.output


def test_dry_run_round_k_reads_round_k_minus_1_merged(tmp_path: Path) -> None:
    out = tmp_path / "dry"
    preset = "qwen3-coder-30b-a3b"
    result = CliRunner().invoke(main, ["iterate", "--dry-run", "--preset", preset, "--rounds", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert text.count("llamafactory-cli export") == 3 and text.count("llamafactory-cli train") == 3
    assert text.count("lfkit prefs rejects") == 3 and "--chosen on-policy" in text
    assert not (out / "stages").exists() and not (out / "settings.json").exists()  # nothing ran
    for k in (1, 2, 3):
        merge, dpo = read_yaml(out / f"recipes/round{k}/merge.yaml"), read_yaml(out / f"recipes/round{k}/dpo.yaml")
        # round k merges round k-1 (round 0 = the flow's SFT adapter on the hub model) ...
        if k == 1:
            assert merge["model_name_or_path"] == "Qwen/Qwen3-Coder-30B-A3B-Instruct"
            assert merge["adapter_name_or_path"] == "saves/qwen3-coder-30b-a3b/lora/sft"
        else:
            assert merge["model_name_or_path"] == str(out / f"models/round{k - 2}")
            assert merge["adapter_name_or_path"] == str((out / f"saves/round{k - 1}").resolve())
        assert merge["export_dir"] == str(out / f"models/round{k - 1}")
        # ... and trains a new adapter on it: start = reference = round k-1 (no adapter, no ref_model)
        assert dpo["model_name_or_path"] == str(out / f"models/round{k - 1}")
        assert not {"adapter_name_or_path", "ref_model", "ref_model_adapters", "create_new_adapter"} & set(dpo)
        assert dpo["stage"] == "dpo" and dpo["dataset"] == f"lfkit_iter_round{k}"
        # no --dpo-lr and no demo profile for this preset: the preset's own DPO values
        assert dpo["learning_rate"] == read_preset(preset).for_stage("dpo").learning_rate
        validate_recipe(dpo)
    # a given value wins over the preset's, in every round
    other = tmp_path / "dry2"
    args = ["iterate", "--dry-run", "--preset", preset, "--rounds", "2", "--dpo-lr", "3e-7", "--out", str(other)]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert [read_yaml(other / f"recipes/round{k}/dpo.yaml")["learning_rate"] for k in (1, 2)] == [3e-7, 3e-7]


def test_every_pref_loss_of_the_demo_is_an_iterate_choice_too(tmp_path: Path) -> None:
    from lfkit.pipeline.config import PREF_LOSSES

    for loss in PREF_LOSSES:
        out = tmp_path / loss
        args = ["iterate", "--dry-run", "--preset", "qwen3-coder-30b-a3b", "--rounds", "1", "--pref-loss", loss]
        result = CliRunner().invoke(main, [*args, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert read_yaml(out / "recipes/round1/dpo.yaml")["pref_loss"] == loss
        assert CliRunner().invoke(main, ["demo", "--pref-loss", loss, "--help"]).exit_code == 0


def test_dry_run_walks_the_steps_of_the_run(tmp_path: Path) -> None:
    """The dry run and the run walk one plan: every stage a run would cache is a step the dry run shows."""
    from lfkit.models.presets import load_preset
    from lfkit.pipeline.iterate import rounds_context, walk_rounds
    from lfkit.pipeline.layout import RunLayout

    cfg = IterateConfig(preset="qwen3-coder-30b-a3b", rounds=3, dry_run=True, out=tmp_path)
    run = rounds_context(
        cfg, cfg.preset, RunLayout(tmp_path), load_preset(cfg.preset, resolve=False), corpus=None, backend="hf"
    )
    walked: list[str] = []
    start = ModelRef("base-model", ("sft-adapter",))
    walk_rounds(cfg, run, start, None, lambda step: walked.append(step.name))
    expected = [f"round{k}/{step}" for k in (1, 2, 3) for step in ("merge", "sample", "dpo", "eval")]
    assert walked == expected
    # a plain start model has nothing to merge in round 1
    walked.clear()
    walk_rounds(cfg, run, ModelRef("plain-model"), None, lambda step: walked.append(step.name))
    assert walked[:3] == ["round1/sample", "round1/dpo", "round1/eval"] and walked[3] == "round2/merge"


def test_empty_round_is_recorded_and_the_loop_stops(
    tmp_path: Path, tiny_model: Path, demo_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = IterateConfig(
        preset="tiny",
        from_path=str(tiny_model),
        corpus=str(demo_corpus),
        out=tmp_path / "it",
        rounds=3,
        questions_per_round=3,
        num_candidates=2,
        reject_kinds="wrong,error",
    )
    pool_answers: dict[str, str] = {}
    asked: list[ModelRef] = []

    class Canned:
        """The run's shared engine: each train candidate is gold (correct: no reject), each dev answer prose."""

        def __init__(self, gen: engine.Generation) -> None:
            self.closed = False

        def backend_for(self, model: ModelRef) -> CannedBackend:
            asked.append(model)
            if not pool_answers and (cfg.out / "data" / "train_pool.json").exists():
                pool_answers.update(gold_by_prompt(cfg.out / "data" / "train_pool.json"))
            return CannedBackend(lambda user, j: f"```sql\n{pool_answers[user]}\n```" if user in pool_answers else "no")

        def close(self) -> None:
            self.closed = True

    monkeypatch.setitem(engine.ENGINES, "hf", Canned)
    from lfkit.pipeline.iterate import run_iterate

    report = run_iterate(cfg)
    stages = sorted(p.relative_to(cfg.out / "stages").as_posix() for p in (cfg.out / "stages").rglob("*.json"))
    assert stages == ["data.json", "round0/eval.json", "round1/sample.json"]  # no DPO on nothing, no round 2
    assert [r["round"] for r in report["rounds"]] == [0, 1]
    empty = report["rounds"][1]
    assert empty["pairs"] == 0 and "every candidate was correct" in empty["empty"]
    assert empty["labels"]["correct"] == 6 and "round 1 is empty" in report["stopped"]
    assert report["rounds"][0]["ex"] == 0.0 and "(empty)" in (cfg.out / "report.md").read_text()
    # one engine served both stages: round 0's evaluation and round 1's sampling, each with its own model
    assert asked == [ModelRef(str(tiny_model.resolve())), ModelRef(str(tiny_model.resolve()))]


@pytest.mark.slow
def test_tiny_two_rounds_killed_and_resumed(tmp_path: Path, tiny_model: Path) -> None:
    out = tmp_path / "it"
    # round 0 = the tiny model folder itself (no SFT: keeps the test short); round 2 merges round 1
    args = ["iterate", "--preset", "tiny", "--from", str(tiny_model), "--rounds", "2", "--questions-per-round", "4"]
    args += ["--num-candidates", "2", "--n-dev", "8", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "lfkit.cli", *args]
    # kill -9 in the middle of round 1 (after its sampling, during DPO) ...
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    marker = out / "stages" / "round1" / "sample.json"
    deadline = time.time() + 600
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    assert marker.exists(), "the run never reached round 1"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "report.json").exists()
    sampled_at = marker.stat().st_mtime
    # ... the same command finishes the run from there
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert marker.stat().st_mtime == sampled_at  # a finished stage is never redone

    report = json.loads((out / "report.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [0, 1, 2]  # no round counted twice
    for k in (1, 2):
        pairs = read_rows(out / f"rounds/round{k}/pairs.jsonl")
        assert report["rounds"][k]["pairs"] == len(pairs) > 0 and {r["round"] for r in pairs} == {k}
        assert len({(r["question_id"], r["rejected"]) for r in pairs}) == len(pairs)
    q1 = {r["question_id"] for r in read_rows(out / "rounds/round1/questions.json")}
    q2 = {r["question_id"] for r in read_rows(out / "rounds/round2/questions.json")}
    assert len(q1) == len(q2) == 4 and not q1 & q2  # fresh questions each round

    # round 2 starts from round 1 merged, which is also its reference
    dpo2 = read_yaml(out / "recipes/round2/dpo.yaml")
    merge2 = read_yaml(out / "recipes/round2/merge.yaml")
    assert dpo2["model_name_or_path"] == str(out / "models/round1") == merge2["export_dir"]
    assert merge2["model_name_or_path"] == str(tiny_model.resolve())
    assert read_yaml(out / "recipes/round1/dpo.yaml")["model_name_or_path"] == str(tiny_model.resolve())
    assert not (out / "recipes/round1/merge.yaml").exists()  # round 0 is a plain model: nothing to merge
    assert merge2["adapter_name_or_path"] == str((out / "saves/round1").resolve())
    assert not {"adapter_name_or_path", "ref_model", "ref_model_adapters"} & set(dpo2)
    assert report["rounds"][2]["reference"] == report["rounds"][2]["policy_start"] == str(out / "models/round1")
    assert (out / "models/round1/config.json").is_file() and (out / "ex_by_round.png").stat().st_size > 0

    # the round table re-scores from the BIRD prediction files alone
    corpus = out / "corpus"
    for row in report["rounds"]:
        path = out / row["predictions"]
        assert path == out / f"report/round{row['round']}/predict_dev.json"
        again = score_predictions(path, corpus / "dev.json", split_db_root(corpus, "dev"))
        assert again["ex"] == row["ex"] and again["n"] == row["n"] == 8
        assert again["by_difficulty"] == row["by_difficulty"]
    assert [r["ex"] for r in rescore_rounds(out)] == [r["ex"] for r in report["rounds"]]
    assert "dpo_last_loss" in report["rounds"][1] and report["rounds"][1]["dpo_steps"] >= 1

    # resuming with other settings is refused, naming the setting
    with pytest.raises(StageError, match="questions_per_round 4 -> 5"):
        from lfkit.pipeline.iterate import run_iterate

        run_iterate(
            IterateConfig(
                preset="tiny",
                from_path=str(tiny_model),
                rounds=2,
                questions_per_round=5,
                num_candidates=2,
                n_dev=8,
                out=out,
            )
        )


def test_demo_dpo_options_are_checked_and_decide_resuming(tmp_path: Path) -> None:
    from lfkit.errors import LfkitError
    from lfkit.pipeline.config import demo_config, demo_settings

    cfg = demo_config("tiny", out=tmp_path, chosen="on-policy", reject_kinds=" wrong, no_sql ", pref_loss="orpo")
    assert cfg.reject_kinds == "wrong,no_sql" and cfg.pref_ftx == 0.0
    assert demo_settings(cfg)["chosen"] == "on-policy" != demo_settings(demo_config("tiny", out=tmp_path))["chosen"]
    with pytest.raises(LfkitError, match="reject kind 'correct' is not one of wrong, error, timeout, no_sql"):
        demo_config("tiny", out=tmp_path, reject_kinds="wrong,correct")
    with pytest.raises(LfkitError, match="--pref-loss must be one of"):
        demo_config("tiny", out=tmp_path, pref_loss="kto")
    with pytest.raises(LfkitError, match="--chosen must be one of gold, on-policy"):
        demo_config("tiny", out=tmp_path, chosen="model")

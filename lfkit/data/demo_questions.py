"""Questions with gold SQL for the Lahman demo corpus, from the templates of ``demo_corpus.yaml``.

A template (:class:`~lfkit.data.demo_spec.QuestionTemplate`) names a *slot kind*; the slot
kind is a function in :data:`SLOT_KINDS` that draws one set of values (a season, a team, a
player, a threshold ``n``) from the train or the dev pool. The values fill the template's
phrasing and evidence as text and its SQL as literals (see :func:`render`).

Dev generalises rather than recalls: dev draws held-out seasons (:func:`is_dev_season`) and
players (:func:`is_dev_player`) and uses a held-out phrasing half of the time.
"""

from __future__ import annotations

import os
import random
import sqlite3
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfkit.data.demo_spec import DIFFICULTIES, TEMPLATES, QuestionTemplate
from lfkit.errors import LfkitError

DEMO_DB_ID = "lahman"
FIRST_SEASON, LAST_SEASON = 1960, 2023
# How often each difficulty is drawn (BIRD dev is roughly 60/30/10; the demo wants more hard cases).
DIFFICULTY_WEIGHTS = {"simple": 0.4, "moderate": 0.35, "challenging": 0.25}

LEAGUE_NAMES = {"AL": "American League", "NL": "National League"}
HANDS = {"L": "left-handed", "R": "right-handed", "B": "switch"}
HANDS_ADVERB = {"L": "left-handed", "R": "right-handed", "B": "from both sides"}
# Readable names for Lahman's country codes; the evidence then maps them (as BIRD does).
COUNTRY_NAMES = {"D.R.": "the Dominican Republic", "P.R.": "Puerto Rico", "CAN": "Canada", "USA": "the USA"}


class QuestionGenerationError(LfkitError):
    """The templates cannot give the questions asked for (unknown slot kind, value pools used up)."""


def is_dev_season(year: int) -> bool:
    """Seasons held out for dev: one in seven (1962, 1969, ..., 2018)."""
    return year % 7 == 3


def is_dev_player(player_id: str) -> bool:
    """Players held out for dev: a stable fifth of them, by CRC32 of the Lahman playerID."""
    return zlib.crc32(player_id.encode()) % 5 == 0


def _lit(value: Any) -> str:
    """A SQL literal for a value taken from the database (strings quoted, quotes doubled)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


# --------------------------------------------------------------------------- value pools


@dataclass
class SlotPools:
    """Slot values read once from the database, split into train (``False``) / dev (``True``) pools.

    Seasons run from :data:`FIRST_SEASON` to :data:`LAST_SEASON`; team seasons need an
    attendance; players have a unique full name (so a name identifies one player) and a
    season with 400+ at bats or 10+ pitching wins; countries are the non-USA birth countries
    of 40+ players born since 1940.
    """

    team_seasons: dict[bool, list[dict[str, Any]]] = field(default_factory=dict)
    seasons: dict[bool, list[int]] = field(default_factory=dict)
    players: dict[bool, list[dict[str, Any]]] = field(default_factory=dict)
    player_seasons: dict[bool, list[dict[str, Any]]] = field(default_factory=dict)
    pitcher_seasons: dict[bool, list[dict[str, Any]]] = field(default_factory=dict)
    countries: list[tuple[str, str]] = field(default_factory=list)
    birth_years: dict[bool, list[int]] = field(default_factory=dict)

    @classmethod
    def load(cls, db_path: Path) -> SlotPools:
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


# --------------------------------------------------------------------------- slot kinds


@dataclass
class SlotContext:
    """What a slot kind draws from: the pools, which split, the random source and the database."""

    pools: SlotPools
    dev: bool
    rng: random.Random
    conn: sqlite3.Connection


SlotKind = Callable[[SlotContext], dict[str, Any]]


def _season(c: SlotContext) -> dict[str, Any]:
    return {"year": c.rng.choice(c.pools.seasons[c.dev])}


def _team_season(c: SlotContext) -> dict[str, Any]:
    ts = c.rng.choice(c.pools.team_seasons[c.dev])
    return {"year": ts["yearID"], "team": ts["name"], "_team_id": ts["teamID"]}


def _team_season_so(c: SlotContext) -> dict[str, Any]:
    """A team season and ``n``: 10 below the team's 4th-best strikeout total, rounded down to tens."""
    slots = _team_season(c)
    values = [
        r[0]
        for r in c.conn.execute(
            "SELECT SO FROM Pitching WHERE yearID = ? AND teamID = ? ORDER BY SO DESC LIMIT 4",
            (slots["year"], slots["_team_id"]),
        )
    ]
    slots["n"] = max(0, values[-1] // 10 * 10 - 10) if values else 100
    return slots


def _league_season(c: SlotContext) -> dict[str, Any]:
    ts = c.rng.choice(c.pools.team_seasons[c.dev])
    return {"year": ts["yearID"], "lg": ts["lgID"]}


def _league_season_wins(c: SlotContext) -> dict[str, Any]:
    """A league season and ``n``: the win total of its 2nd- to 5th-best team."""
    slots = _league_season(c)
    wins = [
        r[0]
        for r in c.conn.execute(
            "SELECT W FROM Teams WHERE yearID = ? AND lgID = ? ORDER BY W DESC", (slots["year"], slots["lg"])
        )
    ]
    slots["n"] = wins[min(len(wins) - 1, c.rng.randint(1, 4))]
    return slots


def _two_teams(c: SlotContext) -> dict[str, Any]:
    """Two teams of one season, ``team`` the one with more wins."""
    year = c.rng.choice(c.pools.seasons[c.dev])
    teams = sorted((t for t in c.pools.team_seasons[c.dev] if t["yearID"] == year), key=lambda t: t["teamID"])
    a, b = c.rng.sample(teams, 2)
    if a["W"] < b["W"]:
        a, b = b, a
    return {"year": year, "team": a["name"], "team2": b["name"]}


def _season_hr(c: SlotContext) -> dict[str, Any]:
    """A season and ``n``: the home run total of one of its 3rd- to 6th-best batters."""
    year = c.rng.choice(c.pools.seasons[c.dev])
    hr = [r[0] for r in c.conn.execute("SELECT HR FROM Batting WHERE yearID = ? ORDER BY HR DESC LIMIT 6", (year,))]
    return {"year": year, "n": hr[c.rng.randint(2, len(hr) - 1)] if len(hr) > 2 else 1}


def _debut_hand(c: SlotContext) -> dict[str, Any]:
    return {"year": c.rng.choice(c.pools.seasons[c.dev]), "bats": c.rng.choice(("L", "R", "B"))}


def _birth_country(c: SlotContext) -> dict[str, Any]:
    code, _ = c.rng.choice(c.pools.countries)
    return {"year": c.rng.choice(c.pools.birth_years[c.dev]), "code": code}


def _player(c: SlotContext) -> dict[str, Any]:
    p = c.rng.choice(c.pools.players[c.dev])
    return {"first": p["nameFirst"], "last": p["nameLast"]}


def _name_season(p: dict[str, Any]) -> dict[str, Any]:
    return {"first": p["nameFirst"], "last": p["nameLast"], "year": p["yearID"]}


# Slot kind name (a template's ``slots``) -> the function that draws its values. Values whose
# name starts with "_" help a kind build on another and never reach a template.
SLOT_KINDS: dict[str, SlotKind] = {
    "season": _season,
    "season_debuts": _season,
    "team_season": _team_season,
    "team_season_so": _team_season_so,
    "league_season": _league_season,
    "league_season_wins": _league_season_wins,
    "two_teams": _two_teams,
    "season_hr": _season_hr,
    "debut_hand": _debut_hand,
    "birth_country": _birth_country,
    "player": _player,
    "player_season": lambda c: _name_season(c.rng.choice(c.pools.player_seasons[c.dev])),
    "pitcher_season": lambda c: _name_season(c.rng.choice(c.pools.pitcher_seasons[c.dev])),
}


def sample_slots(kind: str, context: SlotContext) -> dict[str, Any]:
    """Draw one set of values of slot kind ``kind`` (a key of :data:`SLOT_KINDS`)."""
    try:
        draw = SLOT_KINDS[kind]
    except KeyError:
        raise QuestionGenerationError(f"unknown slot kind {kind!r}; known: {', '.join(sorted(SLOT_KINDS))}") from None
    return {k: v for k, v in draw(context).items() if not k.startswith("_")}


# --------------------------------------------------------------------------- rendering

# Slot values that appear in SQL as quoted literals under "<name>_q" ({team} -> {team_q} = 'New York Yankees').
_QUOTED_AS_Q = ("team", "team2", "lg", "bats", "code")
# Readable text derived from slot values, by the slot it needs.
_TEXT_FORMS: dict[str, Callable[[dict[str, Any]], dict[str, str]]] = {
    "first": lambda s: {"name": f"{s['first']} {s['last']}"},
    "lg": lambda s: {"league": LEAGUE_NAMES.get(s["lg"], s["lg"])},
    "bats": lambda s: {"hand": HANDS[s["bats"]], "hand_adv": HANDS_ADVERB[s["bats"]]},
    "code": lambda s: {"country": COUNTRY_NAMES.get(s["code"], s["code"])},
}


def sql_values(slots: dict[str, Any]) -> dict[str, Any]:
    """The placeholders of ``sql`` / ``tie_sql``: ``year`` and ``n`` as numbers, the rest SQL literals.

    >>> sql_values({"year": 1927, "team": "New York Yankees", "first": "Babe", "last": "Ruth"})
    {'year': 1927, 'n': None, 'first': "'Babe'", 'last': "'Ruth'", 'team_q': "'New York Yankees'"}
    """
    vals: dict[str, Any] = {"year": slots.get("year"), "n": slots.get("n")}
    for key in ("first", "last"):
        if key in slots:
            vals[key] = _lit(slots[key])
    for key in _QUOTED_AS_Q:
        if key in slots:
            vals[f"{key}_q"] = _lit(slots[key])
    return vals


def text_values(slots: dict[str, Any]) -> dict[str, Any]:
    """The placeholders of phrasings and evidence: the values as text, their readable forms, the ``_q`` literals.

    >>> text_values({"year": 1962, "lg": "NL"})["league"]
    'National League'
    """
    text = {**slots, **{k: v for k, v in sql_values(slots).items() if k.endswith("_q")}}
    for key, form in _TEXT_FORMS.items():
        if key in slots:
            text.update(form(slots))
    return text


def render(template: QuestionTemplate, slots: dict[str, Any], phrasing: str) -> tuple[str, str, str]:
    """(question, evidence, sql) for one set of slot values; the question starts with a capital."""
    text = text_values(slots)
    question = phrasing.format(**text)
    question = question[0].upper() + question[1:]
    return question, template.evidence.format(**text), template.sql.format(**sql_values(slots))


# --------------------------------------------------------------------------- generation


def _rows_nonempty(rows: Sequence[Sequence[Any]]) -> bool:
    return bool(rows) and any(v is not None for v in rows[0])


def _difficulty_plan(n: int, rng: random.Random) -> list[str]:
    """``n`` difficulties in :data:`DIFFICULTY_WEIGHTS` proportions (rounding goes to simple), shuffled."""
    quotas = {d: round(n * w) for d, w in DIFFICULTY_WEIGHTS.items()}
    quotas["simple"] += n - sum(quotas.values())
    plan = [d for d in DIFFICULTIES for _ in range(quotas[d])]
    rng.shuffle(plan)
    return plan


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

    Each split gets fixed difficulty quotas in shuffled order; within a difficulty the
    templates take turns. A draw is kept when its question is new, its gold query (run
    through :func:`lfkit.sql.execute_sql`) returns a non-empty result and, for templates
    with ``tie_sql``, the two best values differ. Dev draws from the held-out pools and uses
    a held-out phrasing half of the time. Rows carry the BIRD fields plus ``template`` and
    ``held_out_phrasing``.
    """
    from lfkit.sql import execute_sql

    unknown = sorted({t.slots for t in templates} - SLOT_KINDS.keys())
    if unknown:
        raise QuestionGenerationError(f"unknown slot kind(s) {unknown}; known: {', '.join(sorted(SLOT_KINDS))}")
    db_path = Path(db_path)
    pools = SlotPools.load(db_path)
    rng = random.Random(seed)
    by_difficulty = {d: [t for t in templates if t.difficulty == d] for d in DIFFICULTIES}
    conn = sqlite3.connect(f"file:{db_path.resolve()}?mode=ro", uri=True)
    out: dict[str, list[dict[str, Any]]] = {}
    seen_questions: set[str] = set()
    done = 0
    try:
        for split, n in (("train", n_train), ("dev", n_dev)):
            dev = split == "dev"
            context = SlotContext(pools, dev, rng, conn)
            rows: list[dict[str, Any]] = []
            cursor: Counter[str] = Counter()
            for difficulty in _difficulty_plan(n, rng):
                family = by_difficulty[difficulty]
                for _attempt in range(200):
                    template = family[cursor[difficulty] % len(family)]
                    cursor[difficulty] += 1
                    held_out = dev and template.dev_phrasings and rng.random() < 0.5
                    phrasing = rng.choice(template.dev_phrasings if held_out else template.phrasings)
                    slots = sample_slots(template.slots, context)
                    question, evidence, sql = render(template, slots, phrasing)
                    if question in seen_questions:
                        continue
                    result = execute_sql(db_path, sql, timeout=10.0, max_rows=1000)
                    if not result.ok or not _rows_nonempty(result.rows):
                        continue
                    if template.tie_sql:
                        top = conn.execute(template.tie_sql.format(**sql_values(slots))).fetchall()
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
                    raise QuestionGenerationError(
                        f"could not generate another {difficulty} {split} question with a non-empty answer "
                        f"after {len(rows)}; ask for fewer questions"
                    )
            out[split] = rows
    finally:
        conn.close()
    return out

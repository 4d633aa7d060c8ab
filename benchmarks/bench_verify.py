"""Benchmark: verifying 8 sampled candidates per question, lfkit vs the per-pair loop.

Run:  .venv/bin/python benchmarks/bench_verify.py   (or `make bench`)

Both sides label the same (question, candidate) pairs on the full Lahman database
(``lfkit.data.demo.build_lahman_db(tables="all")``: 27 tables, Batting/Fielding/Appearances
have 115k-154k rows):

* baseline — what BIRD's ``evaluation.py`` does: for every pair open a connection, execute the
  candidate and re-execute the gold query, compare; one process. It uses lfkit's sandboxed
  connection so that timeouts and row caps are the same and the labels can be compared;
* lfkit — :class:`lfkit.sql.Verifier`: gold runs once per question, candidates that are equal
  after ``normalize_sql`` run once, the rest is spread over a worker pool (pool start-up and
  normalisation are included in its time).

The candidates imitate real samples: per question they are drawn from the gold spelling, the
same query re-spelled (case, line breaks, table aliases), wrong-but-running variants, errors,
slow-but-finishing variants (correlated subqueries, needless sorts), and on "trap" questions a join without its
condition that runs into the timeout. The script prints the mix, both times and the ratio,
and fails if the two label lists differ.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from lfkit.sql import Verifier, results_match
from lfkit.sql.execute import SandboxConnection
from lfkit.sql.pool import default_workers


@dataclass(frozen=True)
class Template:
    name: str
    params: tuple[dict, ...]
    gold: str
    same: tuple[str, ...]  # equivalent re-spellings (case, whitespace, aliases)
    wrong: tuple[str, ...]  # run, but answer something else
    error: tuple[str, ...]  # do not run
    slow: str  # finishes, but costs several times the gold query
    trap: str  # missing join condition: runs into the timeout


TEMPLATES = (
    Template(
        "career home-run leaders since a year",
        tuple({"y": y} for y in (1950, 1960, 1970, 1980, 1990, 2000)),
        "SELECT playerID, sum(HR) AS hr FROM Batting WHERE yearID >= {y} GROUP BY playerID ORDER BY hr DESC LIMIT 10",
        (
            "select playerID, sum(HR) as hr from Batting where yearID >= {y} group by playerID "
            "order by hr desc limit 10",
            "SELECT playerID, SUM(HR) AS hr\nFROM Batting\nWHERE yearID >= {y}\nGROUP BY playerID\nORDER BY hr DESC\n"
            "LIMIT 10;",
            "SELECT b.playerID, sum(b.HR) AS hr FROM Batting AS b WHERE b.yearID >= {y} GROUP BY b.playerID "
            "ORDER BY hr DESC LIMIT 10",
            "SELECT T1.playerID, SUM(T1.HR) AS hr FROM Batting T1 WHERE T1.yearID >= {y} GROUP BY T1.playerID "
            "ORDER BY hr DESC LIMIT 10",
        ),
        (
            "SELECT playerID, sum(HR) AS hr FROM Batting WHERE yearID > {y} GROUP BY playerID "
            "ORDER BY hr DESC LIMIT 10",
            "SELECT playerID, max(HR) AS hr FROM Batting WHERE yearID >= {y} GROUP BY playerID "
            "ORDER BY hr DESC LIMIT 10",
        ),
        (
            "SELECT playerID, sum(HomeRuns) FROM Batting WHERE yearID >= {y} GROUP BY playerID "
            "ORDER BY 2 DESC LIMIT 10",
            "SELECT playerID, sum(HR) FROM Batting WHERE year >= {y} GROUP BY playerID LIMIT 10",
        ),
        "SELECT DISTINCT b1.playerID, (SELECT sum(b2.HR) FROM Batting b2 WHERE b2.playerID = b1.playerID "
        "AND b2.yearID >= {y}) AS hr FROM Batting b1 WHERE b1.yearID >= {y} ORDER BY hr DESC LIMIT 10",
        "SELECT b.playerID, sum(b.HR) AS hr FROM Batting b, People p WHERE b.yearID >= {y} AND p.birthCountry = 'USA' "
        "GROUP BY b.playerID ORDER BY hr DESC LIMIT 10",
    ),
    Template(
        "players born in a country with more than 500 hits",
        tuple({"c": c} for c in ("D.R.", "Venezuela", "P.R.", "CAN", "Cuba", "Mexico")),
        "SELECT P.nameFirst, P.nameLast, sum(B.H) AS hits FROM People AS P JOIN Batting AS B "
        "ON P.playerID = B.playerID WHERE P.birthCountry = '{c}' GROUP BY P.playerID HAVING hits > 500 "
        "ORDER BY hits DESC",
        (
            "select P.nameFirst, P.nameLast, sum(B.H) as hits from People as P join Batting as B "
            "on P.playerID = B.playerID where P.birthCountry = '{c}' group by P.playerID having hits > 500 "
            "order by hits desc",
            "SELECT p.nameFirst, p.nameLast, SUM(b.H) AS hits\nFROM People p\n"
            "JOIN Batting b ON p.playerID = b.playerID\nWHERE p.birthCountry = '{c}'\nGROUP BY p.playerID\n"
            "HAVING hits > 500\nORDER BY hits DESC",
            "SELECT T1.nameFirst, T1.nameLast, sum(T2.H) AS hits FROM People AS T1 INNER JOIN Batting AS T2 "
            "ON T1.playerID = T2.playerID WHERE T1.birthCountry = '{c}' GROUP BY T1.playerID HAVING hits > 500 "
            "ORDER BY hits DESC",
        ),
        (
            "SELECT P.nameFirst, P.nameLast, sum(B.H) AS hits FROM People AS P JOIN Batting AS B "
            "ON P.playerID = B.playerID WHERE P.birthCountry = '{c}' GROUP BY P.playerID HAVING hits >= 500 "
            "ORDER BY hits DESC",
            "SELECT P.nameFirst, P.nameLast, max(B.H) AS hits FROM People AS P JOIN Batting AS B "
            "ON P.playerID = B.playerID WHERE P.birthCountry = '{c}' GROUP BY P.playerID ORDER BY hits DESC",
        ),
        (
            "SELECT P.firstName, P.lastName, sum(B.H) FROM People AS P JOIN Batting AS B ON P.playerID = B.playerID "
            "WHERE P.birthCountry = '{c}' GROUP BY P.playerID",
            "SELECT nameFirst, nameLast, sum(H) AS hits FROM People JOIN Batting USING (playerID) "
            "WHERE birthCountry = '{c}' GROUP BY playerID HAVING hits > 500 ORDER BY hits DESC LIMT 10",
        ),
        "SELECT P.nameFirst, P.nameLast, (SELECT sum(B.H) FROM Batting B WHERE B.playerID = P.playerID) AS hits "
        "FROM People AS P WHERE P.birthCountry = '{c}' AND (SELECT sum(B.H) FROM Batting B "
        "WHERE B.playerID = P.playerID) > 500 ORDER BY hits DESC",
        "SELECT P.nameFirst, P.nameLast, sum(B.H) AS hits FROM People AS P, Batting AS B "
        "WHERE P.birthCountry = '{c}' GROUP BY P.playerID HAVING hits > 500 ORDER BY hits DESC",
    ),
    Template(
        "most games at a fielding position",
        tuple({"pos": p} for p in ("SS", "2B", "3B", "C", "1B", "OF")),
        "SELECT playerID, sum(G) AS games FROM Fielding WHERE POS = '{pos}' GROUP BY playerID "
        "ORDER BY games DESC LIMIT 5",
        (
            "select playerID, sum(G) as games from Fielding where POS = '{pos}' group by playerID "
            "order by games desc limit 5",
            "SELECT f.playerID, sum(f.G) AS games FROM Fielding AS f WHERE f.POS = '{pos}' GROUP BY f.playerID "
            "ORDER BY games DESC LIMIT 5",
            "SELECT playerID,\n       SUM(G) AS games\nFROM Fielding\nWHERE POS = '{pos}'\nGROUP BY playerID\n"
            "ORDER BY games DESC\nLIMIT 5",
        ),
        (
            "SELECT playerID, sum(GS) AS games FROM Fielding WHERE POS = '{pos}' GROUP BY playerID "
            "ORDER BY games DESC LIMIT 5",
            "SELECT playerID, count(*) AS games FROM Fielding WHERE POS = '{pos}' GROUP BY playerID "
            "ORDER BY games DESC LIMIT 5",
        ),
        ("SELECT playerID, sum(G) FROM Fielding WHERE position = '{pos}' GROUP BY playerID LIMIT 5",),
        "SELECT DISTINCT f1.playerID, (SELECT sum(f2.G) FROM Fielding f2 WHERE f2.playerID = f1.playerID "
        "AND f2.POS = '{pos}') AS games FROM Fielding f1 WHERE f1.POS = '{pos}' ORDER BY games DESC LIMIT 5",
        "SELECT f.playerID, sum(f.G) AS games FROM Fielding f, Appearances a WHERE f.POS = '{pos}' "
        "GROUP BY f.playerID ORDER BY games DESC LIMIT 5",
    ),
    Template(
        "shortstop-heavy seasons per year",
        tuple(
            {"g": g, "y": y} for g, y in ((100, 1950), (120, 1940), (140, 1960), (80, 1970), (60, 1990), (150, 1900))
        ),
        "SELECT yearID, count(*) FROM Appearances WHERE G_ss > {g} AND yearID >= {y} GROUP BY yearID ORDER BY yearID",
        (
            "select yearID, count(*) from Appearances where G_ss > {g} and yearID >= {y} group by yearID "
            "order by yearID",
            "SELECT a.yearID, COUNT(*) FROM Appearances a WHERE a.G_ss > {g} AND a.yearID >= {y} GROUP BY a.yearID "
            "ORDER BY a.yearID",
        ),
        (
            "SELECT yearID, count(*) FROM Appearances WHERE G_ss >= {g} AND yearID >= {y} GROUP BY yearID "
            "ORDER BY yearID",
            "SELECT yearID, count(DISTINCT teamID) FROM Appearances WHERE G_ss > {g} AND yearID >= {y} "
            "GROUP BY yearID ORDER BY yearID",
        ),
        ("SELECT year, count(*) FROM Appearances WHERE G_ss > {g} GROUP BY year",),
        "SELECT yearID, count(*) FROM (SELECT * FROM Appearances ORDER BY playerID, teamID) "
        "WHERE G_ss > {g} AND yearID >= {y} GROUP BY yearID ORDER BY yearID",
        "SELECT a.yearID, count(*) FROM Appearances a, Fielding f WHERE a.G_ss > {g} AND a.yearID >= {y} "
        "GROUP BY a.yearID ORDER BY a.yearID",
    ),
    Template(
        "team fielding errors in a decade",
        tuple({"y": y} for y in (1950, 1960, 1970, 1980, 1990, 2000)),
        "SELECT teamID, sum(E) AS errors FROM Fielding WHERE yearID BETWEEN {y} AND {y} + 9 GROUP BY teamID "
        "ORDER BY errors DESC",
        (
            "select teamID, sum(E) as errors from Fielding where yearID between {y} and {y} + 9 group by teamID "
            "order by errors desc",
            "SELECT F.teamID, SUM(F.E) AS errors FROM Fielding AS F WHERE F.yearID BETWEEN {y} AND {y} + 9 "
            "GROUP BY F.teamID ORDER BY errors DESC",
        ),
        (
            "SELECT teamID, sum(E) AS errors FROM Fielding WHERE yearID BETWEEN {y} AND {y} + 10 GROUP BY teamID "
            "ORDER BY errors DESC",
            "SELECT teamID, avg(E) AS errors FROM Fielding WHERE yearID BETWEEN {y} AND {y} + 9 GROUP BY teamID "
            "ORDER BY errors DESC",
        ),
        ("SELECT team, sum(E) FROM Fielding WHERE yearID BETWEEN {y} AND {y} + 9 GROUP BY team",),
        "SELECT t.teamID, (SELECT sum(f.E) FROM Fielding f WHERE f.teamID = t.teamID AND f.yearID BETWEEN {y} "
        "AND {y} + 9) AS errors FROM (SELECT DISTINCT teamID FROM Fielding WHERE yearID BETWEEN {y} AND {y} + 9) t "
        "ORDER BY errors DESC",
        "SELECT f.teamID, sum(f.E) AS errors FROM Fielding f, People p WHERE f.yearID BETWEEN {y} AND {y} + 9 "
        "GROUP BY f.teamID ORDER BY errors DESC",
    ),
    Template(
        "league home-run rate by year",
        tuple({"y": y} for y in (1900, 1920, 1940, 1960, 1980, 2000)),
        "SELECT yearID, sum(HR) * 1.0 / sum(AB) FROM Batting WHERE yearID >= {y} GROUP BY yearID ORDER BY yearID",
        (
            "select yearID, sum(HR) * 1.0 / sum(AB) from Batting where yearID >= {y} group by yearID order by yearID",
            "SELECT B.yearID, SUM(B.HR) * 1.0 / SUM(B.AB) FROM Batting B WHERE B.yearID >= {y} GROUP BY B.yearID "
            "ORDER BY B.yearID",
        ),
        (
            "SELECT yearID, sum(HR) / sum(AB) FROM Batting WHERE yearID >= {y} GROUP BY yearID ORDER BY yearID",
            "SELECT yearID, avg(HR * 1.0 / AB) FROM Batting WHERE yearID >= {y} AND AB > 0 GROUP BY yearID "
            "ORDER BY yearID",
        ),
        ("SELECT yearID, sum(HR) / sum(AtBats) FROM Batting GROUP BY yearID",),
        "SELECT yearID, sum(HR) * 1.0 / sum(AB) FROM (SELECT * FROM Batting ORDER BY playerID, stint) "
        "WHERE yearID >= {y} GROUP BY yearID ORDER BY yearID",
        "SELECT b.yearID, sum(b.HR) * 1.0 / sum(b.AB) FROM Batting b, Teams t WHERE b.yearID >= {y} "
        "GROUP BY b.yearID ORDER BY b.yearID",
    ),
)

# Sampling profile: share of the 8 samples per kind. On a "trap" question the model keeps
# writing the join without a condition (timeouts cluster on a few hard questions in practice).
NORMAL = {"gold": 0.34, "same": 0.24, "wrong": 0.2, "error": 0.12, "slow": 0.1, "trap": 0.0}
TRAP = {"gold": 0.25, "same": 0.15, "wrong": 0.1, "error": 0.05, "slow": 0.05, "trap": 0.4}
TRAP_SHARE = 1 / 6


def make_pairs(samples: int, seed: int) -> tuple[list[tuple[int, str, str]], list[str]]:
    """``[(question index, gold, candidate)]`` and the kind of each candidate."""
    rng = random.Random(seed)
    pairs, kinds = [], []
    question = 0
    for template in TEMPLATES:
        for params in template.params:
            gold = template.gold.format(**params)
            profile = TRAP if rng.random() < TRAP_SHARE else NORMAL
            pools = {
                "gold": (template.gold,),
                "same": template.same,
                "wrong": template.wrong,
                "error": template.error,
                "slow": (template.slow,),
                "trap": (template.trap,),
            }
            for _ in range(samples):
                kind = rng.choices(list(profile), weights=list(profile.values()))[0]
                pool = pools[kind]
                # within a kind the first spelling is the model's favourite
                sql = pool[0] if rng.random() < 0.6 else rng.choice(pool)
                pairs.append((question, gold, sql.format(**params)))
                kinds.append(kind)
            question += 1
    return pairs, kinds


def baseline(
    db: Path, pairs: list[tuple[int, str, str]], comparison: str, timeout: float
) -> list[tuple[bool, str, float]]:
    """The per-pair loop of BIRD's evaluation.py: new connection, candidate, gold again, compare."""
    labels = []
    for _, gold_sql, cand_sql in pairs:
        conn = SandboxConnection(db)
        try:
            pred = conn.execute(cand_sql, timeout=timeout)
            gold = conn.execute(gold_sql, timeout=timeout)
        finally:
            conn.close()
        labels.append((results_match(pred, gold, comparison, gold_sql=gold_sql), pred.status, pred.elapsed))
    return labels


def with_lfkit(
    db: Path, pairs: list[tuple[int, str, str]], comparison: str, timeout: float, workers: int
) -> tuple[list[tuple[bool, str]], dict]:
    with Verifier(comparison=comparison, timeout=timeout, workers=workers) as verifier:
        verdicts = verifier.verify([(db, gold, cand) for _, gold, cand in pairs])
        stats = dict(verifier.stats)
        # SQLite time of the distinct executions, summed over workers (the floor is this / workers)
        stats["query_seconds"] = round(sum(r.elapsed for r in {id(r): r for r in verifier._cache.values()}.values()), 2)
    return [(v.correct, v.status) for v in verdicts], stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, help="an existing full Lahman SQLite file (default: build one in a tmp dir)")
    parser.add_argument("--samples", type=int, default=8, help="candidates per question (default 8)")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per query (default 2)")
    parser.add_argument("--workers", type=int, default=None, help="lfkit worker processes (default: all cores)")
    parser.add_argument("--comparison", choices=("bird", "testsuite"), default="bird")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-speedup", type=float, default=0.0, help="exit 1 when the ratio is below this")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    workers = args.workers or default_workers()

    with tempfile.TemporaryDirectory(prefix="lfkit-bench-") as tmp:
        db = args.db
        if db is None:
            from lfkit.data.demo import build_lahman_db

            start = time.perf_counter()
            db = build_lahman_db(Path(tmp) / "lahman_all.sqlite", tables="all")
            print(f"built {db.name} ({db.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - start:.1f}s")
        db.read_bytes()  # warm the page cache for both sides

        pairs, kinds = make_pairs(args.samples, args.seed)
        n_questions = len({q for q, _, _ in pairs})
        kind_counts = Counter(kinds)
        distinct = len({(q, cand) for q, _, cand in pairs})
        print(f"{n_questions} questions x {args.samples} candidates = {len(pairs)} pairs, timeout {args.timeout:g}s")
        print(
            "candidate mix: "
            + ", ".join(f"{k} {kind_counts[k]}" for k in ("gold", "same", "wrong", "error", "slow", "trap"))
            + f"  ({distinct} distinct texts)"
        )
        print(
            "  gold = the gold spelling, same = gold re-spelled (case/whitespace/aliases), wrong = runs with another "
            "answer,\n  error = does not run, slow = correlated subquery or needless sort (finishes), "
            "trap = join without condition (times out)"
        )

        start = time.perf_counter()
        base_run = baseline(db, pairs, args.comparison, args.timeout)
        t_base = time.perf_counter() - start
        base_labels = [(correct, status) for correct, status, _ in base_run]
        per_kind = {
            k: sum(e for (_, _, e), kind in zip(base_run, kinds, strict=True) if kind == k) / kind_counts[k]
            for k in kind_counts
        }
        print("  mean candidate time: " + ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in sorted(per_kind.items())))
        print(f"baseline (per-pair loop, 1 process):       {t_base:7.2f}s")

        start = time.perf_counter()
        lf_labels, stats = with_lfkit(db, pairs, args.comparison, args.timeout, workers)
        t_lf = time.perf_counter() - start
        print(
            f"lfkit Verifier (cache + {workers} workers):       {t_lf:7.2f}s  "
            f"(executed {stats['executed']} of {stats['requested']} queries, "
            f"{stats['query_seconds']:.1f}s of SQLite time)"
        )

    if base_labels != lf_labels:
        diff = [i for i, (a, b) in enumerate(zip(base_labels, lf_labels, strict=True)) if a != b]
        first = diff[0]
        print(f"LABELS DIFFER on {len(diff)} pairs, e.g. pair {first}: {base_labels[first]} vs {lf_labels[first]}")
        return 2
    statuses = Counter(status for _, status in lf_labels)
    correct = sum(c for c, _ in lf_labels)
    print(f"labels identical: {correct} correct; statuses {dict(statuses)}")
    ratio = t_base / t_lf
    print(f"speed-up: {ratio:.1f}x")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "pairs": len(pairs),
                    "questions": n_questions,
                    "mix": dict(kind_counts),
                    "baseline_s": round(t_base, 3),
                    "lfkit_s": round(t_lf, 3),
                    "speedup": round(ratio, 2),
                    "workers": workers,
                    "executions": stats,
                    "statuses": dict(statuses),
                },
                indent=2,
            )
        )
    if ratio < args.min_speedup:
        print(f"below the required {args.min_speedup:g}x")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

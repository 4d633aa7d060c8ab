"""Benchmark: scoring predictions, ``lfkit eval score`` vs BIRD's ``evaluation.py``.

Run:  .venv/bin/python benchmarks/bench_score.py   (or `make bench`)

Two corpora in BIRD layout (``dev.json``, ``dev_gold.sql``, ``predict_dev.json``,
``dev_databases/<db_id>/<db_id>.sqlite``), each scored by both sides in one run:

* ``lahman`` — the demo corpus's dev split (:func:`lfkit.data.demo.build_demo_corpus`): one
  database, 120 questions, a few heavier joins over real baseball tables;
* ``small-dbs`` — like Spider dev: 20 small generated databases (3 tables, 20-300 rows each)
  and ~1000 Spider-style questions (joins with ``T1/T2`` aliases, GROUP BY/HAVING, nested
  queries, INTERSECT), some asked twice (Spider has paraphrased questions with the same gold).

Predictions are the gold SQL with a share perturbed: re-spelled (lower case, line breaks: still
correct), a changed comparison or sort order (runs, usually wrong), a misspelled column (error).

The baseline is BIRD's ``evaluation.py`` written out faithfully (:func:`bird_evaluate`): read the
predictions and ``dev_gold.sql``, then a ``multiprocessing.Pool`` of the same worker count; for
each pair connect to the database, execute predicted and gold SQL, compare
``set(fetchall())`` under a per-pair thread timeout (``func_timeout``), accuracy by difficulty.
lfkit is :func:`lfkit.eval.score_predictions` on the same files with the same worker count
(pool start-up included). Two measurements per corpus:

* ``in-process``: both functions timed inside this process (best of ``--repeat`` runs, the two
  sides taking turns; lfkit's normalisation caches are cleared before each of its runs);
* ``command``: wall time of the commands a user types (``python -m lfkit.cli eval score`` vs
  this file's ``bird-eval`` sub-command, BIRD's script), interpreter start and imports included.

The script fails (exit 2) when the two sides disagree on EX and (exit 1) when a ratio
``bird / lfkit`` is below ``--min-ratio``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIRD_SEPARATOR = "\t----- bird -----\t"

# --------------------------------------------------------------------------------------------
# The baseline: BIRD's evaluation.py (src/evaluation.py of the BIRD mini-dev / dev release),
# same structure and calls; func_timeout is replaced by its mechanism (a thread joined with a
# timeout) so that the benchmark needs no extra package.


class FunctionTimedOut(Exception):
    pass


def func_timeout(timeout: float, func, args=()):  # func_timeout.func_timeout: one thread per call
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = func(*args)
        except BaseException as exc:  # re-raised in the caller, like func_timeout does
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise FunctionTimedOut()
    if "error" in box:
        raise box["error"]
    return box["value"]


def execute_sql(predicted_sql, ground_truth, db_path):
    conn = sqlite3.connect(db_path)
    # Connect to the database
    cursor = conn.cursor()
    cursor.execute(predicted_sql)
    predicted_res = cursor.fetchall()
    cursor.execute(ground_truth)
    ground_truth_res = cursor.fetchall()
    res = 0
    if set(predicted_res) == set(ground_truth_res):
        res = 1
    return res


def execute_model(predicted_sql, ground_truth, db_place, idx, meta_time_out):
    try:
        res = func_timeout(meta_time_out, execute_sql, args=(predicted_sql, ground_truth, db_place))
    except KeyboardInterrupt:
        sys.exit(0)
    except FunctionTimedOut:
        res = 0
    except Exception:
        res = 0
    return {"sql_idx": idx, "res": res}


def package_sqls(sql_path, db_root_path, mode="gpt"):
    clean_sqls = []
    db_path_list = []
    if mode == "gpt":
        with open(sql_path) as f:
            sql_data = json.load(f)
        for _, sql_str in sql_data.items():
            if isinstance(sql_str, str):
                sql, db_name = sql_str.split(BIRD_SEPARATOR)
            else:
                sql, db_name = " ", "financial"
            clean_sqls.append(sql)
            db_path_list.append(db_root_path + db_name + "/" + db_name + ".sqlite")
    elif mode == "gt":
        with open(sql_path) as f:
            sqls = f.readlines()
        for sql_str in sqls:
            sql, db_name = sql_str.strip().split("\t")
            clean_sqls.append(sql)
            db_path_list.append(db_root_path + db_name + "/" + db_name + ".sqlite")
    return clean_sqls, db_path_list


def run_sqls_parallel(sqls, db_places, num_cpus=1, meta_time_out=30.0):
    exec_result = []

    def result_callback(result):
        exec_result.append(result)

    pool = mp.Pool(processes=num_cpus)
    for i, sql_pair in enumerate(sqls):
        predicted_sql, ground_truth = sql_pair
        pool.apply_async(
            execute_model, args=(predicted_sql, ground_truth, db_places[i], i, meta_time_out), callback=result_callback
        )
    pool.close()
    pool.join()
    return exec_result


def sort_results(list_of_dicts):
    return sorted(list_of_dicts, key=lambda x: x["sql_idx"])


def compute_acc_by_diff(exec_results, diff_json_path):
    num_queries = len(exec_results)
    results = [res["res"] for res in exec_results]
    with open(diff_json_path) as f:
        contents = json.load(f)
    simple_results, moderate_results, challenging_results = [], [], []
    for i, content in enumerate(contents):
        if content["difficulty"] == "simple":
            simple_results.append(exec_results[i])
        if content["difficulty"] == "moderate":
            moderate_results.append(exec_results[i])
        if content["difficulty"] == "challenging":
            challenging_results.append(exec_results[i])

    def acc(rows):
        return sum(res["res"] for res in rows) / len(rows) if rows else 0

    all_acc = sum(results) / num_queries
    count_lists = [len(simple_results), len(moderate_results), len(challenging_results), num_queries]
    return (
        acc(simple_results) * 100,
        acc(moderate_results) * 100,
        acc(challenging_results) * 100,
        all_acc * 100,
        (count_lists),
    )


def bird_evaluate(predicted_sql_path: Path, gold_sql_path: Path, db_root: Path, diff_json_path: Path, num_cpus: int):
    """BIRD's ``__main__``: returns ``(exec results sorted by index, overall accuracy %)``."""
    db_root_path = str(db_root) + "/"
    pred_queries, db_paths = package_sqls(str(predicted_sql_path), db_root_path, mode="gpt")
    gt_queries, _db_paths_gt = package_sqls(str(gold_sql_path), db_root_path, mode="gt")
    query_pairs = list(zip(pred_queries, gt_queries, strict=True))
    exec_result = run_sqls_parallel(query_pairs, db_places=db_paths, num_cpus=num_cpus, meta_time_out=30.0)
    exec_result = sort_results(exec_result)
    *_, all_acc, _counts = compute_acc_by_diff(exec_result, str(diff_json_path))
    return exec_result, all_acc


# --------------------------------------------------------------------------------------------
# Corpora


def perturb(sql: str, rng: random.Random, share: float) -> tuple[str, str]:
    """``(prediction, kind)``: the gold itself, or with probability ``share`` a perturbed copy."""
    if rng.random() >= share:
        return sql, "gold"
    kind = rng.choice(("respell", "wrong", "wrong", "error"))
    if kind == "respell":  # same query, other spelling (keywords lower case, line breaks)
        keywords = r"\b(SELECT|FROM|WHERE|GROUP BY|ORDER BY|JOIN|HAVING|LIMIT|AS|ON|AND)\b"
        out = re.sub(keywords, lambda m: m[0].lower(), sql)
        return out.replace(" from ", "\nfrom ").replace(" where ", "\n  where "), kind
    if kind == "wrong":
        for a, b in ((" > ", " < "), (" DESC", " ASC"), (" = ", " <> "), ("count(", "count(DISTINCT "), (" < ", " > ")):
            if a in sql:
                return sql.replace(a, b, 1), kind
        return sql + " LIMIT 1", kind
    words = re.findall(r"\b[a-z_]+\b", sql.split(" FROM ")[0].replace("SELECT", ""))
    if words:
        word = rng.choice(words)
        return re.sub(rf"\b{word}\b", word + "x", sql, count=1), kind
    return sql.replace("FROM", "FORM", 1), kind


def write_bird_files(out: Path, items: list[dict], predictions: list[str]) -> None:
    """dev.json, dev_gold.sql and predict_dev.json (BIRD's own formats)."""
    (out / "dev.json").write_text(json.dumps(items, indent=1))
    (out / "dev_gold.sql").write_text("".join(f"{it['SQL']}\t{it['db_id']}\n" for it in items))
    pairs = enumerate(zip(items, predictions, strict=True))
    preds = {str(i): f"{sql}{BIRD_SEPARATOR}{it['db_id']}" for i, (it, sql) in pairs}
    (out / "predict_dev.json").write_text(json.dumps(preds, indent=4))


def lahman_corpus(out: Path, seed: int, share: float) -> Path:
    from lfkit.data.demo import build_demo_corpus

    build_demo_corpus(out, seed=seed)
    items = json.loads((out / "dev.json").read_text())
    rng = random.Random(seed)
    write_bird_files(out, items, [perturb(it["SQL"], rng, share)[0] for it in items])
    return out / "dev_databases"


COUNTRIES = ("France", "Spain", "Italy", "Japan", "Brazil", "Canada", "Chile", "Kenya")
DEPTS = ("Sales", "Research", "Legal", "Support", "Design", "Finance")
FIRST = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea", "Max", "Nia")

# Spider-style gold templates: (difficulty, SQL with {placeholders})
TEMPLATES = (
    ("simple", "SELECT count(*) FROM people WHERE country = '{c}'"),
    ("simple", "SELECT name FROM people WHERE age > {a} ORDER BY name"),
    ("simple", "SELECT avg(salary) FROM people WHERE country = '{c}'"),
    ("simple", "SELECT max(age), min(age) FROM people WHERE country = '{c}'"),
    ("simple", "SELECT DISTINCT country FROM people WHERE salary BETWEEN {lo} AND {lo} + 20000"),
    ("moderate", "SELECT country, count(*) FROM people GROUP BY country HAVING count(*) > {k}"),
    ("moderate", "SELECT name FROM dept WHERE budget > (SELECT avg(budget) FROM dept)"),
    ("moderate", "SELECT name FROM people WHERE id NOT IN (SELECT person_id FROM works) AND age < {a}"),
    (
        "moderate",
        "SELECT T1.name FROM people AS T1 JOIN works AS T2 ON T1.id = T2.person_id JOIN dept AS T3 "
        "ON T2.dept_id = T3.id WHERE T3.name = '{d}'",
    ),
    (
        "challenging",
        "SELECT T1.name, sum(T2.years) FROM people AS T1 JOIN works AS T2 ON T1.id = T2.person_id "
        "GROUP BY T1.id ORDER BY sum(T2.years) DESC LIMIT {n}",
    ),
    (
        "challenging",
        "SELECT name FROM people WHERE country = '{c}' INTERSECT SELECT T1.name FROM people AS T1 JOIN works AS T2 "
        "ON T1.id = T2.person_id WHERE T2.years > {y}",
    ),
    (
        "challenging",
        "SELECT T3.name, avg(T1.salary) FROM people AS T1 JOIN works AS T2 ON T1.id = T2.person_id JOIN dept AS T3 "
        "ON T2.dept_id = T3.id GROUP BY T3.id HAVING avg(T1.salary) > {lo} ORDER BY avg(T1.salary) DESC",
    ),
)


def small_db(path: Path, rng: random.Random) -> None:
    n_people = rng.randint(20, 300)
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER, salary REAL);"
        "CREATE TABLE dept (id INTEGER PRIMARY KEY, name TEXT, budget INTEGER);"
        "CREATE TABLE works (person_id INTEGER REFERENCES people(id), dept_id INTEGER REFERENCES dept(id),"
        " years INTEGER);"
    )
    conn.executemany(
        "INSERT INTO people VALUES (?, ?, ?, ?, ?)",
        [
            (i, f"{rng.choice(FIRST)} {i}", rng.choice(COUNTRIES), rng.randint(18, 70), rng.randint(20, 120) * 1000.0)
            for i in range(1, n_people + 1)
        ],
    )
    conn.executemany(
        "INSERT INTO dept VALUES (?, ?, ?)", [(i, d, rng.randint(1, 90) * 10_000) for i, d in enumerate(DEPTS, 1)]
    )
    conn.executemany(
        "INSERT INTO works VALUES (?, ?, ?)",
        [(rng.randint(1, n_people), rng.randint(1, len(DEPTS)), rng.randint(0, 30)) for _ in range(n_people)],
    )
    conn.commit()
    conn.close()


def small_dbs_corpus(out: Path, seed: int, share: float, n_dbs: int = 20, n_questions: int = 1000) -> Path:
    rng = random.Random(seed)
    root = out / "dev_databases"
    db_ids = [f"spider_{i:02d}" for i in range(n_dbs)]
    for db_id in db_ids:
        (root / db_id).mkdir(parents=True)
        small_db(root / db_id / f"{db_id}.sqlite", rng)
    items = []
    for i in range(n_questions):
        db_id = db_ids[i * n_dbs // n_questions]  # Spider dev: questions grouped by database
        if items and rng.random() < 0.1 and items[-1]["db_id"] == db_id:
            gold, difficulty = items[-1]["SQL"], items[-1]["difficulty"]  # a paraphrased question
        else:
            difficulty, template = rng.choice(TEMPLATES)
            gold = template.format(
                c=rng.choice(COUNTRIES),
                d=rng.choice(DEPTS),
                a=rng.randint(20, 65),
                lo=rng.randint(20, 100) * 1000,
                k=rng.randint(1, 30),
                n=rng.randint(1, 10),
                y=rng.randint(0, 25),
            )
        items.append({"question_id": i, "db_id": db_id, "question": f"q{i}", "SQL": gold, "difficulty": difficulty})
    write_bird_files(out, items, [perturb(it["SQL"], rng, share)[0] for it in items])
    return root


# --------------------------------------------------------------------------------------------
# Measurement


def lfkit_score(corpus: Path, db_root: Path, workers: int) -> dict:
    from lfkit.eval import score_predictions
    from lfkit.sql.compare import has_top_level_order_by
    from lfkit.sql.normalize import normalize_sql

    normalize_sql.cache_clear()  # no help from an earlier run
    has_top_level_order_by.cache_clear()
    return score_predictions(corpus / "predict_dev.json", corpus / "dev.json", db_root, workers=workers)


def best_of(repeat: int, *calls):
    """Run the ``(fn, *args)`` calls in turn ``repeat`` times (interleaved, so both sides see the
    same machine load); returns ``[(best seconds, last value)]`` per call."""
    times: list[list[float]] = [[] for _ in calls]
    values: list = [None] * len(calls)
    for _ in range(repeat):
        for i, (fn, *args) in enumerate(calls):
            start = time.perf_counter()
            values[i] = fn(*args)
            times[i].append(time.perf_counter() - start)
    return [(min(t), v) for t, v in zip(times, values, strict=True)]


def run_command(cmd: list[str]) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bench_corpus(name: str, corpus: Path, db_root: Path, workers: int, repeat: int) -> dict:
    n = len(json.loads((corpus / "dev.json").read_text()))
    files = (corpus / "predict_dev.json", corpus / "dev_gold.sql", db_root, corpus / "dev.json")
    (t_bird, (bird_results, bird_acc)), (t_lf, report) = best_of(
        repeat, (bird_evaluate, *files, workers), (lfkit_score, corpus, db_root, workers)
    )
    bird_labels = [bool(r["res"]) for r in bird_results]
    lf_labels = [bool(r["correct"]) for r in report["results"]]
    if bird_labels != lf_labels or round(bird_acc, 2) != report["ex"]:
        diff = [i for i, (a, b) in enumerate(zip(bird_labels, lf_labels, strict=True)) if a != b]
        raise SystemExit(f"{name}: EX DIFFERS: BIRD {bird_acc:.2f} vs lfkit {report['ex']:.2f}, pairs {diff[:10]}")
    bird_cmd = [sys.executable, str(Path(__file__).resolve()), "bird-eval", *map(str, files), str(workers)]
    lf_cmd = [sys.executable, "-m", "lfkit.cli", "eval", "score", "-p", str(files[0]), "-g", str(files[3])]
    lf_cmd += ["--db-root", str(db_root), "--workers", str(workers)]  # with its progress bar, as users run it
    (c_bird, _), (c_lf, _) = best_of(repeat, (run_command, bird_cmd), (run_command, lf_cmd))
    row = {
        "corpus": name,
        "pairs": n,
        "databases": len(list(db_root.iterdir())),
        "ex": report["ex"],
        "executions": report["executions"],
        "bird_s": round(t_bird, 3),
        "lfkit_s": round(t_lf, 3),
        "ratio": round(t_bird / t_lf, 2),
        "bird_cmd_s": round(c_bird, 3),
        "lfkit_cmd_s": round(c_lf, 3),
        "cmd_ratio": round(c_bird / c_lf, 2),
    }
    ex = report["executions"]
    print(
        f"{name}: {n} pairs on {row['databases']} database(s), EX {report['ex']:.2f}% on both sides; "
        f"lfkit executed {ex['executed']} of {ex['requested']} queries"
    )
    print(f"  in-process  BIRD {t_bird:6.3f}s  lfkit {t_lf:6.3f}s  ratio {row['ratio']:.2f}")
    print(f"  command     BIRD {c_bird:6.3f}s  lfkit {c_lf:6.3f}s  ratio {row['cmd_ratio']:.2f}")
    return row


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bird-eval"]:  # BIRD's script as a command: PRED GOLD_SQL DB_ROOT DEV_JSON NUM_CPUS
        pred, gold, db_root, diff, cpus = argv[1:]
        _, acc = bird_evaluate(Path(pred), Path(gold), Path(db_root), Path(diff), int(cpus))
        print(f"EX {acc:.2f}")
        return 0
    from lfkit.sql.pool import default_workers

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=None, help="worker processes on both sides (default: all cores)")
    parser.add_argument("--share", type=float, default=0.3, help="share of perturbed predictions (default 0.3)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement, the best counts (default 5)")
    parser.add_argument("--corpus", choices=("lahman", "small-dbs", "both"), default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-ratio", type=float, default=0.0, help="exit 1 when a ratio is below this")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    workers = args.workers or default_workers()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lfkit-bench-score-") as tmp:
        print(f"workers {workers} on both sides; times are the best of {args.repeat} runs")
        if args.corpus in ("lahman", "both"):
            out = Path(tmp) / "lahman"
            rows.append(bench_corpus("lahman", out, lahman_corpus(out, args.seed, args.share), workers, args.repeat))
        if args.corpus in ("small-dbs", "both"):
            out = Path(tmp) / "small"
            db_root = small_dbs_corpus(out, args.seed, args.share)
            rows.append(bench_corpus("small-dbs", out, db_root, workers, args.repeat))
    if args.json:
        args.json.write_text(json.dumps({"workers": workers, "corpora": rows}, indent=2))
    low = [r["corpus"] for r in rows if min(r["ratio"], r["cmd_ratio"]) < args.min_ratio]
    if low:
        print(f"below the required ratio {args.min_ratio:g}: {', '.join(low)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

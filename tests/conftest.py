"""Shared pytest fixtures: add new ones; change an existing one only with every test that uses it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Nothing in the test suite may reach the Hugging Face hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The lfkit cache as the session started, before any test points LFKIT_HOME at a tmp dir.
_SESSION_LFKIT_HOME = os.environ.get("LFKIT_HOME", str(Path.home() / ".cache" / "lfkit"))


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """Path of the prepared ``tiny`` embedded model (random Qwen3, real Qwen tokenizer).

    Built once per machine in the user's lfkit cache ($LFKIT_HOME, default ~/.cache/lfkit),
    not in a per-test temp dir: a fresh CI machine builds it once per run (~10 s), later
    runs reuse it. prepare_model renames a finished folder into place, so parallel test
    processes never see a half-written model.
    """
    from lfkit.models.embedded import prepare_model

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LFKIT_HOME", _SESSION_LFKIT_HOME)
        return prepare_model("tiny")


@pytest.fixture(scope="session")
def smollm2_model() -> Path:
    """Path of the prepared ``smollm2-135m`` embedded model (SmolLM2-135M-Instruct, converted once).

    The model for tests that need a real architecture the tiny model lacks (vLLM's CPU attention
    takes head sizes of 32 and up; tiny's is 16).
    """
    from lfkit.models.embedded import prepare_model

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LFKIT_HOME", _SESSION_LFKIT_HOME)
        return prepare_model("smollm2-135m")


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Lahman demo corpus in BIRD layout (``lfkit data demo``), built once per test session.

    Holds ``train.json``, ``dev.json``, ``dev_gold.sql`` and ``{train,dev}_databases/lahman/``
    (``lahman.sqlite`` + ``database_description/*.csv``). Treat it as read-only.
    """
    from lfkit.data.demo import build_demo_corpus

    out = tmp_path_factory.mktemp("demo_corpus")
    build_demo_corpus(out, seed=0)
    return out


def _build_toy_sqlite(path: Path) -> Path:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER, net REAL);
        CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, singer_id INTEGER, year INTEGER, venue TEXT);
        CREATE TABLE nums (n INTEGER);
        """
    )
    conn.executemany(
        "INSERT INTO singer VALUES (?, ?, ?, ?, ?)",
        [
            (1, "Ann", "France", 30, 1.5),
            (2, "Bob", "France", 41, None),
            (3, "Cid", "Spain", 25, 2.0),
            (4, "Dee", "Spain", 30, 3.25),
            (5, "Eve", None, 52, 2.0),
        ],
    )
    conn.executemany(
        "INSERT INTO concert VALUES (?, ?, ?, ?)",
        [(1, 1, 2019, "Arena"), (2, 1, 2020, "Hall"), (3, 3, 2020, "Arena"), (4, 4, 2021, "Club")],
    )
    conn.executemany("INSERT INTO nums VALUES (?)", [(i,) for i in range(3000)])
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def toy_sqlite(tmp_path: Path) -> Path:
    """A small real SQLite file (tables singer, concert, nums with 3000 rows) in a fresh tmp dir.

    ``nums`` makes cartesian products expensive (3000^3 rows) for timeout/row-cap tests.
    """
    return _build_toy_sqlite(tmp_path / "toy.sqlite")


def _build_bird_corpus(root: Path) -> Path:
    """A small corpus in the real BIRD layout, with BIRD's rough edges (see ``bird_corpus``)."""
    import json
    import sqlite3

    def make_db(path: Path, script: str, rows: dict[str, list[tuple]]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path)
        conn.executescript(script)
        for table, values in rows.items():
            marks = ", ".join("?" * len(values[0]))
            conn.executemany(f'INSERT INTO "{table}" VALUES ({marks})', values)
        conn.commit()
        conn.close()

    shop = """
        CREATE TABLE customers (id INTEGER PRIMARY KEY, "full name" TEXT, country TEXT);
        CREATE TABLE orders (
            order_id INTEGER PRIMARY KEY, customer_id INTEGER, amount REAL, `order date` TEXT,
            FOREIGN KEY (customer_id) REFERENCES customers(id));
    """
    shop_rows = {
        "customers": [(1, "Zoë Keller", "France"), (2, "Li Wei", "China"), (3, "Ana Ruiz", "Spain")],
        "orders": [(10, 1, 25.5, "2023-01-04"), (11, 1, 80.0, "2023-02-11"), (12, 3, 12.25, "2023-03-01")],
    }
    school = "CREATE TABLE students (sid INTEGER PRIMARY KEY, name TEXT, grade INTEGER);"
    school_rows = {"students": [(1, "Ada", 9), (2, "Bo", 10), (3, "Cy", 10)]}
    for split in ("train", "dev"):
        dbs = root / f"{split}_databases"
        make_db(dbs / "shop" / "shop.sqlite", shop, shop_rows)
        make_db(dbs / "school" / "school.sqlite", school, school_rows)  # no database_description/
        desc = dbs / "shop" / "database_description"
        desc.mkdir()
        # UTF-8 with a BOM, as many BIRD files are
        (desc / "customers.csv").write_text(
            "original_column_name,column_name,column_description,data_format,value_description\n"
            "id,customer id,unique id of the customer,integer,\n"
            "full name,full name,name of the customer — given name first,text,\n"
            "country,country,country of residence,text,\n",
            encoding="utf-8-sig",
        )
        # cp1252 (é, non-breaking text), and a trailing space in a column name, as in BIRD train
        (desc / "orders.csv").write_bytes(
            (
                "original_column_name,column_name,column_description,data_format,value_description\n"
                "order_id,,,integer,\n"
                "customer_id ,customer id,id of the customer who ordered,integer,\n"
                "amount,amount,montant payé in euros,real,commonsense evidence: large order means amount > 50\n"
                "order date,,date of the order,date,YYYY-MM-DD\n"
            ).encode("cp1252")
        )
    train = [  # BIRD train: no question_id, no difficulty
        {
            "db_id": "shop",
            "question": "How many orders did Zoë Keller place?",
            "evidence": "",
            "SQL": "SELECT COUNT(*) FROM orders AS T1 JOIN customers AS T2 ON T1.customer_id = T2.id "
            "WHERE T2.`full name` = 'Zoë Keller'",
        },
        {
            "db_id": "shop",
            "question": "List the ids of large orders.",
            "evidence": "large order means amount > 50",
            "SQL": "SELECT order_id FROM orders WHERE amount > 50",
        },
        {
            "db_id": "school",
            "question": "How many students are in grade 10?",
            "evidence": "",
            "SQL": "SELECT COUNT(*) FROM students WHERE grade = 10",
        },
        {  # gold SQL that does not execute (BIRD train has a few)
            "db_id": "school",
            "question": "What is the average age of students?",
            "evidence": "",
            "SQL": "SELECT AVG(age) FROM students",
        },
    ]
    dev = [
        {
            "question_id": 100,
            "db_id": "shop",
            "question": "Which country is Ana Ruiz from?",
            "evidence": "",
            "SQL": "SELECT country FROM customers WHERE `full name` = 'Ana Ruiz'",
            "difficulty": "simple",
        },
        {
            "question_id": 101,
            "db_id": "school",
            "question": "Name the students in grade 9.",
            "evidence": "",
            "SQL": "SELECT name FROM students WHERE grade = 9",
            "difficulty": "moderate",
        },
    ]
    (root / "train.json").write_text(json.dumps(train, ensure_ascii=False, indent=2), encoding="utf-8")
    (root / "dev.json").write_text(json.dumps(dev, ensure_ascii=False, indent=2), encoding="utf-8")
    (root / "dev_gold.sql").write_text("".join(f"{r['SQL']}\t{r['db_id']}\n" for r in dev), encoding="utf-8")
    return root


@pytest.fixture
def bird_corpus(tmp_path: Path) -> Path:
    """A tiny corpus in BIRD's real layout, built fresh per test (tests may damage it).

    ``train`` (4 questions, no question_id / difficulty, one gold SQL that fails) and ``dev``
    (2 questions with ids + ``dev_gold.sql``) over databases ``shop`` (quoted column names,
    PK/FK, description CSVs in UTF-8+BOM and cp1252) and ``school`` (no descriptions).
    """
    return _build_bird_corpus(tmp_path / "bird")


@pytest.fixture(scope="session")
def demo_sft(demo_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SFT rows (``lfkit data sft``) for the first 16 train questions of ``demo_corpus``, as a JSON array.

    Rows: instruction, input, output (```sql gold```), question_id, db_id. Databases are under
    ``demo_corpus / "train_databases"``. Read-only.
    """
    from lfkit.data.sft import SFTOptions, build_sft

    out = tmp_path_factory.mktemp("demo_sft") / "sft.json"
    build_sft(demo_corpus, "train", out, options=SFTOptions(limit=16))
    return out


@pytest.fixture(scope="session")
def demo_datasets(demo_sft: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LLaMA-Factory ``dataset_dir`` holding the demo rows, registered with ``lfkit.registry``.

    ``text2sql_sft`` = ``demo_sft``'s rows; ``text2sql_dpo`` = the same prompts with gold as
    chosen and a deliberately wrong SQL as rejected (source "test"). Read-only.
    """
    from lfkit.data.prompts import format_sql_answer
    from lfkit.io import read_rows, write_rows
    from lfkit.registry import register_dataset

    out = tmp_path_factory.mktemp("demo_datasets")
    rows = read_rows(demo_sft)
    write_rows(out / "text2sql_sft.json", rows)
    wrong = format_sql_answer("SELECT COUNT(*) FROM People WHERE 1 = 0")
    pairs = [
        {
            "instruction": r["instruction"],
            "input": r["input"],
            "chosen": r["output"],
            "rejected": wrong,
            "question_id": r["question_id"],
            "db_id": r["db_id"],
            "source": "test",
            "round": 1,
        }
        for r in rows
    ]
    write_rows(out / "text2sql_dpo.jsonl", pairs)
    register_dataset(out / "dataset_info.json", "text2sql_sft", out / "text2sql_sft.json", "sft")
    register_dataset(out / "dataset_info.json", "text2sql_dpo", out / "text2sql_dpo.jsonl", "preference")
    return out

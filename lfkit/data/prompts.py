"""The one schema prompt builder, the instruction text and the answer format.

Every stage (SFT rows, sampling, preference data, evaluation) builds its prompt here, so
the model sees at sampling time exactly what it saw in training. The input is OmniSQL-style
``CREATE TABLE`` DDL with primary / foreign keys and a comment per column
(``-- description (value description), example: [...]``), then the evidence and the question.

Example values come from one bounded query per column, cached per database: building
prompts for every BIRD train question scans no table twice. When a prompt exceeds the
budget, example values and descriptions are shortened first (see :data:`CUT_LEVELS`);
tables and columns are never dropped, since the question may need them.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfkit.data.bird import ColumnDescription, load_descriptions
from lfkit.data.rows import Question
from lfkit.sql.execute import DatabaseFileError, check_database_file

logger = logging.getLogger(__name__)

INSTRUCTION = (
    "You are a SQLite expert. Read the database schema, the evidence and the question, "
    "then write one SQLite query that answers the question. "
    "Reply with the query only, inside a ```sql code block."
)

# Rows read per column to find example values: a bound, so huge tables cost no more than small ones.
EXAMPLE_SCAN_ROWS = 2000


def format_sql_answer(sql: str) -> str:
    """The SFT target for a query: the SQL inside a ```sql fence (read back by lfkit.sql.extract_sql)."""
    return f"```sql\n{sql.strip()}\n```"


def chat_messages(instruction: str, input: str, response: str | None = None) -> list[dict[str, str]]:
    """The chat LLaMA-Factory's alpaca converter builds from a row.

    ``AlpacaDatasetConverter`` joins the non-empty ``prompt`` and ``query`` columns with a
    newline into one user turn; the response becomes the assistant turn.
    """
    user = "\n".join(part for part in (instruction, input) if part)
    messages = [{"role": "user", "content": user}]
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    return messages


@dataclass(frozen=True)
class CutLevel:
    """How much of the column comments a prompt keeps."""

    n_examples: int | None  # None: the builder's n_examples
    example_chars: int
    value_description_chars: int  # 0 drops value descriptions
    description_chars: int  # 0 drops descriptions


# Tried in order until the prompt fits: examples and descriptions shrink first, then go.
CUT_LEVELS: tuple[CutLevel, ...] = (
    CutLevel(None, 40, 200, 200),
    CutLevel(2, 24, 80, 120),
    CutLevel(1, 16, 0, 80),
    CutLevel(0, 0, 0, 40),
    CutLevel(0, 0, 0, 0),
)


@dataclass
class ColumnInfo:
    name: str
    type: str
    examples: list[Any]
    description: ColumnDescription | None = None


@dataclass
class TableInfo:
    name: str
    columns: list[ColumnInfo]
    primary_key: list[str]
    foreign_keys: list[tuple[list[str], str, list[str]]]


_SIMPLE_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def quote_identifier(name: str) -> str:
    """Backtick-quote a name unless it is a plain identifier (BIRD quotes the same way)."""
    return name if _SIMPLE_IDENT.fullmatch(name) else "`" + name.replace("`", "``") + "`"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 3)].rstrip() + "..."


def _format_example(value: Any, limit: int) -> str:
    if isinstance(value, bytes):
        return "<blob>"
    if isinstance(value, str):
        return repr(_shorten(" ".join(value.split()), limit))
    return repr(value)


def read_schema(db_path: str | os.PathLike[str], n_examples: int) -> list[TableInfo]:
    """Tables, columns, keys, descriptions and up to ``n_examples`` example values per column.

    A file that is not a SQLite database, is damaged or holds no table raises
    :class:`lfkit.sql.DatabaseFileError` naming it: a prompt without a schema is no prompt.
    """
    db_path = Path(db_path)
    check_database_file(db_path)
    descriptions = load_descriptions(db_path)
    try:
        tables = _read_tables(db_path, n_examples, descriptions)
    except sqlite3.DatabaseError as exc:  # e.g. "database disk image is malformed"
        raise DatabaseFileError(f"{db_path}: cannot read the schema: {exc}") from exc
    if not tables:
        raise DatabaseFileError(f"{db_path}: the database has no tables, so a prompt would have no schema")
    return tables


def _read_tables(
    db_path: Path, n_examples: int, descriptions: dict[str, dict[str, ColumnDescription]]
) -> list[TableInfo]:
    conn = sqlite3.connect(f"file:{db_path.resolve()}?mode=ro", uri=True)
    try:
        conn.text_factory = lambda b: b.decode("utf-8", errors="replace")
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
            )
        ]
        tables = []
        for table in names:
            qt = '"' + table.replace('"', '""') + '"'
            info = conn.execute(f"PRAGMA table_info({qt})").fetchall()
            desc = descriptions.get(table.lower(), {})
            columns = []
            for _cid, col, ctype, _notnull, _default, _pk in info:
                qc = '"' + col.replace('"', '""') + '"'
                examples = [
                    r[0]
                    for r in conn.execute(
                        f"SELECT DISTINCT {qc} FROM (SELECT {qc} FROM {qt} LIMIT {EXAMPLE_SCAN_ROWS}) "
                        f"WHERE {qc} IS NOT NULL LIMIT {int(n_examples)}"
                    )
                ]
                columns.append(ColumnInfo(col, ctype or "", examples, desc.get(col.lower())))
            pk = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
            fks: dict[int, tuple[list[str], str, list[str]]] = {}
            for fk_id, _seq, ref_table, from_col, to_col, *_ in conn.execute(f"PRAGMA foreign_key_list({qt})"):
                entry = fks.setdefault(fk_id, ([], ref_table, []))
                entry[0].append(from_col)
                entry[2].append(to_col or from_col)  # an omitted target column means the referenced PK
            tables.append(TableInfo(table, columns, pk, [fks[k] for k in sorted(fks)]))
        return tables
    finally:
        conn.close()


def render_schema(tables: list[TableInfo], level: CutLevel, n_examples: int) -> str:
    """OmniSQL-style DDL with one comment per column, at the given cut level."""
    n_ex = n_examples if level.n_examples is None else min(level.n_examples, n_examples)
    blocks = []
    for t in tables:
        defs: list[tuple[str, str]] = []  # (definition, comment); commas are placed afterwards
        for c in t.columns:
            parts = []
            d = c.description
            if d is not None and level.description_chars:
                text = d.column_description or d.column_name
                if text and text.lower() != c.name.lower():
                    parts.append(_shorten(text, level.description_chars))
                if d.value_description and level.value_description_chars:
                    vd = _shorten(d.value_description, level.value_description_chars)
                    parts.append(f"({vd})" if parts else vd)
            comment = " ".join(parts)
            if n_ex and c.examples:
                shown = ", ".join(_format_example(v, level.example_chars) for v in c.examples[:n_ex])
                comment = f"{comment}, example: [{shown}]" if comment else f"example: [{shown}]"
            defs.append((f"{quote_identifier(c.name)}{' ' + c.type if c.type else ''}", comment))
        if t.primary_key:
            defs.append((f"PRIMARY KEY ({', '.join(quote_identifier(c) for c in t.primary_key)})", ""))
        for cols, ref, ref_cols in t.foreign_keys:
            defs.append(
                (
                    f"FOREIGN KEY ({', '.join(quote_identifier(c) for c in cols)}) REFERENCES "
                    f"{quote_identifier(ref)} ({', '.join(quote_identifier(c) for c in ref_cols)})",
                    "",
                )
            )
        lines = []
        for i, (definition, comment) in enumerate(defs):
            line = "  " + definition + ("," if i < len(defs) - 1 else "")
            lines.append(f"{line} -- {comment}" if comment else line)
        blocks.append(f"CREATE TABLE {quote_identifier(t.name)} (\n" + "\n".join(lines) + "\n);")
    return "\n".join(blocks)


def render_input(schema: str, question: str, evidence: str = "") -> str:
    """The alpaca ``input``: schema, then evidence (when given) and question."""
    parts = [schema, ""]
    if evidence:
        parts.append(f"Evidence: {evidence}")
    parts.append(f"Question: {question}")
    return "\n".join(parts)


@dataclass
class SchemaPromptBuilder:
    """Builds ``(instruction, input)`` for a :class:`~lfkit.data.rows.Question`.

    The budget applies to the user turn LLaMA-Factory builds (instruction + newline + input):
    characters always, tokens as well when ``count_tokens`` and ``max_tokens`` are given.
    """

    max_chars: int = field(default=12_000, metadata={"help": "Character budget of instruction + input."})
    n_examples: int = field(default=3, metadata={"help": "Example values shown per column (0 for none)."})
    max_tokens: int | None = field(default=None, metadata={"help": "Token budget; needs count_tokens."})
    count_tokens: Callable[[str], int] | None = field(
        default=None, metadata={"help": "Counts the tokens of a text, e.g. len(tokenizer(text).input_ids)."}
    )
    instruction: str = field(default=INSTRUCTION, metadata={"help": "Instruction text (the alpaca `instruction`)."})
    # statistics over every build() call
    n_built: int = field(default=0, init=False)
    n_cut: int = field(default=0, init=False)
    n_over_budget: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.max_chars <= 0:
            raise ValueError(f"max_chars must be positive, got {self.max_chars}")
        if self.n_examples < 0:
            raise ValueError(f"n_examples must be >= 0, got {self.n_examples}")
        if self.max_tokens is not None and (self.max_tokens <= 0 or self.count_tokens is None):
            raise ValueError("max_tokens must be positive and needs count_tokens")
        self._tables: dict[Path, list[TableInfo]] = {}
        self._schemas: dict[tuple[Path, int], str] = {}

    def tables(self, db_path: str | os.PathLike[str]) -> list[TableInfo]:
        """The schema of a database, read once and cached."""
        key = Path(db_path).resolve()
        if key not in self._tables:
            self._tables[key] = read_schema(key, self.n_examples)
        return self._tables[key]

    def schema(self, db_path: str | os.PathLike[str], level: int = 0) -> str:
        """The rendered schema of a database at cut level ``level`` (cached)."""
        key = (Path(db_path).resolve(), level)
        if key not in self._schemas:
            self._schemas[key] = render_schema(self.tables(db_path), CUT_LEVELS[level], self.n_examples)
        return self._schemas[key]

    def _fits(self, user_turn: str) -> bool:
        if len(user_turn) > self.max_chars:
            return False
        if self.max_tokens is not None and self.count_tokens is not None:
            return self.count_tokens(user_turn) <= self.max_tokens
        return True

    def build(self, example: Question) -> tuple[str, str]:
        """``(instruction, input)`` for one question (it needs a ``db_path``), shortened to fit the budget."""
        if example.db_path is None:
            raise ValueError(f"question {example.question_id}: no database path to read the schema from")
        self.n_built += 1
        text = ""
        for level in range(len(CUT_LEVELS)):
            text = render_input(self.schema(example.db_path, level), example.question, example.evidence)
            if self._fits(self.instruction + "\n" + text):
                if level:
                    self.n_cut += 1
                return self.instruction, text
        self.n_cut += 1
        self.n_over_budget += 1
        return self.instruction, text

    def report(self) -> str:
        """One line on how many prompts were shortened; logged as a warning when any were."""
        budget = f"max_chars={self.max_chars}" + (f", max_tokens={self.max_tokens}" if self.max_tokens else "")
        msg = f"{self.n_cut} of {self.n_built} prompts were shortened to fit {budget}"
        if self.n_over_budget:
            msg += f"; {self.n_over_budget} still exceed it with bare DDL"
        return msg

    def warn_if_cut(self) -> None:
        if self.n_cut:
            logger.warning(self.report())

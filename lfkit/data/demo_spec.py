"""The demo corpus's data file: the compact Lahman schema and the question templates.

Both live in ``demo_corpus.yaml`` next to this module (shipped in the wheel); its header
comment describes every field. :func:`load_demo_spec` reads and checks it; the module
constants :data:`DEMO_TABLES` and :data:`TEMPLATES` hold the shipped file's content.

Rules checked on load (a :class:`DemoSpecError` names the file, the entry and the field):

- the top level has exactly ``tables`` and ``templates``, each a non-empty list;
- a table has ``name`` and ``columns`` (each with a ``name``), optional ``primary_key``,
  ``foreign_keys`` (``{columns, references, ref_columns}``) and ``indexes``; no other keys;
- a template has ``key`` (unique), ``difficulty`` (one of :data:`DIFFICULTIES`), ``slots``,
  ``phrasings`` (at least one), ``dev_phrasings``, ``sql``, optional ``evidence`` and
  ``tie_sql``; no other keys. Whether ``slots`` names a known slot kind is checked where
  slot kinds live (:mod:`lfkit.data.demo_questions`).
"""

from __future__ import annotations

import functools
import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lfkit.errors import LfkitError

DIFFICULTIES = ("simple", "moderate", "challenging")
SPEC_FILE = "demo_corpus.yaml"


class DemoSpecError(LfkitError):
    """The demo corpus data file is malformed; the message names the file, the entry and the field."""


@dataclass(frozen=True)
class ColumnSpec:
    """One column of the compact demo schema, with its BIRD-style description.

    ``data_format`` overrides the SQLite type in the description CSV (``debut`` is a date stored as text).
    """

    name: str
    description: str = ""
    value_description: str = ""
    data_format: str = ""


@dataclass(frozen=True)
class TableSpec:
    """One table of the compact demo schema: columns, keys and the indexes gold SQL needs.

    ``foreign_keys`` holds ``(columns, referenced table, referenced columns)`` triples.
    """

    name: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[tuple[tuple[str, ...], str, tuple[str, ...]], ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class QuestionTemplate:
    """A question family: phrasings, BIRD-style evidence and gold SQL over the values of one slot kind.

    ``phrasings`` serve train and dev, ``dev_phrasings`` dev only; ``tie_sql`` (optional)
    returns the two best values of the ORDER BY key, and a tie for first drops the question.
    """

    key: str
    difficulty: str
    slots: str  # a slot kind: a key of lfkit.data.demo_questions.SLOT_KINDS
    phrasings: tuple[str, ...]
    dev_phrasings: tuple[str, ...]
    sql: str
    evidence: str = ""
    tie_sql: str = ""

    def __post_init__(self) -> None:
        if self.difficulty not in DIFFICULTIES:
            raise ValueError(f"template {self.key}: difficulty must be one of {DIFFICULTIES}")
        if not self.phrasings:
            raise ValueError(f"template {self.key}: needs at least one shared phrasing")


@dataclass(frozen=True)
class DemoSpec:
    """The content of the data file: tables in creation order, templates in file order."""

    tables: tuple[TableSpec, ...]
    templates: tuple[QuestionTemplate, ...]


class _Reader:
    """Typed field access that reports ``file: where: field: problem``."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> DemoSpecError:
        return DemoSpecError(f"{self.source}: {where}: {message}")

    def mapping(self, value: Any, where: str, required: set[str], optional: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {type(value).__name__}")
        missing = sorted(required - value.keys())
        if missing:
            raise self.fail(where, f"missing field(s) {', '.join(missing)}")
        unknown = sorted(value.keys() - required - optional, key=str)
        if unknown:
            raise self.fail(where, f"unknown field(s) {', '.join(map(str, unknown))}")
        return value

    def text(self, value: Any, where: str, field: str) -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"{field}: expected text, got {type(value).__name__}")
        return value

    def texts(self, value: Any, where: str, field: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(where, f"{field}: expected a list, got {type(value).__name__}")
        return tuple(self.text(v, where, f"{field}[{i}]") for i, v in enumerate(value))

    def items(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list) or not value:
            raise self.fail(where, "expected a non-empty list")
        return value


def _table(r: _Reader, raw: Any, where: str) -> TableSpec:
    t = r.mapping(raw, where, {"name", "columns"}, {"primary_key", "foreign_keys", "indexes"})
    name = r.text(t["name"], where, "name")
    where = f"table {name}"
    columns = []
    for i, c in enumerate(r.items(t["columns"], f"{where}: columns")):
        c = r.mapping(c, f"{where}: columns[{i}]", {"name"}, {"description", "value_description", "data_format"})
        fields = {k: r.text(v, f"{where}: columns[{i}]", k) for k, v in c.items()}
        columns.append(ColumnSpec(**fields))
    foreign_keys = []
    for i, fk in enumerate(t.get("foreign_keys") or []):
        at = f"{where}: foreign_keys[{i}]"
        fk = r.mapping(fk, at, {"columns", "references", "ref_columns"}, set())
        foreign_keys.append(
            (
                r.texts(fk["columns"], at, "columns"),
                r.text(fk["references"], at, "references"),
                r.texts(fk["ref_columns"], at, "ref_columns"),
            )
        )
    return TableSpec(
        name=name,
        columns=tuple(columns),
        primary_key=r.texts(t.get("primary_key") or [], where, "primary_key"),
        foreign_keys=tuple(foreign_keys),
        indexes=tuple(r.texts(ix, where, f"indexes[{i}]") for i, ix in enumerate(t.get("indexes") or [])),
    )


def _template(r: _Reader, raw: Any, where: str) -> QuestionTemplate:
    t = r.mapping(
        raw, where, {"key", "difficulty", "slots", "phrasings", "dev_phrasings", "sql"}, {"evidence", "tie_sql"}
    )
    key = r.text(t["key"], where, "key")
    where = f"template {key}"
    difficulty = r.text(t["difficulty"], where, "difficulty")
    if difficulty not in DIFFICULTIES:
        raise r.fail(where, f"difficulty: {difficulty!r} is not one of {', '.join(DIFFICULTIES)}")
    phrasings = r.texts(t["phrasings"], where, "phrasings")
    if not phrasings:
        raise r.fail(where, "phrasings: needs at least one phrasing shared by train and dev")
    return QuestionTemplate(
        key=key,
        difficulty=difficulty,
        slots=r.text(t["slots"], where, "slots"),
        phrasings=phrasings,
        dev_phrasings=r.texts(t["dev_phrasings"], where, "dev_phrasings"),
        sql=r.text(t["sql"], where, "sql"),
        evidence=r.text(t.get("evidence", ""), where, "evidence"),
        tie_sql=r.text(t.get("tie_sql", ""), where, "tie_sql"),
    )


def parse_demo_spec(text: str, source: str = SPEC_FILE) -> DemoSpec:
    """Parse and check the YAML text of a demo corpus data file (rules in the module docstring)."""
    r = _Reader(source)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DemoSpecError(f"{source}: invalid YAML: {exc}") from exc
    data = r.mapping(data, "top level", {"tables", "templates"}, set())
    tables = tuple(_table(r, t, f"tables[{i}]") for i, t in enumerate(r.items(data["tables"], "tables")))
    templates = tuple(_template(r, t, f"templates[{i}]") for i, t in enumerate(r.items(data["templates"], "templates")))
    seen: set[str] = set()
    for t in templates:
        if t.key in seen:
            raise r.fail(f"template {t.key}", "key: used by an earlier template")
        seen.add(t.key)
    return DemoSpec(tables, templates)


def load_demo_spec(path: str | os.PathLike[str] | None = None) -> DemoSpec:
    """Read a demo corpus data file; ``None`` reads the one shipped with lfkit."""
    if path is None:
        return _shipped_spec()
    path = Path(path)
    return parse_demo_spec(path.read_text(encoding="utf-8"), str(path))


@functools.cache
def _shipped_spec() -> DemoSpec:
    resource = importlib.resources.files("lfkit.data") / SPEC_FILE
    return parse_demo_spec(resource.read_text(encoding="utf-8"), str(resource))


DEMO_TABLES: tuple[TableSpec, ...] = _shipped_spec().tables
TEMPLATES: tuple[QuestionTemplate, ...] = _shipped_spec().templates

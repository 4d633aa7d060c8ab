"""The issue detectors on hand-written SQL: each detector fires on its positive case and stays
silent on a close negative; the registry refuses duplicates; bad SQL is an issue, never an error."""

from __future__ import annotations

import doctest
import importlib
import logging
import re
from pathlib import Path

import pytest

import lfkit.sql.issues as issues_module
from lfkit.errors import LfkitError
from lfkit.sql.issues import (
    DETECTORS,
    LFKIT_ADDITIONS,
    SEED_SEVERITIES,
    Issue,
    IssueRegistryError,
    detect_issues,
    mentioned_issues,
    parse_query,
    register_detector,
    unregister_detector,
)

SUBMODULES = ("registry", "parse", "helpers", "detectors")


def names(sql: str, **kwargs) -> list[str]:
    return [i.name for i in detect_issues(sql, **kwargs)]


# (detector, positive SQL, negative SQL, question for both or None). Every other detector must
# stay silent on both, so each case isolates one rule.
CASES = [
    ("missing_where", "SELECT name FROM singer", "SELECT name FROM singer WHERE age > 30", None),
    (
        "missing_time_range",
        "SELECT COUNT(*) FROM concert WHERE venue = 'Arena'",
        "SELECT COUNT(*) FROM concert WHERE venue = 'Arena' AND year = 2020",
        "How many concerts were held at the Arena in 2020?",
    ),
    (
        "incorrect_join",
        "SELECT s.name FROM singer AS s JOIN concert AS c ON s.singer_id = s.age WHERE c.year = 2020",
        "SELECT s.name FROM singer AS s JOIN concert AS c ON s.singer_id = c.singer_id WHERE c.year = 2020",
        None,
    ),
    (
        "missing_join_condition",
        "SELECT s.name FROM singer AS s JOIN concert AS c WHERE c.year = 2020",
        "SELECT s.name FROM singer AS s JOIN concert AS c USING (singer_id) WHERE c.year = 2020",
        None,
    ),
    (
        "inconsistent_alias",
        "SELECT singer.name FROM singer AS s WHERE s.age > 30",
        "SELECT s.name FROM singer AS s WHERE s.age > 30",
        None,
    ),
    (
        "missing_group_by",
        "SELECT country, COUNT(*) FROM singer WHERE age > 30",
        "SELECT country, COUNT(*) FROM singer WHERE age > 30 GROUP BY country",
        None,
    ),
    (
        "unclosed_parenthesis",
        "SELECT name FROM singer WHERE (age > 30",
        "SELECT name FROM singer WHERE (age > 30)",
        None,
    ),
    (
        "empty_in_clause",
        "SELECT name FROM singer WHERE country IN ()",
        "SELECT name FROM singer WHERE country IN ('a')",
        None,
    ),
    (
        "invalid_date_format",
        "SELECT venue FROM concert WHERE day > '2020/01/05'",
        "SELECT venue FROM concert WHERE day > '2020-01-05'",
        None,
    ),
    (
        "multiple_tables_no_join",
        "SELECT s.name FROM singer AS s, concert AS c WHERE c.year = 2020",
        "SELECT s.name FROM singer AS s, concert AS c WHERE c.singer_id = s.singer_id AND c.year = 2020",
        None,
    ),
    (
        "order_by_without_limit",
        "SELECT name FROM singer WHERE age > 30 ORDER BY age",
        "SELECT name FROM singer WHERE age > 30 ORDER BY age LIMIT 1",
        None,
    ),
    ("invalid_sql", "SELECT name FROM singer WHERE age >", "SELECT name FROM singer WHERE age > 1", None),
]


@pytest.mark.parametrize(("name", "positive", "negative", "question"), CASES, ids=[c[0] for c in CASES])
def test_each_detector_positive_and_negative(name: str, positive: str, negative: str, question: str | None) -> None:
    assert names(positive, question=question) == [name]
    assert names(negative, question=question) == []


def design_severities() -> dict[str, float]:
    """The seed's detectors and severities as docs/DESIGN.md lists them ("name 0.3, other 0.4, ...")."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "DESIGN.md").read_text(encoding="utf-8")
    start = text.index("issue detectors with severities")
    paragraph = text[start : text.index("\n- ", start)]
    return {m[1]: float(m[2]) for m in re.finditer(r"([a-z_]+) ([0-9.]+)[,.]", paragraph)}


def test_registry_severities_are_the_ones_design_md_documents() -> None:
    documented = design_severities()
    assert len(documented) == 11  # the parse found the whole list
    assert documented == SEED_SEVERITIES
    assert {n: DETECTORS[n].severity for n in documented} == documented
    assert set(DETECTORS) == set(documented) | LFKIT_ADDITIONS
    # every built-in's severity is the one its Issue carries
    for case_name, positive, _, question in CASES:
        (issue,) = detect_issues(positive, question=question)
        assert issue.severity == DETECTORS[case_name].severity
    for det in DETECTORS.values():  # every rule is stated in its docstring
        assert det.detect.__doc__ and len(det.detect.__doc__) > 40


def test_seed_severities_leave_out_later_registrations() -> None:
    @register_detector("later_one_test", 0.1)
    def _later(parsed):
        """Never fires."""
        return None

    try:
        reloaded = importlib.reload(issues_module)
        assert "later_one_test" in reloaded.DETECTORS and "later_one_test" not in reloaded.SEED_SEVERITIES
    finally:
        unregister_detector("later_one_test")


def test_issue_carries_severity_and_detail() -> None:
    (issue,) = detect_issues("SELECT country, COUNT(*) FROM singer WHERE age > 3")
    assert issue == Issue("missing_group_by", 0.35, "country beside an aggregate without GROUP BY")


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        # missing_where: aggregation, LIMIT, GROUP BY, a CTE source and a set operation's LIMIT exempt
        ("SELECT COUNT(*) FROM singer", []),
        ("SELECT name FROM singer ORDER BY age DESC LIMIT 1", []),
        ("SELECT country FROM singer GROUP BY country", []),
        ("WITH old AS (SELECT * FROM singer WHERE age > 40) SELECT name FROM old", []),
        ("SELECT name FROM singer UNION SELECT venue FROM concert LIMIT 5", []),
        ("SELECT name FROM singer UNION SELECT venue FROM concert", ["missing_where"]),
        ("SELECT 1", []),
        # joins: CROSS and NATURAL are deliberate; ON TRUE / ON 1 = 1 / a filter-only ON are wrong
        ("SELECT s.name FROM singer AS s CROSS JOIN concert AS c WHERE c.year = 1", []),
        ("SELECT name FROM singer NATURAL JOIN concert WHERE year = 1", []),
        ("SELECT s.name FROM singer AS s JOIN concert AS c ON TRUE WHERE c.year = 1", ["incorrect_join"]),
        ("SELECT s.name FROM singer AS s JOIN concert AS c ON 1 = 1 WHERE c.year = 1", ["incorrect_join"]),
        ("SELECT s.name FROM singer AS s JOIN concert AS c ON c.year = 2020 WHERE s.age > 1", ["incorrect_join"]),
        ("SELECT s.name FROM singer AS s LEFT JOIN concert AS c WHERE s.age > 1", ["missing_join_condition"]),
        # unqualified columns get the benefit of the doubt
        ("SELECT name FROM singer JOIN concert ON singer_id = concert_id WHERE year = 1", []),
        # aliases: a correlated subquery sees the outer alias; an alias declared twice fires
        (
            "SELECT s.name FROM singer AS s WHERE EXISTS (SELECT 1 FROM concert AS c WHERE c.singer_id = s.singer_id)",
            [],
        ),
        ("SELECT x.name FROM singer AS s WHERE s.age > 1", ["inconsistent_alias"]),
        (
            "SELECT s.name FROM singer AS s JOIN concert AS s ON s.a = s.b WHERE s.age > 1",
            ["incorrect_join", "inconsistent_alias"],
        ),
        # missing_group_by: a window aggregate is not an aggregate; SQLite's bare-column MAX fires
        ("SELECT name, COUNT(*) OVER () FROM singer WHERE age > 1", []),
        ("SELECT name, MAX(age) FROM singer WHERE age > 1", ["missing_group_by"]),
        ("SELECT COUNT(*), AVG(age) FROM singer", []),
        # parentheses: in string literals they do not count; a stray ) does
        ("SELECT name FROM singer WHERE name = '(' ", []),
        ("SELECT name) FROM singer WHERE age > 1", ["unclosed_parenthesis"]),
        # empty IN on SQL that does not parse still fires
        ("SELECT name FROM singer WHERE age NOT IN () AND (", ["unclosed_parenthesis", "empty_in_clause"]),
        # dates: ISO and year-month and LIKE prefixes are fine; impossible dates and D-M-Y are not
        ("SELECT venue FROM concert WHERE strftime('%Y-%m', day) = '2020-02' OR day LIKE '2021-01%'", []),
        ("SELECT venue FROM concert WHERE day BETWEEN '2020-01-01 08:00' AND '2020-01-31T23:59:59'", []),
        ("SELECT venue FROM concert WHERE day = '2020-02-30'", ["invalid_date_format"]),
        ("SELECT venue FROM concert WHERE day = '05-01-2020'", ["invalid_date_format"]),
        ("SELECT venue FROM concert WHERE day = '2020年1月5日'", ["invalid_date_format"]),
        ("SELECT venue FROM concert WHERE version = '1.2.3'", []),
        # comma lists: three tables, one unlinked; an explicit JOIN counts as linked
        ("SELECT a.x FROM a, b, c WHERE a.id = b.id", ["multiple_tables_no_join"]),
        ("SELECT a.x FROM a, b JOIN c ON c.id = b.id WHERE a.id = b.id", []),
        # ORDER BY: in a subquery without LIMIT fires; a window's ORDER BY does not
        ("SELECT name FROM (SELECT name FROM singer ORDER BY age) LIMIT 3", ["order_by_without_limit"]),
        ("SELECT name, RANK() OVER (ORDER BY age) FROM singer LIMIT 3", []),
    ],
)
def test_detector_edges(sql: str, expected: list[str]) -> None:
    assert names(sql) == expected


@pytest.mark.parametrize(
    ("sql", "detail"),
    [
        ("", "empty SQL"),
        ("   \n", "empty SQL"),
        ("-- nothing", "empty SQL (only comments)"),
        ("SELECT 'unterminated", None),
        ("SELECT 1; SELECT 2", "2 statements"),
        ("DROP TABLE singer", "not a query: Drop"),
        ("UPDATE singer SET age = 1", "not a query: Update"),
        ("I think the answer is no", None),
        ("SELECT FROM singer", "a SELECT with an empty select list"),
        ("SELECT name FROM singer WHERE", None),
    ],
)
def test_unparsable_sql_is_an_invalid_sql_issue(sql: str, detail: str | None) -> None:
    found = detect_issues(sql)
    assert [i.name for i in found] == ["invalid_sql"]
    assert found[0].severity == 1.0
    if detail is not None:
        assert found[0].detail == detail


def test_unbalanced_parenthesis_explains_the_parse_failure() -> None:
    # the paren issue replaces invalid_sql: the model should name one problem, not two
    assert names("SELECT COUNT(* FROM singer") == ["unclosed_parenthesis"]
    assert detect_issues("SELECT ((a FROM t")[0].detail == "2 unclosed ("


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        "(((((",
        ")))",
        "SELECT " * 500,
        "'" * 7,
        "SELECT * FROM t WHERE a IN (SELECT",
        "\x00\x01",
        "；",
        "SELECT 1 /*",
    ],
)
def test_garbage_never_raises(garbage) -> None:
    found = detect_issues(garbage)
    assert found and all(isinstance(i, Issue) for i in found)


def test_question_controls_missing_time_range() -> None:
    sql = "SELECT COUNT(*) FROM leads"
    assert "missing_time_range" not in names(sql)  # no question, no check
    assert names(sql, question="How many leads are there?") == []
    assert names(sql, question="今年的总线索量是多少？") == ["missing_time_range"]
    assert names(sql, question="How many leads came in last month?") == ["missing_time_range"]
    # a date function, a date literal or a temporal column in the WHERE each count as a time filter
    for where in ("strftime('%Y', created) = '2025'", "x >= '2025-01-01'", "created_at > 0", "yearID = 2004"):
        assert names(f"{sql} WHERE {where}", question="今年的总线索量是多少？") == []
    # asking for a date is not a time range; a year prefix in a LIKE is a time filter
    assert names("SELECT debut FROM people WHERE name = 'Fox'", question="On what date did Fox debut?") == []
    assert names("SELECT COUNT(*) FROM people WHERE debut LIKE '1992%'", question="Debuts in 1992?") == []
    assert names("SELECT COUNT(*) FROM people WHERE a = 1", question="Debuts in the 1990s?") == ["missing_time_range"]
    # a time mentioned only in the select list is no filter
    assert names("SELECT MAX(yearID) FROM leads WHERE a = 1", question="Leads in 2004?") == ["missing_time_range"]


def test_schema_resolves_unqualified_columns() -> None:
    schema = {"singer": {"singer_id": "INTEGER", "name": "TEXT", "debut": "DATE"}, "concert": ["concert_id", "sid"]}
    linked = "SELECT name FROM singer, concert WHERE singer_id = sid"
    unlinked = "SELECT name FROM singer, concert WHERE singer_id = name"
    assert names(linked, schema=schema) == []
    assert names(unlinked, schema=schema) == ["multiple_tables_no_join"]
    assert names(unlinked) == []  # without a schema the unqualified columns may link anything
    # a DATE-typed column is a time filter even when its name says nothing about time
    assert names("SELECT name FROM singer WHERE debut > 0", schema=schema, question="Who debuted in 2001?") == []
    assert names("SELECT name FROM singer WHERE name > 'a'", schema=schema, question="Who debuted in 2001?") == [
        "missing_time_range"
    ]


def test_parse_query_keeps_join_syntax_apart() -> None:
    comma = parse_query("SELECT 1 FROM a, b").tree.args["joins"][0]
    cross = parse_query("SELECT 1 FROM a CROSS JOIN b").tree.args["joins"][0]
    bare = parse_query("SELECT 1 FROM a JOIN b").tree.args["joins"][0]
    assert comma.meta.get("comma") and not cross.meta.get("comma")
    assert bare.args.get("on") is None  # stock sqlite parsing would invent ON TRUE


def test_register_detector_extends_and_refuses_duplicates() -> None:
    @register_detector("select_star_test", 0.15, mentions=["select star"])
    def _star(parsed):
        """A ``*`` projection."""
        return "SELECT *" if parsed.tree.is_star else None

    try:
        found = detect_issues("SELECT * FROM singer WHERE age > 3")
        assert found == [Issue("select_star_test", 0.15, "SELECT *")]
        assert "select_star_test" in mentioned_issues("avoid SELECT STAR")
        with pytest.raises(IssueRegistryError, match="'select_star_test' is already registered") as err:
            register_detector("select_star_test", 0.2)
        assert isinstance(err.value, LfkitError)
        with pytest.raises(IssueRegistryError, match="already registered"):
            register_detector("missing_where", 0.9)
    finally:
        unregister_detector("select_star_test")
    assert names("SELECT * FROM singer WHERE age > 3") == []
    with pytest.raises(IssueRegistryError, match="no issue detector named 'select_star_test'"):
        unregister_detector("select_star_test")


@pytest.mark.parametrize(("name", "severity"), [("Bad Name", 0.1), ("ok_name", 0), ("ok_name", 1.5), ("ok_name", True)])
def test_register_detector_validates(name: str, severity) -> None:
    with pytest.raises(IssueRegistryError):
        register_detector(name, severity)
    assert "ok_name" not in DETECTORS


def test_a_failing_detector_is_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    @register_detector("always_fails_test", 0.1)
    def _boom(parsed):
        """Raises."""
        raise RuntimeError("bug")

    try:
        with caplog.at_level(logging.WARNING, logger="lfkit.sql.issues"):
            assert names("SELECT name FROM singer") == ["missing_where"]
        assert "always_fails_test" in caplog.text
    finally:
        unregister_detector("always_fails_test")


def test_mentioned_issues_matches_spellings() -> None:
    assert mentioned_issues("missing_where, Missing  GROUP BY, 括号不匹配, 缺少 WHERE") == {
        "missing_where",
        "missing_group_by",
        "unclosed_parenthesis",
    }
    assert mentioned_issues("The query joins singer and concert on singer_id.") == set()
    assert mentioned_issues(None) == set()


def test_doctests() -> None:
    attempted = 0
    for module in (issues_module, *(importlib.import_module(f"lfkit.sql.issues.{m}") for m in SUBMODULES)):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__
        attempted += result.attempted
    assert attempted >= 10

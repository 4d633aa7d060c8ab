"""The one SQL extractor: model text -> the SQL statement to execute.

Rules, applied in order (documented because every stage depends on them):

1. Reasoning is dropped: only the text after the last ``</think>`` is used when one is present;
   a ``<think>`` never closed (generation cut off while reasoning) drops everything after it.
2. ``<answer>...</answer>``: the content of the last answer tag (an unclosed ``<answer>`` at
   the end of a truncated generation runs to the end of the text); rules 3-4 then apply inside.
3. Fenced blocks (```` ```sql ````, ```` ```sqlite ````, or a bare ```` ``` ````): the **last closed**
   block wins, because models that revise their answer put the final version last. A fence left
   open by truncation (``max_new_tokens``) runs to the end of the text and is used only when no
   SQL block before it was closed: a half-written second attempt does not replace a finished
   first one. The block content is returned verbatim (stripped), so
   ``extract_sql(format_sql_answer(sql)) == sql``.
4. Otherwise the **first** statement starting with SELECT/WITH (at a line start, optionally after
   a label such as ``SQL:``), cut at its terminating ``;`` (kept) or before trailing explanation:
   the longest run of lines that sqlglot parses as SQL.

Returns ``""`` when nothing looks like SQL.

Greedy evaluation decodes with :data:`SQL_FENCE_STOP`, so its text ends right after the first
closed fence; by rule 3 that text extracts exactly the SQL of that fence. Without the stop,
a model that writes a second fenced query afterwards is scored on the second one (rule 3 on
the full text): the stop decides which answer counts, the extractor does not second-guess it.
"""

from __future__ import annotations

import re

# Stop strings for greedy evaluation: decoding ends at the end of the FIRST complete fence.
# A closing fence is ``` on a line of its own, i.e. "\n```" then a newline; "```" alone would
# stop at the opening ```sql, and "\n```" at an opening fence that follows a line of prose
# ("Here it is:\n```sql\n"). A closing ``` that is the last thing the model writes is ended by
# its end-of-sequence token anyway. The stop string stays in the text (lfkit.generate's rule),
# so a stopped answer is a complete fence followed by one newline. Limits: a bare ``` opening
# fence after a line of prose ("SQL:\n```\n") also matches; reasoning models that write
# fences inside <think> must be evaluated without it (``--no-stop``).
SQL_FENCE_STOP: tuple[str, ...] = ("\n```\n",)

_THINK_END = re.compile(r"</think>", re.IGNORECASE)
_THINK_START = re.compile(r"<think>", re.IGNORECASE)
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|\Z)", re.IGNORECASE | re.DOTALL)
# A fence opens at a line start with ``` and an optional language tag; it closes at ``` starting or
# ending a line (``` inside a string literal does not close it), or at the end of the text.
_FENCE = re.compile(
    r"(?:^|\n)[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(\n[ \t]*```|```[ \t]*(?=\n|\Z)|\Z)", re.DOTALL
)
# A one-line fence: ```sql SELECT 1```
_INLINE_FENCE = re.compile(r"```(?:sql|sqlite)?[ \t]+([^`\n]+?)[ \t]*```", re.IGNORECASE)
_SQL_LANGS = {"", "sql", "sqlite", "sqlite3", "postgresql", "mysql", "tsql", "plsql"}
_LABEL = r"(?:(?:final\s+)?(?:sql(?:\s+query)?|query|answer)\s*:\s*)"
_START_LINE = re.compile(rf"^[ \t>*#-]*{_LABEL}?(?=(?:select|with)\b)", re.IGNORECASE | re.MULTILINE)
_START_LABEL = re.compile(rf"{_LABEL}(?=(?:select|with)\b)", re.IGNORECASE)
_START_ANY = re.compile(r"\b(?=(?:select|with)\s)", re.IGNORECASE)


def _cut_at_semicolon(text: str) -> tuple[str, bool]:
    """Text up to and including the first ``;`` outside quotes and comments."""
    quote: str | None = None
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
        elif ch == "[":
            quote = "]"
        elif text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        elif ch == ";":
            return text[: i + 1], True
        i += 1
    return text, False


def _parses(sql: str) -> bool:
    import sqlglot
    from sqlglot import exp

    try:
        trees = sqlglot.parse(sql, read="sqlite")
    except Exception:  # sqlglot raises ParseError/TokenError and occasionally others on prose
        return False
    return len(trees) == 1 and trees[0] is not None and not isinstance(trees[0], exp.Command)


def _statement_at(text: str) -> tuple[str, bool]:
    """The statement starting at ``text``: (sql, parses)."""
    stmt, terminated = _cut_at_semicolon(text)
    if terminated:
        return stmt.strip(), True
    # Stop at the first blank line, then drop trailing explanation lines that break parsing.
    block = re.split(r"\n[ \t]*\n", stmt.strip(), maxsplit=1)[0]
    lines = block.splitlines()
    for end in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:end]).strip()
        if _parses(candidate):
            return candidate, True
    return (lines[0].strip() if lines else ""), False


def _bare_statement(text: str) -> str:
    fallback = ""
    for pattern in (_START_LINE, _START_LABEL, _START_ANY):
        for match in pattern.finditer(text):
            sql, parses = _statement_at(text[match.end() :])
            if parses:
                return sql
            if pattern is not _START_ANY:  # "select" inside prose is not a statement
                fallback = fallback or sql
    return fallback


def _from_region(text: str) -> str:
    blocks = [(body.strip(), bool(close)) for lang, body, close in _FENCE.findall(text) if lang.lower() in _SQL_LANGS]
    closed = [body for body, is_closed in blocks if is_closed and body]
    if closed:
        return closed[-1]
    for body, _ in reversed(blocks):  # only a fence left open by truncation
        if body:
            return body
    inline = _INLINE_FENCE.findall(text)
    if inline:
        return inline[-1].strip()
    return _bare_statement(text)


def extract_sql(text: str | None) -> str:
    """Extract the SQL statement from a model completion (see the module docstring for rules).

    >>> extract_sql("```sql\\nSELECT 1\\n```")
    'SELECT 1'

    A greedy answer stopped by :data:`SQL_FENCE_STOP` (the stop string kept) is that fence's SQL:

    >>> extract_sql("Use this:\\n```sql\\nSELECT a FROM t\\n```\\n")
    'SELECT a FROM t'

    Full texts: the last closed fence wins; an unclosed one only when none closed before it:

    >>> extract_sql("Draft:\\n```sql\\nSELECT 1\\n```\\nFixed:\\n```sql\\nSELECT 2\\n```\\nDone.")
    'SELECT 2'
    >>> extract_sql("```sql\\nSELECT 1\\n```\\nOr:\\n```sql\\nSELECT 2 FROM")
    'SELECT 1'
    >>> extract_sql("```sql\\nSELECT 2 FROM")
    'SELECT 2 FROM'
    >>> extract_sql("<think>try select x</think>\\n<answer>SELECT name FROM t</answer>")
    'SELECT name FROM t'
    >>> extract_sql("SQL: SELECT a FROM t\\nThis returns every a.")
    'SELECT a FROM t'
    """
    if not text:
        return ""
    ends = list(_THINK_END.finditer(text))
    if ends:
        text = text[ends[-1].end() :]
    opened = _THINK_START.search(text)
    if opened:  # reasoning that never finished holds no answer
        text = text[: opened.start()]
    answers = _ANSWER.findall(text)
    if answers:
        for body in reversed(answers):
            sql = _from_region(body)
            if sql:
                return sql
        return ""
    return _from_region(text)

"""Execution feedback and the revision prompt of a wrong node.

A wrong node's children answer a *revision prompt*: the question prompt exactly as SFT
built it (same instruction, same schema/evidence/question input from
:class:`lfkit.data.prompts.SchemaPromptBuilder`), followed by the wrong SQL and **its own**
execution outcome. Unlike ReSQLver's feedback (``tree/sql_utils.py``), which prints gold's
result rows ("Expected result sample", "Missing rows"), this feedback is built from the
candidate's :class:`~lfkit.sql.ExecResult` alone: the model sees only what it could see at
inference. Optionally (``gold_row_count``) the number of rows gold returns is added --
a count, never a row.
"""

from __future__ import annotations

from lfkit.sql import ExecResult

SHOWN_ROWS = 3  # first rows of the wrong query's result shown to the model
VALUE_CHARS = 60  # each shown value is cut to this many characters

REVISION_HEADER = "A previous answer to this question was incorrect."


def _value(v: object) -> str:
    if isinstance(v, bytes):
        return "<blob>"
    text = repr(v)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 3] + "..."


def _row(row: tuple) -> str:
    return "(" + ", ".join(_value(v) for v in row) + ")"


def execution_feedback(result: ExecResult | None, gold_row_count: int | None = None) -> str:
    """What the wrong SQL did when it ran, from its own result only.

    ``result`` None means no SQL could be extracted from the answer. ``gold_row_count``
    (optional) adds the number of rows the correct query returns.

    >>> execution_feedback(ExecResult("error", error="no such column: nme"))
    'The query failed with an error: no such column: nme'
    >>> execution_feedback(ExecResult("ok", rows=()))
    'The query ran and returned no rows.'
    >>> print(execution_feedback(ExecResult("ok", rows=(("Ann", 30), ("Bob", 41))), gold_row_count=1))
    The query ran and returned 2 rows with 2 columns. Its first rows:
    ('Ann', 30)
    ('Bob', 41)
    The correct result has 1 row.
    """
    if result is None:
        text = "No SQL query could be found in the answer."
    elif result.status == "error":
        text = f"The query failed with an error: {result.error}"
    elif result.status == "timeout":
        text = f"The query did not finish: {result.error}"
    elif result.status == "too_many_rows":
        text = f"The query returned too many rows ({result.error})."
    elif not result.rows:
        text = "The query ran and returned no rows."
    else:
        n, cols = len(result.rows), len(result.rows[0])
        head = f"The query ran and returned {n} row{'s' if n != 1 else ''} with {cols} column{'s' if cols != 1 else ''}"
        shown = result.rows[:SHOWN_ROWS]
        label = "Its first rows" if n > len(shown) or n > 1 else "Its row"
        text = f"{head}. {label}:\n" + "\n".join(_row(r) for r in shown)
    if gold_row_count is not None:
        text += f"\nThe correct result has {gold_row_count} row{'s' if gold_row_count != 1 else ''}."
    return text


def revision_input(question_input: str, wrong_sql: str, feedback: str) -> str:
    """The alpaca ``input`` of a revision prompt: the SFT question input, then the wrong SQL and its feedback."""
    shown = wrong_sql.replace("```", "").strip() or "(no SQL)"  # a fence inside would end the block early
    return (
        f"{question_input}\n\n{REVISION_HEADER}\n"
        f"Incorrect query:\n```sql\n{shown}\n```\n"
        f"Execution feedback:\n{feedback}\n\n"
        "Write a corrected query."
    )


def revision_chat(instruction: str, question_input: str, wrong_sql: str, feedback: str) -> list[dict[str, str]]:
    """The chat a wrong node's children answer: the SFT instruction, the extended input (SFT format)."""
    from lfkit.data.prompts import chat_messages

    return chat_messages(instruction, revision_input(question_input, wrong_sql, feedback))


def question_chat(instruction: str, question_input: str) -> list[dict[str, str]]:
    """The depth-1 chat: the SFT row's own prompt, exactly as training saw it."""
    from lfkit.data.prompts import chat_messages

    return chat_messages(instruction, question_input)


__all__ = ["execution_feedback", "question_chat", "revision_chat", "revision_input"]

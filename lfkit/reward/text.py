"""A completion's text, its answer SQL, and dataset columns, as every reward reads them.

``completions`` are strings or, for conversational datasets, lists of ``{"role", "content"}``
messages; ``columns`` are the dataset's other columns, one list entry per completion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from lfkit.sql.extract import extract_sql

# One completion is judged by several rewards, and a group's generations often repeat an
# answer: extraction and parsing run once per distinct text (sqlglot parsing dominates the cost).
CACHE_SIZE = 8192


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):  # multimodal style: [{"type": "text", "text": ...}, ...]
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    return ""


def completion_text(completion: Any) -> str:
    """The text of one completion: a string as is; for a message list, the assistant messages'
    contents joined by newlines (every message's when none has role ``assistant``); else ``""``.

    >>> completion_text([{"role": "assistant", "content": "SELECT 1"}])
    'SELECT 1'
    >>> completion_text(None)
    ''
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    if not isinstance(completion, Sequence):
        return ""
    messages = [m for m in completion if isinstance(m, Mapping)]
    chosen = [m for m in messages if m.get("role") == "assistant"] or messages
    return "\n".join(_content_text(m.get("content")) for m in chosen)


def prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Sequence):
        return "\n".join(_content_text(m.get("content")) for m in prompt if isinstance(m, Mapping))
    return ""


def column_values(columns: Mapping[str, Any], names: Sequence[str], n: int) -> list[Any]:
    """The first of ``names`` present in ``columns`` as a list of ``n`` values (None when absent)."""
    for name in names:
        value = columns.get(name)
        if value is None:
            continue
        if isinstance(value, list | tuple) and len(value) == n:
            return list(value)
        if isinstance(value, str | int | float):  # one value for every completion (direct calls)
            return [value] * n
    return [None] * n


@lru_cache(maxsize=CACHE_SIZE)
def answer_sql(text: str) -> str:
    """:func:`lfkit.sql.extract.extract_sql` of a completion's text, cached."""
    return extract_sql(text)


__all__ = ["CACHE_SIZE", "answer_sql", "column_values", "completion_text", "prompt_text"]

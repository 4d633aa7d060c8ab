"""Format and process rewards for GRPO, with TRL's reward-function signature.

Every function here is ``f(prompts, completions, **columns) -> list[float]`` with a
``__name__`` (TRL logs ``rewards/<__name__>``): one float per completion, in ``[0, 1]``.
``completions`` are strings or, for conversational datasets, lists of ``{"role", "content"}``
messages (the assistant messages' text is used, see :func:`completion_text`). ``columns`` are
the dataset's other columns, one list entry per completion; unknown columns (TRL also passes
``completion_ids`` and ``trainer_state``) are ignored.

The SQL a completion answers with is :func:`lfkit.sql.extract.extract_sql`'s (the one
extractor every stage uses); a completion from which it extracts nothing scores 0 on every
reward below, as does an empty completion. Nothing here raises on a completion's content.

The process-reward recipe's four process rewards (``type``, ``thinking``, ``self_assessment``,
``sql_structure``) never execute SQL and are easy to game on their own: see
:mod:`lfkit.reward.config` for the execution-led default weights.

>>> good = "<think>\\nFirst, read table singer.\\n</think>\\n\\n<answer>SELECT name FROM singer LIMIT 1</answer>"
>>> format_reward(None, [good, "SELECT 1", ""])
[1.0, 0.0, 0.0]
>>> sql_structure_reward(None, [good, "<answer>SELECT name FROM singer</answer>", "<answer>SELECT (</answer>"])
[1.0, 0.7, 0.0]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any

import lfkit.reward.execution  # noqa: F401  (registers ``execution`` first: the built-ins' order)
from lfkit.reward.registry import REWARDS, RewardFunction, register_reward
from lfkit.reward.text import CACHE_SIZE as _CACHE
from lfkit.reward.text import answer_sql, completion_text
from lfkit.reward.text import column_values as _column
from lfkit.reward.text import prompt_text as _prompt_text
from lfkit.sql.complexity import complexity_features, normalize_label
from lfkit.sql.issues import DETECTORS, INVALID_ISSUES, Issue, ParsedSQL, detect_issues, mentioned_issues, parse_query

QUESTION_COLUMNS = ("question", "query")
"""Dataset columns read, in this order, as the question text (for ``missing_time_range``)."""


_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)


def think_text(text: str) -> str | None:
    """The reasoning of a completion: between the first ``<think>`` and the ``</think>`` after it;
    the text before ``</think>`` when no ``<think>`` precedes it (a chat template that prefills
    ``<think>`` in the prompt); None when there is no closed think block.

    >>> think_text("<think> plan </think><answer>x</answer>"), think_text("plan</think>x"), think_text("x")
    (' plan ', 'plan', None)
    """
    close = _THINK_CLOSE.search(text or "")
    if close is None:
        return None
    opened = _THINK_OPEN.search(text, 0, close.start())
    return text[opened.end() : close.start()] if opened else text[: close.start()]


def _question(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


@lru_cache(maxsize=1024)  # ~30 KiB per tree: enough for the distinct answers of one GRPO batch
def _parsed(sql: str) -> ParsedSQL:
    return parse_query(sql)


def _registry_key() -> tuple[int, ...]:
    return tuple(id(d) for d in DETECTORS.values())


@lru_cache(maxsize=_CACHE)
def _issues_cached(sql: str, question: str | None, registry: tuple[int, ...]) -> tuple[Issue, ...]:
    # detectors only read the tree, so the cached parse is shared with the question swapped in
    return tuple(detect_issues(sql, parsed=replace(_parsed(sql), question=question)))


def sql_issues(sql: str, question: str | None = None) -> tuple[Issue, ...]:
    """:func:`lfkit.sql.issues.detect_issues`, cached (cleared when the detector registry changes)."""
    return _issues_cached(sql, question, _registry_key())


@lru_cache(maxsize=_CACHE)
def _identifiers(sql: str) -> frozenset[str]:
    from sqlglot import exp

    tree = _parsed(sql).tree
    if tree is None:
        return frozenset()
    names = {t.name.lower() for t in tree.find_all(exp.Table) if t.name}
    names |= {c.name.lower() for c in tree.find_all(exp.Column) if c.name and c.name != "*"}
    return frozenset(names)


@lru_cache(maxsize=_CACHE)
def _classify(sql: str) -> str:
    return complexity_features(sql, parsed=_parsed(sql)).label


# -- format ------------------------------------------------------------------------------------
_FORMAT = re.compile(r"\A\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*\Z", re.I | re.S)
_ANSWER = re.compile(r"<answer>(?P<answer>.*?)</answer>", re.I | re.S)
_TAG = re.compile(r"</?(?:think|answer)>", re.I)


def format_score(text: str, prompt: str = "") -> float:
    """1.0 for exactly ``<think>T</think>`` then ``<answer>A</answer>`` (whitespace around and
    between allowed, T and A non-empty, no other think/answer tags); 0.5 when the text holds
    exactly one ``<answer>A</answer>`` with non-empty A but is otherwise off; else 0.0.
    When ``prompt`` ends with ``<think>`` (prefilled by the chat template) the completion is
    read as if it started with it.

    >>> format_score("<think>a</think>\\n\\n<answer>SELECT 1</answer>"), format_score("hi <answer>SELECT 1</answer>")
    (1.0, 0.5)
    >>> format_score("<think></think><answer>SELECT 1</answer>"), format_score("<answer></answer>")
    (0.5, 0.0)
    """
    text = text or ""
    if prompt.rstrip().lower().endswith("<think>") and not _THINK_OPEN.match(text.lstrip()):
        text = "<think>" + text
    m = _FORMAT.match(text)
    if m and m["think"].strip() and m["answer"].strip() and not _TAG.search(m["think"] + m["answer"]):
        return 1.0
    answers = _ANSWER.findall(text)
    if len(answers) == 1 and answers[0].strip() and not _TAG.search(answers[0]):
        return 0.5
    return 0.0


@register_reward("format")
def format_reward(prompts: Sequence[Any] | None, completions: Sequence[Any], **columns: Any) -> list[float]:
    """Think/answer structure, :func:`format_score` per completion.

    >>> format_reward([[{"role": "user", "content": "q"}]], [[{"role": "assistant", "content": "<answer>x</answer>"}]])
    [0.5]
    """
    prompts = list(prompts) if prompts is not None else [None] * len(completions)
    return [format_score(completion_text(c), _prompt_text(p)) for p, c in zip(prompts, completions, strict=False)]


# -- type --------------------------------------------------------------------------------------
_TYPE_TAG = re.compile(r"<type>(.*?)</type>", re.I | re.S)


def predicted_type(text: str) -> str | None:
    """The complexity a completion predicts: the last ``<type>X</type>`` tag when X is a known
    label (``sql``, ``多步推理`` or an alias), else :func:`lfkit.sql.complexity.classify_complexity` of its SQL; None
    when it has neither.

    >>> predicted_type("<type>multi-step</type><answer>SELECT 1</answer>"), predicted_type("SELECT 1")
    ('多步推理', 'sql')
    """
    tags = _TYPE_TAG.findall(text or "")
    if tags and normalize_label(tags[-1]):
        return normalize_label(tags[-1])
    sql = answer_sql(text)
    return _classify(sql) if sql else None


@register_reward("type")
def type_reward(prompts: Sequence[Any] | None, completions: Sequence[Any], **columns: Any) -> list[float]:
    """1.0 when :func:`predicted_type` equals the row's ``type`` column (``sql`` / ``多步推理`` or an
    English alias), else 0.0; a row without a known ``type`` scores 0.0.

    >>> two_joins = "<answer>SELECT a.x FROM a JOIN b ON a.i = b.i JOIN c ON b.i = c.i</answer>"
    >>> type_reward(None, [two_joins, two_joins, "<answer>SELECT 1</answer>"], type=["多步推理", "sql", "simple"])
    [1.0, 0.0, 1.0]
    """
    labels = _column(columns, ("type",), len(completions))
    out = []
    for c, label in zip(completions, labels, strict=True):
        want = normalize_label(label)
        out.append(1.0 if want is not None and predicted_type(completion_text(c)) == want else 0.0)
    return out


# -- thinking ----------------------------------------------------------------------------------
_WORD = re.compile(r"[A-Za-z0-9_]+|[\u4e00-\u9fff]")
CONNECTIVES_EN = ("because", "since", "so", "therefore", "thus", "hence", "then", "first", "second", "next", "finally")
CONNECTIVES_EN += ("however", "but", "if")
CONNECTIVES_ZH = ("因为", "所以", "因此", "然后", "首先", "其次", "接着", "最后", "但是", "如果", "由于", "于是")
_CONNECTIVE_EN = re.compile(r"\b(" + "|".join(CONNECTIVES_EN) + r")\b", re.I)
_STEP = re.compile(r"^\s*(?:\d+\s*[.)、:]|[-*•]\s|step\s*\d+|第[一二三四五六七八九十\d]+步)", re.I)
LENGTH_FULL, LENGTH_MAX = 40, 400


def thinking_parts(think: str, sql: str) -> dict[str, float]:
    """The four parts of :func:`thinking_score`, each in ``[0, 1]``.

    * ``length``: with n words (runs of ``[A-Za-z0-9_]`` and single CJK characters),
      ``n / 40`` below 40, 1 from 40 to 400, ``max(0, 1 - (n - 400) / 400)`` above (rambling).
    * ``coverage``: the share of the answer SQL's distinct table and column names (lowercase)
      that the reasoning names as whole words; 0 when the SQL does not parse or names none.
    * ``connectives``: ``min(k / 3, 1)`` with k distinct connectives used (because, since, so,
      therefore, thus, hence, then, first, second, next, finally, however, but, if as whole
      words; 因为 所以 因此 然后 首先 其次 接着 最后 但是 如果 由于 于是).
    * ``structure``: ``min(s / 3, 1)`` with s lines that start a step (``1.``, ``2)``, ``3、``,
      ``-``/``*``/``•`` bullets, ``Step 4``, ``第五步``).

    >>> thinking_parts("1. table singer\\n2. column age\\nso filter", "SELECT name FROM singer WHERE age > 3")
    {'length': 0.2, 'coverage': 0.6666666666666666, 'connectives': 0.3333333333333333, 'structure': 0.6666666666666666}
    """
    n = len(_WORD.findall(think))
    if n < LENGTH_FULL:
        length = n / LENGTH_FULL
    elif n <= LENGTH_MAX:
        length = 1.0
    else:
        length = max(0.0, 1 - (n - LENGTH_MAX) / LENGTH_MAX)
    lowered = think.lower()
    names = _identifiers(sql) if sql else frozenset()
    covered = sum(1 for name in names if re.search(rf"(?<![a-z0-9_]){re.escape(name)}(?![a-z0-9_])", lowered))
    coverage = covered / len(names) if names else 0.0
    used = {m.lower() for m in _CONNECTIVE_EN.findall(think)} | {w for w in CONNECTIVES_ZH if w in think}
    steps = sum(1 for line in think.splitlines() if _STEP.match(line))
    return {
        "length": length,
        "coverage": coverage,
        "connectives": min(len(used) / 3, 1.0),
        "structure": min(steps / 3, 1.0),
    }


def thinking_score(text: str) -> float:
    """The mean of :func:`thinking_parts` of the completion's :func:`think_text` and SQL;
    0.0 without a think block or with an empty one."""
    think = think_text(text)
    if think is None or not think.strip():
        return 0.0
    parts = thinking_parts(think, answer_sql(text))
    return sum(parts.values()) / len(parts)


@register_reward("thinking")
def thinking_reward(prompts: Sequence[Any] | None, completions: Sequence[Any], **columns: Any) -> list[float]:
    """Quality of the ``<think>`` part: :func:`thinking_score` per completion.

    >>> think = "<think>\\n1. table singer\\n2. column age\\nso filter\\n</think>\\n"
    >>> c = think + "<answer>SELECT name FROM singer WHERE age > 3</answer>"
    >>> [round(x, 4) for x in thinking_reward(None, [c, "<answer>SELECT 1</answer>"])]
    [0.4667, 0.0]
    """
    return [thinking_score(completion_text(c)) for c in completions]


# -- self-assessment ---------------------------------------------------------------------------
def self_assessment_score(text: str, question: str | None = None) -> float:
    """Agreement between the issues the reasoning names and those the answer SQL has.

    With D the names of :func:`detect_issues` on the extracted SQL (``question`` enables
    ``missing_time_range``) and M the issues the think text names
    (:func:`lfkit.sql.issues.mentioned_issues`): 1.0 when both are empty, else the Jaccard
    index ``|D ∩ M| / |D ∪ M|``. 0.0 without a think block or without SQL.

    >>> sql = "<answer>SELECT a FROM t WHERE b ORDER BY a</answer>"
    >>> self_assessment_score("<think>ORDER BY needs no limit here</think>" + sql)
    1.0
    >>> self_assessment_score("<think>plain</think><answer>SELECT a FROM t</answer>")  # missing_where unnamed
    0.0
    """
    think = think_text(text)
    sql = answer_sql(text)
    if think is None or not sql:
        return 0.0
    detected = {i.name for i in sql_issues(sql, question)}
    mentioned = mentioned_issues(think)
    if not detected and not mentioned:
        return 1.0
    return len(detected & mentioned) / len(detected | mentioned)


@register_reward("self_assessment")
def self_assessment_reward(prompts: Sequence[Any] | None, completions: Sequence[Any], **columns: Any) -> list[float]:
    """Does the reasoning name the issues the SQL really has: :func:`self_assessment_score`.

    The question text comes from the ``question`` or ``query`` column when present.

    >>> c = "<think>no time range: 缺少时间范围</think><answer>SELECT COUNT(*) FROM t WHERE a = 1</answer>"
    >>> self_assessment_reward(None, [c, c], question=["How many in 2020?", "How many?"])
    [1.0, 0.0]
    """
    questions = _column(columns, QUESTION_COLUMNS, len(completions))
    return [
        self_assessment_score(completion_text(c), _question(q)) for c, q in zip(completions, questions, strict=True)
    ]


# -- SQL structure -----------------------------------------------------------------------------
def sql_structure_score(sql: str, question: str | None = None) -> float:
    """0.0 for an empty or invalid SQL (``invalid_sql`` or ``unclosed_parenthesis``), else
    ``1 - min(1, sum of the detected issues' severities)``.

    >>> sql_structure_score("SELECT country, COUNT(*) FROM singer ORDER BY 2")  # missing_group_by 0.35 + 0.2
    0.45
    """
    if not sql:
        return 0.0
    issues = sql_issues(sql, question)
    if any(i.name in INVALID_ISSUES for i in issues):
        return 0.0
    return round(1.0 - min(1.0, sum(i.severity for i in issues)), 10)


@register_reward("sql_structure")
def sql_structure_reward(prompts: Sequence[Any] | None, completions: Sequence[Any], **columns: Any) -> list[float]:
    """Validity and issue severity of the answer SQL: :func:`sql_structure_score` per completion
    (question from the ``question`` or ``query`` column when present)."""
    questions = _column(columns, QUESTION_COLUMNS, len(completions))
    return [
        sql_structure_score(answer_sql(completion_text(c)), _question(q))
        for c, q in zip(completions, questions, strict=True)
    ]


PROCESS_REWARDS: dict[str, RewardFunction] = {
    name: reward.function for name, reward in REWARDS.items() if reward.import_path.startswith(__name__ + ".")
}
"""The reward functions of this module by name (their ``__name__``), read from the registry."""

__all__ = [
    "PROCESS_REWARDS",
    "QUESTION_COLUMNS",
    "RewardFunction",
    "answer_sql",
    "completion_text",
    "format_reward",
    "format_score",
    "predicted_type",
    "self_assessment_reward",
    "self_assessment_score",
    "sql_issues",
    "sql_structure_reward",
    "sql_structure_score",
    "think_text",
    "thinking_parts",
    "thinking_reward",
    "thinking_score",
    "type_reward",
]

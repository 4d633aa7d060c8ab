"""Pairing chosen with rejected answers: the strategies (a registry), deduplication, edit distance.

A pairing strategy orders a question's candidate pairs (every chosen x every rejected answer
whose texts differ, chosen-major); :func:`select_pairs` then keeps the first ``cap``. A new
strategy is one function registered with :func:`register_pairing`:

>>> @register_pairing("shortest_rejected", default_cap=1)
... def _shortest(pairs, rng):
...     '''The pair with the shortest rejected answer first.'''
...     return sorted(pairs, key=lambda p: len(p[1].text))
>>> a, b, c = Option("SELECT 1", "SELECT 1"), Option("SELECT 22", "SELECT 22"), Option("SELECT 3", "SELECT 3")
>>> [r.text for _, r in select_pairs([a], [b, c], "shortest_rejected", 1, random.Random(0))]
['SELECT 3']
>>> del PAIRINGS["shortest_rejected"]
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lfkit.errors import LfkitError

if TYPE_CHECKING:
    from lfkit.data.rows import Question


class PairingError(LfkitError, ValueError):
    """An unknown pairing strategy, or a refused registration."""


def sql_tokens(sql: str) -> list[str]:
    """Tokens of the normalised SQL (sqlglot), for edit distances between queries."""
    import sqlglot

    from lfkit.sql import normalize_sql

    norm = normalize_sql(sql) if sql else ""
    try:
        return [t.text for t in sqlglot.tokenize(norm, read="sqlite")]
    except Exception:  # sqlglot raises TokenError and others on garbage; fall back to words
        return norm.split()


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two token sequences."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        cur = [i]
        for j, y in enumerate(b, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


@dataclass
class Option:
    """A chosen or rejected answer: the text written to the row, and its SQL."""

    text: str
    sql: str
    label: str = ""


Pairs = list[tuple[Option, Option]]


@dataclass(frozen=True)
class Pairing:
    """A registered strategy: ``order(pairs, rng)`` returns the pairs in preference order;
    ``default_cap`` pairs per question are kept when no cap is given (0 = all)."""

    name: str
    order: Callable[[Pairs, random.Random], Pairs]
    default_cap: int


PAIRINGS: dict[str, Pairing] = {}
"""Pairing strategies by name (``--pairing``)."""


def register_pairing(name: str, *, default_cap: int) -> Callable[[Callable[[Pairs, random.Random], Pairs]], Callable]:
    """Decorator registering ``order(pairs, rng) -> pairs`` as pairing strategy ``name``; a
    duplicate name is refused (:class:`PairingError`)."""
    if name in PAIRINGS:
        raise PairingError(f"pairing {name!r} is already registered")

    def decorate(fn: Callable[[Pairs, random.Random], Pairs]) -> Callable[[Pairs, random.Random], Pairs]:
        PAIRINGS[name] = Pairing(name, fn, default_cap)
        return fn

    return decorate


@register_pairing("all", default_cap=0)
def _all(pairs: Pairs, rng: random.Random) -> Pairs:
    """Every pair, chosen-major order."""
    return pairs


@register_pairing("random", default_cap=1)
def _random(pairs: Pairs, rng: random.Random) -> Pairs:
    """Shuffled by the question's own generator (:func:`pair_rng`)."""
    rng.shuffle(pairs)
    return pairs


@register_pairing("hardest", default_cap=1)
def _hardest(pairs: Pairs, rng: random.Random) -> Pairs:
    """Smallest token edit distance between the two SQL first (stable: ties keep chosen-major order)."""
    tokens: dict[str, list[str]] = {}
    for pair in pairs:
        for opt in pair:
            if opt.sql not in tokens:
                tokens[opt.sql] = sql_tokens(opt.sql)
    return sorted(pairs, key=lambda p: edit_distance(tokens[p[0].sql], tokens[p[1].sql]))


@register_pairing("hardest_same_where", default_cap=1)
def _hardest_same_where(pairs: Pairs, rng: random.Random) -> Pairs:
    """``hardest``, but a rejected answer with as many WHERE conditions as the chosen one first
    (:func:`lfkit.sql.shape.where_conditions`): the closest wrong answer is often the chosen minus a
    condition, and a round of such pairs teaches "add a condition" rather than the SQL.

    >>> c = Option("c", "SELECT a FROM t WHERE y = 1 AND x = 2")
    >>> near, same = Option("n", "SELECT a FROM t WHERE y = 1"), Option("s", "SELECT b, c FROM u WHERE y = 2 AND x = 3")
    >>> [r.text for _, r in _hardest([(c, near), (c, same)], rng=None)]
    ['n', 's']
    >>> [r.text for _, r in _hardest_same_where([(c, near), (c, same)], rng=None)]
    ['s', 'n']
    """
    from lfkit.sql.shape import where_conditions

    counts: dict[str, int | None] = {}
    for pair in pairs:
        for opt in pair:
            if opt.sql not in counts:
                counts[opt.sql] = where_conditions(opt.sql)
    return sorted(_hardest(pairs, rng), key=lambda p: counts[p[0].sql] != counts[p[1].sql])


def check_pairing(name: str) -> Pairing:
    """The registered strategy ``name``; :class:`PairingError` naming the choices otherwise."""
    if name not in PAIRINGS:
        raise PairingError(f"pairing must be one of {', '.join(PAIRINGS)}, got {name!r}")
    return PAIRINGS[name]


def select_pairs(
    chosen: Sequence[Option], rejected: Sequence[Option], pairing: str, cap: int, rng: random.Random
) -> Pairs:
    """Pairs under a strategy of :data:`PAIRINGS` (built in: ``all`` in chosen-major order,
    ``random``, ``hardest`` = smallest token edit distance between the two SQL first); at most
    ``cap`` (0 = no cap)."""
    strategy = check_pairing(pairing)
    # A pair needs two different answers (LLaMA-Factory learns nothing from equal ones).
    pairs = [(c, r) for c in chosen for r in rejected if c.text.strip() != r.text.strip()]
    pairs = strategy.order(pairs, rng)
    return pairs[:cap] if cap else pairs


def dedup_options(options: Sequence[Option], exclude: set[str] | None = None) -> tuple[list[Option], int]:
    """Keep the first option per normalised SQL (and none whose normalised SQL is in ``exclude``)."""
    from lfkit.sql import normalize_sql

    seen = set(exclude or ())
    kept, dropped = [], 0
    for opt in options:
        key = normalize_sql(opt.sql)
        if key in seen:
            dropped += 1
            continue
        seen.add(key)
        kept.append(opt)
    return kept, dropped


def pair_rng(seed: int, question: Question) -> random.Random:
    return random.Random(seed * 1_000_003 + question.index)


__all__ = [
    "PAIRINGS",
    "Option",
    "Pairing",
    "PairingError",
    "check_pairing",
    "dedup_options",
    "edit_distance",
    "pair_rng",
    "register_pairing",
    "select_pairs",
    "sql_tokens",
]

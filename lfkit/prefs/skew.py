"""Surface skew of preference pairs: a feature of the SQL that tells chosen from rejected without correctness.

DPO learns whatever separates chosen from rejected most cheaply. When, in most pairs whose SQL differs in
a feature, the chosen side has more of it, the policy can learn the feature instead of the SQL the question
needs. Measured (README, "make quality", seed 0): the chosen SQL had more WHERE conditions than its
rejected in 14 pairs and fewer in 5; of the 13 dev answers DPO broke, 10 had gained a condition
(``... AND lgID = 2012``). Pairing ``hardest_same_where`` (:mod:`lfkit.prefs.pairing`) removes that one.

:func:`pair_skew` counts, per feature (:data:`FEATURES`), the pairs where the chosen has more / fewer;
:func:`skew_warnings` names a feature whose differing pairs lean one way by :data:`LOPSIDED` or more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from lfkit.sql.extract import extract_sql
from lfkit.sql.shape import where_conditions

# feature -> its value for one SQL (None: not measurable there, e.g. unparsable)
FEATURES: dict[str, Callable[[str], int | None]] = {
    "WHERE conditions": where_conditions,
    "characters": len,
}
LOPSIDED = 0.7  # share of the differing pairs on one side that earns a warning
MIN_DIFFERING = 10  # fewer differing pairs than this say nothing either way


def pair_skew(pairs: Iterable[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """Per feature, in how many (chosen, rejected) pairs the chosen SQL has ``more`` / ``fewer`` of it.

    Responses are read with :func:`lfkit.sql.extract.extract_sql` (fences, prose around the SQL).

    >>> pair_skew([("SELECT a FROM t WHERE x = 1 AND y = 2", "SELECT a FROM t WHERE x = 1"),
    ...            ("SELECT a FROM t", "SELECT b FROM t")])
    {'WHERE conditions': {'more': 1, 'fewer': 0}, 'characters': {'more': 1, 'fewer': 0}}
    """
    skew = {name: {"more": 0, "fewer": 0} for name in FEATURES}
    for chosen, rejected in pairs:
        c_sql, r_sql = extract_sql(chosen), extract_sql(rejected)
        for name, measure in FEATURES.items():
            c, r = measure(c_sql), measure(r_sql)
            if c is not None and r is not None and c != r:
                skew[name]["more" if c > r else "fewer"] += 1
    return skew


def skew_warnings(skew: dict[str, dict[str, int]]) -> list[str]:
    """One line per feature whose differing pairs lean to one side by :data:`LOPSIDED` or more.

    >>> [w[:80] for w in skew_warnings({"WHERE conditions": {"more": 14, "fewer": 5},
    ...                                  "characters": {"more": 30, "fewer": 16}})]
    ['the chosen SQL has more WHERE conditions than its rejected in 14 of the 19 pairs']
    >>> skew_warnings({"WHERE conditions": {"more": 6, "fewer": 0}})  # too few pairs to tell
    []
    """
    out = []
    for name, n in skew.items():
        differing = n["more"] + n["fewer"]
        side = max(n, key=n.__getitem__)
        if differing >= MIN_DIFFERING and n[side] >= LOPSIDED * differing:
            out.append(
                f"the chosen SQL has {side} {name} than its rejected in {n[side]} of the {differing} pairs that "
                "differ in them: DPO may learn that instead of the SQL"
            )
    return out


__all__ = ["FEATURES", "LOPSIDED", "MIN_DIFFERING", "pair_skew", "skew_warnings"]

"""The issue-detector registry: :func:`register_detector`, :func:`detect_issues`, :func:`mentioned_issues`.

Each detector reports at most one :class:`Issue` (its ``detail`` lists every place it fired)
and owns a severity in ``(0, 1]``, given once, to :func:`register_detector`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lfkit.errors import LfkitError
from lfkit.sql.issues.parse import ParsedSQL, parse_query

# named for the package: callers and tests filter the package's logger
logger = logging.getLogger("lfkit.sql.issues")


class IssueRegistryError(LfkitError):
    """A detector registration was refused (duplicate or malformed name, severity out of range)."""


@dataclass(frozen=True)
class Issue:
    """One detected problem: the detector's ``name`` and ``severity`` and what fired (``detail``)."""

    name: str
    severity: float
    detail: str


Detect = Callable[[ParsedSQL], "str | None"]


@dataclass(frozen=True)
class Detector:
    """A registered detector: ``detect(parsed)`` returns a detail string when the issue is present.

    ``needs_tree`` detectors only run when the SQL parsed; ``mentions`` are the phrases that
    name the issue in reasoning text (see :func:`mentioned_issues`). A detector must not modify
    ``parsed`` or its tree: the rewards share one parse between detectors and calls.
    """

    name: str
    severity: float
    detect: Detect
    needs_tree: bool = True
    mentions: tuple[str, ...] = ()


DETECTORS: dict[str, Detector] = {}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def register_detector(
    name: str, severity: float, *, needs_tree: bool = True, mentions: Iterable[str] = ()
) -> Callable[[Detect], Detect]:
    """Decorator registering ``fn(parsed: ParsedSQL) -> str | None`` as detector ``name``.

    Refused with :class:`IssueRegistryError`: a name already registered (unregister it first to
    replace it), a name that is not lowercase ``snake_case``, a severity outside ``(0, 1]``.

    >>> @register_detector("select_star", 0.1, mentions=["select *"])
    ... def _star(parsed):
    ...     '''A projection ``*``.'''
    ...     return "SELECT *" if parsed.tree.is_star else None
    >>> [i.name for i in detect_issues("SELECT * FROM t WHERE a = 1")]
    ['select_star']
    >>> register_detector("select_star", 0.2)(_star)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lfkit.sql.issues.registry.IssueRegistryError: issue detector 'select_star' is already registered; ...
    >>> unregister_detector("select_star")
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise IssueRegistryError(f"issue detector name must be lowercase snake_case, got {name!r}")
    if name in DETECTORS:
        raise IssueRegistryError(
            f"issue detector {name!r} is already registered; unregister_detector({name!r}) first to replace it"
        )
    if isinstance(severity, bool) or not isinstance(severity, int | float) or not 0 < severity <= 1:
        raise IssueRegistryError(f"issue detector {name!r}: severity must be in (0, 1], got {severity!r}")

    def decorate(fn: Detect) -> Detect:
        if name in DETECTORS:  # registered between the call and the decoration
            raise IssueRegistryError(f"issue detector {name!r} is already registered")
        DETECTORS[name] = Detector(name, float(severity), fn, needs_tree, tuple(mentions))
        return fn

    return decorate


def unregister_detector(name: str) -> None:
    """Remove detector ``name``; an unknown name raises :class:`IssueRegistryError`."""
    if name not in DETECTORS:
        raise IssueRegistryError(f"no issue detector named {name!r}; registered: {', '.join(DETECTORS)}")
    del DETECTORS[name]


def detect_issues(
    sql: str | None,
    schema: Mapping[str, Any] | None = None,
    question: str | None = None,
    *,
    parsed: ParsedSQL | None = None,
) -> list[Issue]:
    """Run every registered detector on ``sql``; issues in registration order, one per detector.

    Never raises on bad SQL: an unparsable SQL yields ``unclosed_parenthesis`` or
    ``invalid_sql`` (plus any token-level issue). ``question`` (the natural-language question)
    enables ``missing_time_range``. A detector that raises is skipped for this SQL and logged:
    a reward computed during training must not stop on one odd generation.

    >>> [(i.name, i.detail) for i in detect_issues("SELECT name FROM singer WHERE id IN ()")]
    [('empty_in_clause', 'IN ()')]
    >>> detect_issues("")
    [Issue(name='invalid_sql', severity=1.0, detail='empty SQL')]
    """
    if parsed is None:
        parsed = parse_query(sql, question=question, schema=schema)
    issues = []
    for det in list(DETECTORS.values()):
        if det.needs_tree and parsed.tree is None:
            continue
        try:
            detail = det.detect(parsed)
        except Exception:  # see the docstring: one detector's bug must not kill a training step
            logger.warning("issue detector %r failed on SQL %r", det.name, parsed.sql[:200], exc_info=True)
            continue
        if detail:
            issues.append(Issue(det.name, det.severity, detail))
    return issues


def _squash(text: str) -> str:
    return re.sub(r"[\s_]+", "", text.lower())


def mentioned_issues(text: str | None) -> set[str]:
    """Names of the registered issues that ``text`` (reasoning) names.

    A detector is mentioned when its name or one of its ``mentions`` occurs in the text,
    compared lowercase with whitespace and underscores removed (so ``missing_where``,
    ``missing WHERE`` and ``缺少 WHERE`` all match). Negation is not understood: "no
    missing_where here" mentions ``missing_where``.

    >>> sorted(mentioned_issues("The query has no LIMIT after ORDER BY, and 括号不匹配."))
    ['order_by_without_limit', 'unclosed_parenthesis']
    """
    squashed = _squash(text or "")
    if not squashed:
        return set()
    found = set()
    for det in DETECTORS.values():
        for phrase in (det.name, *det.mentions):
            if _squash(phrase) and _squash(phrase) in squashed:
                found.add(det.name)
                break
    return found


__all__ = [
    "DETECTORS",
    "Detect",
    "Detector",
    "Issue",
    "IssueRegistryError",
    "detect_issues",
    "mentioned_issues",
    "register_detector",
    "unregister_detector",
]

"""lfkit.sql: the SQL execution sandbox, comparison, normalisation and extraction.

Every stage that runs or compares SQL goes through this package (see DESIGN.md):
:func:`execute_sql` (sandboxed, bounded, in-process), :class:`Verifier` (process pool +
result cache), :func:`results_match` (``bird`` / ``testsuite`` comparison),
:func:`normalize_sql` (dedup and cache keys), :func:`extract_sql` (model text -> SQL) and
:func:`label_candidates` (completions -> labelled :class:`Candidate` objects, the one labelling step).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Exports resolve on first use (PEP 562): a pool worker imports ``lfkit.sql.pool`` and must not
# pay for the comparison, labelling and normalisation modules it never calls.
_EXPORTS = {
    "COMPARISONS": "compare",
    "has_top_level_order_by": "compare",
    "results_match": "compare",
    "rows_match": "compare",
    "soft_f1": "compare",
    "DatabaseFileError": "execute",
    "ExecResult": "execute",
    "check_database_file": "execute",
    "execute_sql": "execute",
    "extract_sql": "extract",
    "LABELS": "label",
    "REJECTABLE": "label",
    "REJECT_KINDS": "label",
    "parse_reject_kinds": "label",
    "Candidate": "label",
    "label_candidates": "label",
    "normalize_sql": "normalize",
    "ExecPool": "pool",
    "Verdict": "verify",
    "Verifier": "verify",
}

if TYPE_CHECKING:
    from lfkit.sql.compare import COMPARISONS, has_top_level_order_by, results_match, rows_match, soft_f1
    from lfkit.sql.execute import DatabaseFileError, ExecResult, check_database_file, execute_sql
    from lfkit.sql.extract import extract_sql
    from lfkit.sql.label import LABELS, REJECT_KINDS, REJECTABLE, Candidate, label_candidates, parse_reject_kinds
    from lfkit.sql.normalize import normalize_sql
    from lfkit.sql.pool import ExecPool
    from lfkit.sql.verify import Verdict, Verifier


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lfkit.sql' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lfkit.sql.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "COMPARISONS",
    "LABELS",
    "REJECTABLE",
    "REJECT_KINDS",
    "Candidate",
    "DatabaseFileError",
    "ExecPool",
    "ExecResult",
    "Verdict",
    "Verifier",
    "check_database_file",
    "execute_sql",
    "extract_sql",
    "has_top_level_order_by",
    "label_candidates",
    "normalize_sql",
    "parse_reject_kinds",
    "results_match",
    "rows_match",
    "soft_f1",
]

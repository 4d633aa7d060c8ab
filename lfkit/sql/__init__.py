"""lfkit.sql: the SQL execution sandbox, comparison, normalisation and extraction.

Every stage that runs or compares SQL goes through this package (see DESIGN.md):
:func:`execute_sql` (sandboxed, bounded, in-process), :class:`Verifier` (process pool +
result cache), :func:`results_match` (``bird`` / ``testsuite`` comparison),
:func:`normalize_sql` (dedup and cache keys), :func:`extract_sql` (model text -> SQL) and
:func:`label_candidates` (completions -> labelled :class:`Candidate` objects, the one labelling step).
"""

from lfkit.sql.compare import COMPARISONS, has_top_level_order_by, results_match, rows_match, soft_f1
from lfkit.sql.execute import ExecResult, execute_sql
from lfkit.sql.extract import extract_sql
from lfkit.sql.label import LABELS, REJECTABLE, Candidate, label_candidates
from lfkit.sql.normalize import normalize_sql
from lfkit.sql.pool import ExecPool
from lfkit.sql.verify import Verdict, Verifier

__all__ = [
    "COMPARISONS",
    "LABELS",
    "REJECTABLE",
    "Candidate",
    "ExecPool",
    "ExecResult",
    "Verdict",
    "Verifier",
    "execute_sql",
    "extract_sql",
    "has_top_level_order_by",
    "label_candidates",
    "normalize_sql",
    "results_match",
    "rows_match",
    "soft_f1",
]

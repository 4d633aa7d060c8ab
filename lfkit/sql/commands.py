"""Click options of the SQL verifier (:class:`lfkit.sql.Verifier`), one declaration each, shared by every
command that executes candidate SQL against gold: ``--comparison``, ``--timeout``, ``--workers``.

A command decorates itself with :func:`verifier_options` (or with ``TIMEOUT`` and ``WORKERS`` alone where the
comparison is fixed) and passes the values to ``Verifier(...)`` unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from lfkit.sql.compare import COMPARISONS
from lfkit.sql.execute import DEFAULT_TIMEOUT

COMPARISON = click.option(
    "--comparison",
    type=click.Choice(COMPARISONS),
    default="bird",
    show_default=True,
    help="bird: set equality of rows (official BIRD); testsuite: bag equality, ordered when gold has ORDER BY.",
)
TIMEOUT = click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds per SQL execution.",
)
WORKERS = click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="SQL execution processes (default: all cores; 0 = in-process).",
)


def verifier_options(fn: Callable) -> Callable:
    """Decorator adding ``--comparison``, ``--timeout`` and ``--workers`` (in that order in ``--help``)."""
    return COMPARISON(TIMEOUT(WORKERS(fn)))


__all__ = ["COMPARISON", "TIMEOUT", "WORKERS", "verifier_options"]

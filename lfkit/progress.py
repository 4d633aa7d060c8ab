"""The one progress bar: rich on stderr, imported only when a bar is actually drawn.

Every long loop (job engine, verifier, LLaMA-Factory runs, corpus and prompt building,
greedy prediction) reports through :func:`progress_bar`, so the bar looks the same
everywhere and modules that use it (``lfkit.sql`` included) do not import rich at import
time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class ProgressBar:
    """Counts work and draws it once drawing is due; see :func:`progress_bar`."""

    def __init__(
        self, description: str, total: int | None, done: int, enabled: bool, delay: float, transient: bool, eta: bool
    ) -> None:
        self.description = description
        self.total = total
        self.completed = done
        self.note = ""
        self._enabled = enabled
        self._delay = delay
        self._transient = transient
        self._eta = eta
        self._started = time.monotonic()
        self._bar: Any = None
        self._task: Any = None

    def advance(self, n: int = 1) -> None:
        """``n`` more items done."""
        self.completed += n
        self._draw()

    def update(self, *, completed: int | None = None, total: int | None = None, note: str | None = None) -> None:
        """Set the count, the total (None: unknown) or the note shown after the bar (e.g. the loss)."""
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total
        if note is not None:
            self.note = note
        self._draw()

    def _draw(self) -> None:
        if not self._enabled:
            return
        if self._bar is None:
            if time.monotonic() - self._started < self._delay:
                return
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
            columns.append(TimeElapsedColumn())
            if self._eta:
                columns.append(TimeRemainingColumn())
            columns.append(TextColumn("{task.fields[note]}"))
            self._bar = Progress(*columns, console=Console(stderr=True), transient=self._transient)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total, completed=self.completed, note="")
        self._bar.update(self._task, completed=self.completed, total=self.total, note=self.note)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


@contextmanager
def progress_bar(
    description: str,
    total: int | None = None,
    *,
    done: int = 0,
    enabled: bool = True,
    delay: float = 0.0,
    transient: bool = True,
    eta: bool = False,
) -> Iterator[ProgressBar]:
    """A progress bar on stderr for ``total`` items (None: not known yet), ``done`` of them already done.

    Nothing is drawn (and rich is not imported) until the first :meth:`ProgressBar.advance`
    or :meth:`ProgressBar.update` at least ``delay`` seconds after entering: a short batch shows
    nothing, and a bar started on the first item never overlaps an earlier bar. Disabled, or
    with ``total == 0``, it only counts. ``transient`` bars vanish when done; ``eta`` adds
    the time-remaining column.

    >>> with progress_bar("rows", 3, enabled=False) as bar:
    ...     bar.advance(2)
    >>> bar.completed
    2
    """
    bar = ProgressBar(description, total, done, enabled and total != 0, delay, transient, eta)
    try:
        yield bar
    finally:
        bar._close()

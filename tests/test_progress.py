"""lfkit.progress: the one progress bar (counts always, draws on stderr when due, rich only then)."""

from __future__ import annotations

import subprocess
import sys

from lfkit.progress import progress_bar


def test_bar_draws_counts_and_totals_on_stderr(capfd) -> None:
    with progress_bar("labelling", 3, done=1, transient=False) as bar:
        bar.advance()
        bar.update(completed=3, note="loss 0.5")
    out, err = capfd.readouterr()
    assert bar.completed == 3 and out == ""
    assert "labelling" in err and "3/3" in err and "loss 0.5" in err


def test_total_unknown_until_update(capfd) -> None:
    with progress_bar("prompts", enabled=True, transient=False) as bar:
        bar.update(completed=2, total=5)
    assert (bar.completed, bar.total) == (2, 5)
    assert "2/5" in capfd.readouterr().err


def test_disabled_or_not_yet_due_bars_draw_nothing_and_import_no_rich() -> None:
    code = (
        "import sys\n"
        "from lfkit.progress import progress_bar\n"
        "import lfkit.sql, lfkit.jobs\n"
        "with progress_bar('a', 5, enabled=False) as a: a.advance(5)\n"
        "with progress_bar('b', 5, delay=60) as b: b.advance(2)\n"
        "with progress_bar('c', 0) as c: c.advance()\n"
        "print(a.completed, b.completed, c.completed, 'rich' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["5", "2", "1", "False"] and run.stderr == ""

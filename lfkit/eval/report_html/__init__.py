"""The report people look at: one static HTML page of EX by stage and a per-question drill-down.

:func:`write_html_report` scores each stage's predictions file (``lfkit eval score``'s scoring),
labels every answer (``label_of``), finds which stage fixed or broke each question, runs the SQL
issue detectors on every answer, adds each question's revision tree when trees are given,
and writes one self-contained page (no network; ``lfkit eval report`` is its command).

Modules: :mod:`~lfkit.eval.report_html.data` (what the page shows),
:mod:`~lfkit.eval.report_html.page` (HTML and escaping), :mod:`~lfkit.eval.report_html.assets`
(inline CSS and script).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lfkit.eval.report_html.data import (
    REPORT_LABELS,
    ReportData,
    ReportError,
    ReportTable,
    build_report_data,
    parse_stage,
    result_label,
    transitions,
)
from lfkit.eval.report_html.page import png_data_uri, render_page
from lfkit.io import atomic_write_text


def write_html_report(
    out: str | os.PathLike[str],
    stages: Sequence[tuple[str, str | os.PathLike[str]]],
    gold: str | os.PathLike[str],
    db_root: str | os.PathLike[str],
    *,
    title: str = "lfkit report",
    trees: str | os.PathLike[str] | None = None,
    images: Sequence[str | os.PathLike[str]] = (),
    extra_tables: Sequence[ReportTable] = (),
    lead: str = "",
    difficulties: str | os.PathLike[str] | None = None,
    comparison: str = "bird",
    timeout: float = 30.0,
    workers: int | None = None,
) -> Path:
    """Write the HTML report to ``out`` (atomically) and return its path.

    ``stages``: ``[(name, predictions file)]`` in pipeline order, e.g. ``[("base", ...),
    ("sft", ...), ("dpo", ...)]``; ``gold``: ``dev.json`` (or ``dev_gold.sql`` with
    ``difficulties``); ``db_root``: ``<db_id>/<db_id>.sqlite``. ``trees``: a revision-tree file or a
    ``lfkit tree build`` folder. ``images``: PNG files embedded as data: URIs (e.g. the pipelines'
    ``ex_by_stage.png``, ``loss.png``); ``extra_tables``: more summary tables; ``lead``: a paragraph under the
    title (a pipeline's verdict).
    """
    for image in images:  # checked before scoring: a typo should not cost a scoring run
        png_data_uri(image)
    data = build_report_data(
        stages, gold, db_root, trees=trees, difficulties=difficulties, comparison=comparison, timeout=timeout,
        workers=workers,
    )  # fmt: skip
    page = render_page(data, title=title, images=images, extra_tables=extra_tables, lead=lead)
    return atomic_write_text(out, page)


__all__ = [
    "REPORT_LABELS",
    "ReportData",
    "ReportError",
    "ReportTable",
    "build_report_data",
    "parse_stage",
    "render_page",
    "result_label",
    "transitions",
    "write_html_report",
]

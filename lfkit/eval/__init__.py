"""lfkit.eval: scoring predictions like BIRD (EX by difficulty, soft-F1) and its file formats."""

from lfkit.eval.formats import (
    BIRD_SEPARATOR,
    Prediction,
    match_predictions,
    read_gold,
    read_predictions,
    write_bird_predictions,
)
from lfkit.eval.score import render_report, score_predictions

__all__ = [
    "BIRD_SEPARATOR",
    "Prediction",
    "match_predictions",
    "read_gold",
    "read_predictions",
    "render_report",
    "score_predictions",
    "write_bird_predictions",
]

"""Sampling defaults of every command, in one table: one row per purpose, each value declared once.

A command or pipeline stage that samples reads its defaults from the row of its purpose; its CLI
option shows that value (``tests/test_sampling_defaults.py`` checks every ``--help``).

====================  ====  =====  ====  =========================================================
purpose               T     top-p  seed  who samples with it
====================  ====  =====  ====  =========================================================
``prefs``             0.8   0.95   1234  ``prefs rejects`` / ``prefs cot``, the demo's prefs stage,
                                         every DPO round (``lfkit iterate``, ``demo --full``)
``candidates``        0.8   0.95   0     ``eval predict --n`` (best-of-N), the full demo's bon and
                                         held-out RM stages
``tree``              0.7   1.0    1234  ``tree build`` and the full demo's trees (ReSQLver's values)
``grpo``              0.7   1.0    --    GRPO's rollouts (seed 001's recipe) and ``make grpo``'s
                                         pass-rate filter, drawn as GRPO draws
``api``               0.7   0.9    0     :class:`~lfkit.generate.base.SamplingConfig` built without
                                         values (library callers)
====================  ====  =====  ====  =========================================================

Seeds: question i, sample j samples with ``seed + 1000 * i + j`` on every backend. A pipeline
stage adds its purpose's seed to the run's (``lfkit.pipeline.steps.prefs_seed``), so a demo with
seed 0 samples exactly as the command it stands for.

>>> SAMPLING["prefs"].temperature, SAMPLING["prefs"].top_p, SAMPLING["prefs"].seed
(0.8, 0.95, 1234)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingDefaults:
    """The defaults of one sampling purpose."""

    temperature: float
    top_p: float
    seed: int
    why: str


SAMPLING: dict[str, SamplingDefaults] = {
    # every recorded demo, the lever table and the DPO rounds sampled at these values
    "prefs": SamplingDefaults(0.8, 0.95, 1234, "preference candidates: commands, demo and DPO rounds"),
    "candidates": SamplingDefaults(0.8, 0.95, 0, "best-of-N candidates and held-out reward-model pairs"),
    # ReSQLver's tree sampling: no nucleus cut
    "tree": SamplingDefaults(0.7, 1.0, 1234, "revision trees (ReSQLver's values)"),
    "grpo": SamplingDefaults(0.7, 1.0, 0, "GRPO rollouts (seed 001's recipe) and the GRPO pass-rate filter"),
    "api": SamplingDefaults(0.7, 0.9, 0, "SamplingConfig() without values, for library callers"),
}


__all__ = ["SAMPLING", "SamplingDefaults"]

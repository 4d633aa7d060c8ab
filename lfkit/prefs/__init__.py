"""lfkit.prefs: execution-verified preference data (rejects) and chain-of-thought data (cot).

from lfkit.generate import get_backend
from lfkit.prefs import RejectsConfig, build_rejects
cfg = RejectsConfig(sft_data="sft.json", db_root="corpus/train_databases", output="dpo.json")
summary = build_rejects(cfg, get_backend("hf", model="tiny"))
"""

from lfkit.jobs import JobError
from lfkit.prefs.cot import COT_INSTRUCTION, CotConfig, build_cot, format_trace, split_trace
from lfkit.prefs.job import JobConfig, Summary
from lfkit.prefs.merge import merge_outputs
from lfkit.prefs.pairing import PAIRINGS, edit_distance, register_pairing, select_pairs
from lfkit.prefs.rejects import RejectsConfig, build_rejects

__all__ = [
    "COT_INSTRUCTION",
    "PAIRINGS",
    "CotConfig",
    "JobConfig",
    "JobError",
    "RejectsConfig",
    "Summary",
    "build_cot",
    "build_rejects",
    "edit_distance",
    "format_trace",
    "merge_outputs",
    "register_pairing",
    "select_pairs",
    "split_trace",
]

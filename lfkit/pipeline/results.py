"""The typed result of every pipeline stage: what its ``stages/<name>.json`` holds.

Each is a :class:`~lfkit.pipeline.stages.StageResult` dataclass, written by the runner and read
back into the same type on resume, so a composition reads ``result.reward_accuracy``, never a
string key that one stage spells differently from another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lfkit.pipeline.stages import StageResult


@dataclass(frozen=True)
class ModelRef:
    """A model as a stage sees it: a base (hub id or folder) plus LoRA adapters on it, in order."""

    base: str
    adapters: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"base": self.base, "adapters": list(self.adapters)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelRef:
        return cls(data["base"], tuple(data["adapters"]))


@dataclass
class CorpusResult(StageResult):
    """The demo corpus (sizes and stats), its SFT rows and, for DPO rounds, the train question pool."""

    train_questions: int | None = None
    dev_questions: int | None = None
    sft_rows: int | None = None
    corpus: dict[str, Any] = field(default_factory=dict)
    pool_questions: int | None = None


@dataclass
class EvalResult(StageResult):
    """Greedy dev predictions (a BIRD ``predict_dev.json``) scored by execution."""

    ex: float
    n: int
    correct: int
    soft_f1: float | None
    by_difficulty: dict[str, dict[str, Any]]
    errors: int
    timeouts: int
    empty_predictions: int
    predictions: str  # relative to the run's folder
    model: ModelRef | None = None

    def line(self) -> str:
        parts = [f"EX {self.ex:.1f}% (n={self.n})"]
        parts += [f"{k} {v['ex']:.1f}%" for k, v in self.by_difficulty.items()]
        return ", ".join(parts)


@dataclass
class TrainResult(StageResult):
    """One ``llamafactory-cli train`` run: its steps and losses from LLaMA-Factory's own files."""

    steps: int
    first_loss: float | None
    last_loss: float | None
    mean_loss: float | None
    reward_accuracy: float | None  # DPO: chosen-over-rejected accuracy of the last logged step
    loss_curve: list[list[float]]
    recipe: str
    adapter: str
    policy_start: str | None = None  # a DPO round: the merged model trained on, also its reference

    def line(self) -> str:
        acc = "" if self.reward_accuracy is None else f", reward accuracy {self.reward_accuracy}"
        return f"{self.steps} steps, loss {self.first_loss} -> {self.last_loss} (mean {self.mean_loss}){acc}"


@dataclass
class MergeResult(StageResult):
    """``llamafactory-cli export``: adapters merged into a plain model folder."""

    model: str
    recipe: str
    source: ModelRef


@dataclass
class PrefsResult(StageResult):
    """Execution-verified preference pairs sampled from a policy (``lfkit prefs rejects``)."""

    questions: int
    candidates: int
    labels: dict[str, int]
    duplicates: int
    pairs: int
    questions_without_pair: int
    pairs_by_reject_kind: dict[str, int]
    pairs_by_chosen_source: dict[str, int]
    pairs_file: str
    empty: str | None = None  # why a round has no pair (the loop then stops)
    policy: ModelRef | None = None


@dataclass
class TreesResult(StageResult):
    """Revision trees of a policy (``lfkit tree build``), verified (``lfkit tree verify``)."""

    trees: int
    nodes: int
    correct_at_depth_1: int
    rescued_by_revision: int
    summary: dict[str, Any]  # the rest of tree build's summary (nodes per depth, labels, calls)
    all_trees: str
    verification: str
    verified_ok: bool
    policy: ModelRef


@dataclass
class RmDataResult(StageResult):
    """The reward model's training pairs: tree pairs + the DPO rounds' pairs, merged and registered."""

    pairs: int
    tree_pairs: dict[str, Any]
    inputs: list[str]
    duplicates_dropped: int
    by_source: dict[str, int]
    by_source_and_kind: dict[str, dict[str, int]]
    file: str


@dataclass
class RmEvalResult(StageResult):
    """``lfkit rm eval``: pairwise accuracy per model (``rm`` and the bare base ``none``)."""

    models: dict[str, dict[str, Any]]
    report: str


@dataclass
class BonSampleResult(StageResult):
    """Best-of-N candidates on dev (``lfkit eval predict --n N --with-greedy``)."""

    questions: int
    labels: dict[str, int]
    pass_at_n: float
    n: int
    candidates: str
    policy: ModelRef


@dataclass
class BonScoreResult(StageResult):
    """``lfkit rm score``: one reward-model score per candidate."""

    questions: int
    candidates: int
    failed_sql: int
    scores: str


@dataclass
class BonSelectResult(StageResult):
    """``lfkit eval select``: EX of each selection strategy, each from its own predictions file."""

    questions: int
    n_candidates: int
    labels: dict[str, int]
    strategies: dict[str, dict[str, Any]]
    report: str
    plot: str | None


@dataclass
class GrpoResult(StageResult):
    """GRPO on TRL from one adapter (merged first): steps, the mean reward curve, where it started."""

    steps: int
    rows: int
    reward_curve: list[list[float]]
    first_reward: float | None
    last_reward: float | None
    reward_errors: Any
    kl_reference: Any
    recipe: str
    adapter: str
    start_model: str
    policy: ModelRef
    reward_curve_png: str | None


__all__ = [
    "BonSampleResult",
    "BonScoreResult",
    "BonSelectResult",
    "CorpusResult",
    "EvalResult",
    "GrpoResult",
    "MergeResult",
    "ModelRef",
    "PrefsResult",
    "RmDataResult",
    "RmEvalResult",
    "TrainResult",
    "TreesResult",
]

"""The data the HTML report shows: each stage's labels, what changed between stages, issues, revision paths.

Every number and label comes from :func:`lfkit.eval.score.score_predictions` (one call per stage,
the same scoring as ``lfkit eval score``); a result becomes a label through
:func:`lfkit.sql.label.label_of`, the rule that labels preference data. Nothing here compares
results itself.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from lfkit.errors import LfkitError
from lfkit.eval.formats import read_gold
from lfkit.eval.score import score_predictions
from lfkit.sql.issues import Issue, detect_issues
from lfkit.sql.label import REJECT_KINDS, label_of
from lfkit.tree.model import INITIAL, RevisionTree, load_trees

MISSING = "missing"  # the stage's file has no prediction for the question
REPORT_LABELS = ("correct", *REJECT_KINDS, MISSING)
"""The labels an answer can have in the report, in display order (``label_of``'s plus ``missing``)."""

CHANGE_TOKENS = ("changed", "unchanged", "fixed", "broke", "always_correct", "never_correct")
"""What the "change" filter offers; a question carries every token that is true of it."""


class ReportError(LfkitError, ValueError):
    """Bad input to the HTML report: a stage spec, an image, a trees path."""


@dataclass(frozen=True)
class ReportTable:
    """An extra table a pipeline adds to the page (e.g. reward-model accuracy): caption, headers, rows."""

    caption: str
    headers: Sequence[str]
    rows: Sequence[Sequence[Any]]

    def markdown(self, level: int = 2) -> str:
        """The table in markdown under its caption as a heading, so a run's report.md prints what its page shows
        (a ``|`` inside a cell is escaped).

        >>> print(ReportTable("Reward model", ["model", "accuracy"], [["trained RM", 72.9], ["a|b", "-"]]).markdown())
        ## Reward model
        <BLANKLINE>
        | model | accuracy |
        |---|---|
        | trained RM | 72.9 |
        | a\\|b | - |
        """

        def row(cells: Sequence[Any]) -> str:
            return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

        lines = [f"{'#' * level} {self.caption}", "", row(self.headers), "|" + "---|" * len(self.headers)]
        return "\n".join(lines + [row(r) for r in self.rows])


@dataclass
class Answer:
    """One stage's answer to one question; ``sql`` is None when the stage has no prediction for it."""

    stage: str
    sql: str | None
    label: str
    status: str
    error: str | None
    issues: list[Issue] = field(default_factory=list)


@dataclass
class TreeStep:
    """One node of a revision tree as the page shows it; ``on_path`` marks the revision path."""

    node_id: str
    parent_id: str
    depth: int
    sql: str
    label: str
    correct: bool
    distance: int
    feedback: str
    on_path: bool


@dataclass
class QuestionView:
    """One gold question and every stage's answer to it."""

    key: str
    db_id: str
    difficulty: str
    question: str
    evidence: str
    gold_sql: str
    gold_status: str  # "ok", or how gold failed to run (then no answer can be correct)
    answers: list[Answer]
    fixed_at: str | None  # the first stage where it turned correct (after a stage where it was not)
    broken_at: str | None  # the first stage where it turned wrong (after a stage where it was correct)
    tree: list[TreeStep] | None = None  # every node, by depth; None: no tree for this question

    @property
    def correct(self) -> list[bool]:
        return [a.label == "correct" for a in self.answers]

    @property
    def changes(self) -> list[str]:
        """The :data:`CHANGE_TOKENS` true of this question."""
        c = self.correct
        out = ["changed" if self.fixed_at or self.broken_at else "unchanged"]
        out += ["fixed"] if self.fixed_at else []
        out += ["broke"] if self.broken_at else []
        out += ["always_correct"] if all(c) else ["never_correct"] if not any(c) else []
        return out


@dataclass
class StageView:
    """One stage's totals, from its ``score_predictions`` report."""

    name: str
    predictions: Path
    report: dict[str, Any]
    labels: Counter[str]
    fixed: int  # questions correct here and not in the previous stage
    broke: int  # questions correct in the previous stage and not here


@dataclass
class ReportData:
    """Everything the page shows, in order."""

    stages: list[StageView]
    questions: list[QuestionView]
    difficulties: list[str]
    gold: Path
    comparison: str
    trees_matched: int = 0
    trees_unmatched: int = 0


class _Outcome(NamedTuple):
    """The two fields of a verdict that :func:`label_of` reads, taken from a scored result."""

    correct: bool
    status: str


def result_label(result: Mapping[str, Any]) -> str:
    """The label of one ``score_predictions`` result: ``missing`` without a prediction, else ``label_of``'s.

    >>> result_label({"pred_sql": "SELECT 1", "correct": False, "status": "ok"})
    'wrong'
    >>> result_label({"pred_sql": "SELECT 1", "correct": False, "status": "too_many_rows"})
    'error'
    >>> result_label({"pred_sql": "", "correct": False, "status": "error"})
    'no_sql'
    >>> result_label({"pred_sql": None, "correct": False, "status": "missing"})
    'missing'
    """
    if result["pred_sql"] is None:
        return MISSING
    return label_of(_Outcome(bool(result["correct"]), result["status"]), result["pred_sql"])  # type: ignore[arg-type]


def transitions(names: Sequence[str], correct: Sequence[bool]) -> tuple[str | None, str | None]:
    """(first stage where the answer turned correct, first stage where it turned wrong).

    A stage "fixes" a question that the stage before it got wrong, and "breaks" one the stage
    before got right; the first stage only sets the starting point.

    >>> transitions(["base", "sft", "dpo"], [False, True, True])
    ('sft', None)
    >>> transitions(["base", "sft", "dpo"], [True, False, True])
    ('dpo', 'sft')
    >>> transitions(["base", "sft"], [True, True])
    (None, None)
    >>> transitions(["r0", "r1", "r2", "r3"], [False, True, False, True])  # the first of each
    ('r1', 'r2')
    """
    fixed = broken = None
    for k in range(1, len(names)):
        if correct[k] and not correct[k - 1] and fixed is None:
            fixed = names[k]
        if correct[k - 1] and not correct[k] and broken is None:
            broken = names[k]
    return fixed, broken


def check_stages(stages: Sequence[tuple[str, str | os.PathLike[str]]]) -> list[tuple[str, Path]]:
    """The stages as ``(name, path)``; names must be non-empty and unique, at least one stage."""
    if not stages:
        raise ReportError("no stages: give at least one NAME=PREDICTIONS file")
    out: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for name, path in stages:
        name = str(name).strip()
        if not name:
            raise ReportError(f"stage for {path}: the name is empty")
        if name in seen:
            raise ReportError(f"stage {name!r} is given twice; stage names must be unique")
        seen.add(name)
        out.append((name, Path(path)))
    return out


def parse_stage(spec: str) -> tuple[str, Path]:
    """``"sft=out/predict_dev.json"`` -> ``("sft", Path("out/predict_dev.json"))``.

    >>> parse_stage("sft=a=b.json")
    ('sft', PosixPath('a=b.json'))
    """
    name, sep, path = spec.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise ReportError(f"stage {spec!r}: expected NAME=PREDICTIONS_FILE, e.g. sft=out/predict_dev.json")
    return name.strip(), Path(path.strip())


# ----------------------------------------------------------------------------- trees


def _same_sql(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def _tree_files(path: Path) -> list[Path]:
    """A file, or a tree-build folder: ``all_trees.json`` when present, else its ``*.json``/``*.jsonl`` files."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ReportError(f"{path}: trees file or folder not found")
    if (path / "all_trees.json").is_file():  # the merged trees; the shards beside it hold the same trees
        return [path / "all_trees.json"]
    files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl") and not p.name.endswith(".lfkit.json"))
    if not files:
        raise ReportError(f"{path}: no tree files (*.json, *.jsonl) in the folder")
    return files


def load_question_trees(path: str | os.PathLike[str]) -> dict[tuple[str, str], tuple[RevisionTree, str]]:
    """Trees by ``(question key, db_id)``, each with where it was read; a second tree for a question is an error."""
    out: dict[tuple[str, str], tuple[RevisionTree, str]] = {}
    for file in _tree_files(Path(path)):
        for i, tree in enumerate(load_trees(file)):
            where = f"{file}: tree {i}"
            key = (str(tree.question_id).strip(), tree.db_id)
            if key in out:
                raise ReportError(f"{where}: question_id {key[0]} (db {key[1]}) already has a tree ({out[key][1]})")
            out[key] = (tree, where)
    return out


def revision_path(tree: RevisionTree) -> list[str]:
    """Node ids from depth 1 down to the shallowest correct node (first by ``j``); [] when none is correct."""
    correct = sorted((n.d, n.j, n.node_id) for n in tree.nodes.values() if n.is_correct)
    if not correct:
        return []
    path, cur, seen = [], correct[0][2], set()
    while cur in tree.nodes and cur not in seen:  # `seen`: a corrupt tree must not loop forever
        seen.add(cur)
        path.append(cur)
        cur = tree.nodes[cur].parent_id
        if cur == INITIAL:
            break
    return path[::-1]


def tree_steps(tree: RevisionTree) -> list[TreeStep]:
    """Every node of ``tree`` by depth then ``j``, the revision path marked."""
    path = set(revision_path(tree))
    return [
        TreeStep(
            node_id=n.node_id,
            parent_id=n.parent_id,
            depth=n.d,
            sql=n.generated_sql,
            label=n.label or ("correct" if n.is_correct else "wrong"),  # ReSQLver's trees carry no label
            correct=n.is_correct,
            distance=n.revision_distance,
            feedback=n.execution_feedback,
            on_path=n.node_id in path,
        )
        for n in sorted(tree.nodes.values(), key=lambda n: (n.d, n.j))
    ]


# ----------------------------------------------------------------------------- the report's data


def build_report_data(
    stages: Sequence[tuple[str, str | os.PathLike[str]]],
    gold: str | os.PathLike[str],
    db_root: str | os.PathLike[str],
    *,
    trees: str | os.PathLike[str] | None = None,
    difficulties: str | os.PathLike[str] | None = None,
    comparison: str = "bird",
    timeout: float = 30.0,
    workers: int | None = None,
    match: str = "auto",
) -> ReportData:
    """Score each stage's predictions file against ``gold`` and collect what the page shows.

    ``stages``: ``[(name, predictions file)]`` in pipeline order (BIRD ``predict_dev.json`` or
    lfkit JSONL, as ``lfkit eval score`` reads them). ``trees``: a tree file or a ``lfkit tree
    build`` folder; a tree belongs to a gold question with the same id, database and gold SQL
    (train and dev ids overlap in BIRD-style corpora, so the id alone is not enough).
    """
    checked = check_stages(stages)
    items = read_gold(gold, difficulties)
    reports = [
        score_predictions(path, items, db_root, comparison=comparison, timeout=timeout, workers=workers, match=match)
        for _, path in checked
    ]
    names = [name for name, _ in checked]
    by_tree = load_question_trees(trees) if trees is not None else {}
    questions: list[QuestionView] = []
    matched = 0
    for i, item in enumerate(items):
        results = [r["results"][i] for r in reports]
        answers = [
            Answer(
                stage=name,
                sql=r["pred_sql"],
                label=result_label(r),
                status=r["status"],
                error=r["error"],
                issues=detect_issues(r["pred_sql"], question=item.question or None) if r["pred_sql"] else [],
            )
            for name, r in zip(names, results, strict=True)
        ]
        fixed, broken = transitions(names, [a.label == "correct" for a in answers])
        found = by_tree.get((item.key, item.db_id))
        steps = None
        if found is not None and _same_sql(found[0].gold_sql, item.gold_sql):
            steps = tree_steps(found[0])
            matched += 1
        questions.append(
            QuestionView(
                key=item.key,
                db_id=item.db_id,
                difficulty=item.difficulty,
                question=item.question,
                evidence=item.evidence,
                gold_sql=item.gold_sql,
                gold_status="ok",
                answers=answers,
                fixed_at=fixed,
                broken_at=broken,
                tree=steps,
            )
        )
    failed = {f["question_id"]: f["status"] for r in reports for f in r["gold_failures"]}
    for q in questions:
        q.gold_status = failed.get(q.key, "ok")
    stage_views = []
    for k, ((name, path), report) in enumerate(zip(checked, reports, strict=True)):
        labels = Counter(q.answers[k].label for q in questions)
        fixed = sum(1 for q in questions if k and q.correct[k] and not q.correct[k - 1])
        broke = sum(1 for q in questions if k and q.correct[k - 1] and not q.correct[k])
        stage_views.append(StageView(name, path, report, labels, fixed, broke))
    return ReportData(
        stages=stage_views,
        questions=questions,
        difficulties=list(reports[0]["by_difficulty"]),
        gold=Path(gold),
        comparison=comparison,
        trees_matched=matched,
        trees_unmatched=len(by_tree) - matched,
    )

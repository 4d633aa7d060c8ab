"""The stage runner shared by pipelines: typed results that round-trip, caching, --force, settings checks,
crashes, nested names."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lfkit.errors import LfkitError
from lfkit.pipeline.results import EvalResult, ModelRef, PrefsResult
from lfkit.pipeline.stages import Layout, StageError, StageResult, StageRunner, check_settings


@dataclass
class Toy(StageResult):
    """A stage result with one value of each JSON shape a real one has."""

    rows: int = 0
    curve: list[list[float]] = field(default_factory=list)
    model: ModelRef | None = None
    round: int | None = None
    x: int = 0
    y: int = 0


class Counter:
    """A stage function that counts its calls and returns a fixed result."""

    def __init__(self, result: dict) -> None:
        self.calls = 0
        self.result = result

    def __call__(self) -> Toy:
        self.calls += 1
        return Toy(**self.result)


def test_cached_stage_is_not_rerun(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    stage = Counter({"rows": 3, "curve": [[1, 0.5]], "model": ModelRef("base", ("a1", "a2"))})
    first = StageRunner(layout).run("corpus", "build", stage, Toy)
    assert stage.calls == 1 and first.rows == 3 and first.seconds is not None and first.seconds >= 0
    on_disk = json.loads((tmp_path / "stages" / "corpus.json").read_text())
    assert on_disk == first.to_json() and on_disk["model"] == {"base": "base", "adapters": ["a1", "a2"]}

    runner = StageRunner(layout)
    again = runner.run("corpus", "build", stage, Toy)
    assert stage.calls == 1  # read from the file, not recomputed
    # ... back into the same type: the nested ModelRef and its tuple of adapters too
    assert again == first and runner.results == {"corpus": first}
    assert isinstance(again.model, ModelRef) and again.model.adapters == ("a1", "a2")


def test_real_stage_results_round_trip(tmp_path: Path) -> None:
    prefs = PrefsResult(
        questions=2, candidates=4, labels={"correct": 1, "wrong": 3}, duplicates=0, pairs=3, questions_without_pair=0,
        pairs_by_reject_kind={"wrong": 3}, pairs_by_chosen_source={"gold": 1, "on-policy": 2}, pairs_file="p.jsonl",
        policy=ModelRef("m"), seconds=1.5,
    )  # fmt: skip
    evaluation = EvalResult(
        ex=50.0, n=2, correct=1, soft_f1=60.0, by_difficulty={"simple": {"ex": 50.0, "n": 2}}, errors=0, timeouts=0,
        empty_predictions=1, predictions="report/p.json", model=ModelRef("m", ("a",)),
    )  # fmt: skip
    for result in (prefs, evaluation):
        text = json.dumps(result.to_json())
        assert type(result).from_json(json.loads(text)) == result


def test_a_cached_result_of_another_shape_is_refused(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.stage_file("s").parent.mkdir(parents=True)
    layout.stage_file("s").write_text(json.dumps({"rows": 1, "last_accuracy": 0.5}))  # an older stage file
    with pytest.raises(StageError, match=r"unknown keys \['last_accuracy'\].*--force"):
        StageRunner(layout).run("s", "s", Counter({}), Toy)


def test_force_reruns_every_stage(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    a, b = Counter({"x": 1}), Counter({"y": 2})
    StageRunner(layout).run("a", "A", a, Toy)
    StageRunner(layout).run("b", "B", b, Toy)
    a.result, b.result = {"x": 10}, {"y": 20}
    runner = StageRunner(layout, force=True)
    assert runner.run("a", "A", a, Toy).x == 10 and runner.run("b", "B", b, Toy).y == 20
    assert (a.calls, b.calls) == (2, 2)
    assert json.loads(layout.stage_file("a").read_text())["x"] == 10


def test_crash_mid_stage_leaves_no_stage_file(tmp_path: Path) -> None:
    layout = Layout(tmp_path)

    def crashes() -> Toy:
        (tmp_path / "partial-artefact").write_text("half")
        raise KeyboardInterrupt  # Ctrl-C in the middle of the stage

    with pytest.raises(KeyboardInterrupt):
        StageRunner(layout).run("sample", "sample", crashes, Toy)
    assert layout.cached_stages() == []
    assert not layout.stages.exists() or not any(layout.stages.rglob("*"))  # no temp file either
    # the resumed run runs the stage again
    stage = Counter({"rows": 1})
    StageRunner(layout).run("sample", "sample", stage, Toy)
    assert stage.calls == 1 and layout.cached_stages() == ["sample"]


def test_a_stage_that_returns_another_type_is_a_bug(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="stage s returned dict, not a Toy"):
        StageRunner(Layout(tmp_path)).run("s", "s", lambda: {"rows": 1}, Toy)  # type: ignore[arg-type, return-value]
    assert Layout(tmp_path).cached_stages() == []


def test_nested_stage_names(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    runner = StageRunner(layout)
    for r in (1, 2):
        runner.run(f"round{r}/sample", f"round {r}: sample", Counter({"round": r}), Toy)
        runner.run(f"round{r}/dpo", f"round {r}: DPO", Counter({"round": r}), Toy)
    assert (tmp_path / "stages" / "round2" / "sample.json").is_file()
    assert layout.cached_stages() == ["round1/dpo", "round1/sample", "round2/dpo", "round2/sample"]
    assert runner.get("round2/dpo", Toy).round == 2
    for bad in ("../x", "a//b", "/abs", "", ".hidden", "a/..", "a b"):
        with pytest.raises(ValueError, match="invalid stage name"):
            layout.stage_file(bad)


def test_other_settings_are_refused_naming_the_keys(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    settings = {"seed": 0, "lr": 0.001, "n": 8}
    check_settings(layout, settings)
    check_settings(layout, {**settings, "lr": 0.5})  # nothing cached yet: nothing to mix, accepted
    assert json.loads(layout.settings.read_text())["lr"] == 0.5
    StageRunner(layout).run("round1/sample", "sample", Counter({"rows": 1}), Toy)

    check_settings(layout, {**settings, "lr": 0.5})  # the same settings resume
    with pytest.raises(StageError, match=r"other settings \(lr 0\.5 -> 0\.1, n 8 -> 9\).*--force") as err:
        check_settings(layout, {**settings, "lr": 0.1, "n": 9})
    assert isinstance(err.value, LfkitError)
    assert "seed" not in str(err.value)  # only the keys that differ are named
    with pytest.raises(StageError, match=r"extra None -> 'x'"):
        check_settings(layout, {**settings, "lr": 0.5, "extra": "x"})
    assert json.loads(layout.settings.read_text())["lr"] == 0.5  # a refused run records nothing

    check_settings(layout, {**settings, "lr": 0.1}, force=True)  # --force: the new settings stick
    assert json.loads(layout.settings.read_text()) == {**settings, "lr": 0.1}


def test_pipeline_doctests() -> None:
    import doctest

    import lfkit.pipeline.full
    import lfkit.pipeline.iterate
    import lfkit.pipeline.stages
    import lfkit.pipeline.steps

    for module in (lfkit.pipeline.stages, lfkit.pipeline.steps, lfkit.pipeline.iterate, lfkit.pipeline.full):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__

"""The stage runner shared by pipelines: caching, --force, settings checks, crashes, nested names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lfkit.errors import LfkitError
from lfkit.pipeline.stages import Layout, StageError, StageRunner, check_settings


class Counter:
    """A stage function that counts its calls and returns a fixed JSON-able dict."""

    def __init__(self, result: dict) -> None:
        self.calls = 0
        self.result = result

    def __call__(self) -> dict:
        self.calls += 1
        return dict(self.result)


def test_cached_stage_is_not_rerun(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    stage = Counter({"rows": 3, "curve": [[1, 0.5]]})
    first = StageRunner(layout).run("corpus", "build", stage)
    assert stage.calls == 1 and first["rows"] == 3 and first["seconds"] >= 0
    on_disk = json.loads((tmp_path / "stages" / "corpus.json").read_text())
    assert on_disk == first

    runner = StageRunner(layout)
    again = runner.run("corpus", "build", stage)
    assert stage.calls == 1  # read from the file, not recomputed
    assert again == first and runner.results == {"corpus": first}


def test_force_reruns_every_stage(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    a, b = Counter({"x": 1}), Counter({"y": 2})
    StageRunner(layout).run("a", "A", a)
    StageRunner(layout).run("b", "B", b)
    a.result, b.result = {"x": 10}, {"y": 20}
    runner = StageRunner(layout, force=True)
    assert runner.run("a", "A", a)["x"] == 10 and runner.run("b", "B", b)["y"] == 20
    assert (a.calls, b.calls) == (2, 2)
    assert json.loads(layout.stage_file("a").read_text())["x"] == 10


def test_crash_mid_stage_leaves_no_stage_file(tmp_path: Path) -> None:
    layout = Layout(tmp_path)

    def crashes() -> dict:
        (tmp_path / "partial-artefact").write_text("half")
        raise KeyboardInterrupt  # Ctrl-C in the middle of the stage

    with pytest.raises(KeyboardInterrupt):
        StageRunner(layout).run("sample", "sample", crashes)
    assert layout.cached_stages() == []
    assert not layout.stages.exists() or not any(layout.stages.rglob("*"))  # no temp file either
    # the resumed run runs the stage again
    stage = Counter({"n": 1})
    StageRunner(layout).run("sample", "sample", stage)
    assert stage.calls == 1 and layout.cached_stages() == ["sample"]


def test_a_stage_that_returns_no_dict_is_a_bug(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="stage s returned list"):
        StageRunner(Layout(tmp_path)).run("s", "s", lambda: [1, 2])  # type: ignore[arg-type, return-value]
    assert Layout(tmp_path).cached_stages() == []


def test_nested_stage_names(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    runner = StageRunner(layout)
    for r in (1, 2):
        runner.run(f"round{r}/sample", f"round {r}: sample", Counter({"round": r}))
        runner.run(f"round{r}/dpo", f"round {r}: DPO", Counter({"round": r}))
    assert (tmp_path / "stages" / "round2" / "sample.json").is_file()
    assert layout.cached_stages() == ["round1/dpo", "round1/sample", "round2/dpo", "round2/sample"]
    assert runner.results["round2/dpo"]["round"] == 2
    for bad in ("../x", "a//b", "/abs", "", ".hidden", "a/..", "a b"):
        with pytest.raises(ValueError, match="invalid stage name"):
            layout.stage_file(bad)


def test_other_settings_are_refused_naming_the_keys(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    settings = {"seed": 0, "lr": 0.001, "n": 8}
    check_settings(layout, settings)
    check_settings(layout, {**settings, "lr": 0.5})  # nothing cached yet: nothing to mix, accepted
    assert json.loads(layout.settings.read_text())["lr"] == 0.5
    StageRunner(layout).run("round1/sample", "sample", Counter({"k": 1}))

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

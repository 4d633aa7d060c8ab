"""`run_llamafactory` failures: a real llamafactory-cli run that fails names the recipe, the log and its end."""

from __future__ import annotations

from pathlib import Path

import pytest

from lfkit.errors import LfkitError
from lfkit.recipes import render_recipe, write_recipe
from lfkit.train import LOG_TAIL_LINES, TrainError, run_llamafactory


def test_failed_run_names_recipe_log_and_its_last_lines(tiny_model: Path, demo_datasets: Path, tmp_path: Path) -> None:
    config = render_recipe("sft", "tiny", {"max_steps": 1}, dataset_dir=demo_datasets, output_dir=tmp_path / "out")
    # a model folder that does not exist: LLaMA-Factory starts, then fails loading the tokenizer
    config["model_name_or_path"] = str(tmp_path / "no-such-model")
    recipe = write_recipe(config, tmp_path / "broken.yaml", validate=False)
    log = tmp_path / "logs" / "broken.log"
    with pytest.raises(TrainError) as err:
        run_llamafactory(recipe, log, title="SFT", progress=False)
    message = str(err.value)
    assert isinstance(err.value, LfkitError)
    assert message.startswith(f"SFT: llamafactory-cli train {recipe} failed (exit ")
    assert f"log: {log}" in message
    tail = log.read_text().splitlines()[-LOG_TAIL_LINES:]
    assert message.splitlines()[-len(tail) :] == tail
    assert "no-such-model" in log.read_text()
    assert not (tmp_path / "out" / "trainer_state.json").exists()


@pytest.mark.slow
def test_lfkit_train_runs_a_recipe(tiny_model: Path, demo_datasets: Path, tmp_path: Path) -> None:
    """`lfkit train RECIPE` (the Makefile's trainer): LLaMA-Factory trains, the summary is LF's own numbers."""
    import json

    from click.testing import CliRunner

    from lfkit.cli import main

    out = tmp_path / "out"
    config = render_recipe(
        "sft", "tiny", {"max_steps": 2, "logging_steps": 1}, dataset_dir=demo_datasets, output_dir=out
    )
    recipe = write_recipe(config, tmp_path / "sft.yaml")
    result = CliRunner().invoke(main, ["train", str(recipe)])
    assert result.exit_code == 0, result.output
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [r["loss"] for r in state["log_history"] if "loss" in r]
    assert state["global_step"] == 2 and len(losses) == 2
    assert f"train: 2 steps, loss {losses[0]} -> {losses[-1]}" in result.output
    assert "llamafactory" in (tmp_path / "sft.log").read_text().lower()  # the default log: RECIPE with .log

"""`lfkit` as a user runs it: diagnosed errors as one line, bugs and broken imports as themselves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lfkit.pipeline.config import demo_config, demo_settings
from lfkit.pipeline.layout import RunLayout


def _lfkit(*args: str, debug: bool = False, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LFKIT_DEBUG"}
    if debug:
        env["LFKIT_DEBUG"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "lfkit.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


def _one_error_line(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), run.stderr
    return lines[0]


def _old_demo_run(out: Path) -> None:
    """``out`` as a tiny demo run with default settings leaves it after its first stage."""
    layout = RunLayout(out)
    layout.stages.mkdir(parents=True)
    (layout.stages / "corpus.json").write_text("{}")
    layout.settings.write_text(json.dumps(demo_settings(demo_config("tiny", out=out))))


def test_register_bad_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "sft.json"
    bad.write_text('[{"instruction": "q", "output": ')
    args = ("register", "--dataset-info", str(tmp_path / "dataset_info.json"), "--name", "x", "--file", str(bad))
    line = _one_error_line(_lfkit(*args, "--kind", "sft"))
    assert str(bad) in line
    assert not (tmp_path / "dataset_info.json").exists()


def test_sampling_backend_problems_are_one_line(tmp_path: Path) -> None:
    # backend_from_options (library) raises LfkitErrors; no command wraps them
    sft = tmp_path / "sft.json"
    sft.write_text('[{"instruction": "q", "input": "", "output": "SELECT 1", "db_id": "x"}]')
    out = str(tmp_path / "o.jsonl")
    args = ("prefs", "rejects", "--sft-data", str(sft), "--db-root", str(tmp_path), "--output", out)
    assert _one_error_line(_lfkit(*args)) == "Error: give --base-model (or a --preset that names the model)"
    assert "unknown preset 'nope'" in _one_error_line(_lfkit(*args, "--preset", "nope"))
    assert "unknown embedded model 'gpt5'" in _one_error_line(_lfkit("models", "prepare", "gpt5"))


def test_render_unknown_preset_is_one_line(tmp_path: Path) -> None:
    line = _one_error_line(_lfkit("render", "sft", "--preset", "no-such-model", "-o", str(tmp_path / "r.yaml")))
    assert "unknown preset 'no-such-model'" in line and "tiny" in line


def test_demo_onto_a_run_with_other_settings_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    _old_demo_run(out)
    line = _one_error_line(_lfkit("demo", "--model", "tiny", "--out", str(out), "--dpo-lr", "0.5", "--seed", "3"))
    assert "seed 0 -> 3" in line and "dpo_lr" in line and "--force" in line
    # nothing ran: the old run's files are as they were
    assert json.loads((out / "settings.json").read_text())["seed"] == 0


def test_demo_bad_setting_is_one_line(tmp_path: Path) -> None:
    line = _one_error_line(_lfkit("demo", "--model", "tiny", "--out", str(tmp_path / "d"), "--n-sft", "100000"))
    assert "cannot exceed n_train" in line


def test_lfkit_debug_shows_the_traceback(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    _old_demo_run(out)
    run = _lfkit("demo", "--model", "tiny", "--out", str(out), "--seed", "3", debug=True)
    assert run.returncode == 1
    assert "Traceback" in run.stderr and "lfkit.pipeline.stages.StageError" in run.stderr
    # and for an error raised before any work starts (an unknown preset)
    run = _lfkit("render", "sft", "--preset", "no-such-model", "-o", str(tmp_path / "r.yaml"), debug=True)
    assert run.returncode == 1
    assert "Traceback" in run.stderr and "PresetError: unknown preset 'no-such-model'" in run.stderr


def _run_with_command(target: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import lfkit.cli as cli\n"
        f"cli.COMMANDS['bogus'] = ({target!r}, 'a command whose module cannot be imported')\n"
        "cli.main(['bogus'])\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_broken_lfkit_import_surfaces_as_itself() -> None:
    run = _run_with_command("lfkit.nonexistent:x")
    assert run.returncode == 1
    assert "ModuleNotFoundError: No module named 'lfkit.nonexistent'" in run.stderr
    assert "No such command" not in run.stderr


def test_missing_third_party_package_names_the_extra() -> None:
    package = "some_missing_extra_pkg"
    run = _run_with_command(f"{package}:x")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"`lfkit bogus` needs the Python package '{package}'" in run.stderr


VERIFYING_COMMANDS = [
    ("eval", "score"), ("eval", "select"), ("eval", "report"), ("tree", "build"), ("tree", "verify"),
    ("prefs", "rejects"), ("prefs", "cot"),
]  # fmt: skip


@pytest.mark.parametrize("command", VERIFYING_COMMANDS, ids=" ".join)
def test_every_command_that_executes_sql_checks_the_verifier_options_alike(command: tuple[str, ...]) -> None:
    from click.testing import CliRunner

    from lfkit.cli import main

    bad = CliRunner().invoke(main, [*command, "--comparison", "bag"])
    assert bad.exit_code == 2 and "'bag' is not one of 'bird', 'testsuite'" in bad.output, bad.output
    bad = CliRunner().invoke(main, [*command, "--timeout", "0"])
    assert bad.exit_code == 2 and "--timeout" in bad.output and "x>0" in bad.output, bad.output
    bad = CliRunner().invoke(main, [*command, "--workers", "-1"])
    assert bad.exit_code == 2 and "--workers" in bad.output and "x>=0" in bad.output, bad.output

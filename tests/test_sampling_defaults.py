"""One sampling-defaults table (issue 27): every command and pipeline stage that samples shows its
purpose's row of ``lfkit.generate.defaults.SAMPLING``, and no module declares a second copy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from click.testing import CliRunner

from lfkit.cli import main
from lfkit.generate.defaults import SAMPLING

LFKIT = Path(__file__).resolve().parents[1] / "lfkit"

COMMANDS = [
    (("prefs", "rejects"), "prefs"),
    (("prefs", "cot"), "prefs"),
    (("eval", "predict"), "candidates"),
    (("tree", "build"), "tree"),
]


def _command(path: tuple[str, ...]):
    import click

    ctx = click.Context(main)
    cmd = main
    for name in path:
        cmd = cmd.get_command(ctx, name)
    return cmd


@pytest.mark.parametrize(("path", "purpose"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_sampling_command_defaults_to_its_purposes_row(path: tuple[str, ...], purpose: str) -> None:
    row = SAMPLING[purpose]
    params = {p.name: p.default for p in _command(path).params}
    assert (params["temperature"], params["top_p"], params["seed"]) == (row.temperature, row.top_p, row.seed)
    help_text = " ".join(CliRunner().invoke(main, [*path, "--help"]).output.split())
    assert f"[default: {row.temperature}" in help_text and f"[default: {row.top_p}" in help_text


def test_pipeline_stages_sample_as_the_commands_they_stand_for() -> None:
    from lfkit.eval.predict import sample_candidates
    from lfkit.generate.base import SamplingConfig
    from lfkit.pipeline.config import SamplingSettings
    from lfkit.pipeline.full import FullConfig
    from lfkit.pipeline.steps import PREF_TOP_P, SEED_OFFSETS, prefs_seed
    from lfkit.prefs.job import JobConfig
    from lfkit.recipes.grpo import GRPO_DEFAULTS
    from lfkit.tree.build import TreeBuildConfig

    prefs, candidates, tree = SAMPLING["prefs"], SAMPLING["candidates"], SAMPLING["tree"]
    assert (SamplingSettings().temperature, PREF_TOP_P, prefs_seed(0)) == (prefs.temperature, prefs.top_p, prefs.seed)
    full = FullConfig()
    assert (full.bon_temperature, SEED_OFFSETS["bon"]) == (candidates.temperature, candidates.seed)
    assert (full.tree_temperature, SEED_OFFSETS["trees"]) == (tree.temperature, tree.seed)
    job = JobConfig(sft_data="x", db_root="y", output="z.jsonl")
    assert (job.temperature, job.top_p, job.seed) == (prefs.temperature, prefs.top_p, prefs.seed)
    trees = TreeBuildConfig(sft_data="x", db_root="y", output_dir="z")
    assert (trees.temperature, trees.top_p, trees.seed) == (tree.temperature, tree.top_p, tree.seed)
    kw = sample_candidates.__kwdefaults__
    assert (kw["temperature"], kw["top_p"], kw["seed"]) == (candidates.temperature, candidates.top_p, candidates.seed)
    api = SamplingConfig()
    assert (api.temperature, api.top_p, api.seed) == (SAMPLING["api"].temperature, SAMPLING["api"].top_p, 0)
    assert GRPO_DEFAULTS["temperature"] == SAMPLING["grpo"].temperature


SAMPLING_NAMES = {"temperature", "top_p", "--temperature", "--top-p"}


def _literal_defaults(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of every number given as a sampling default: a dataclass field / ``setting`` /
    ``click.option`` default or a function argument default for temperature / top_p."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id in SAMPLING_NAMES:
            value = node.value
            if isinstance(value, ast.Constant):
                found.append((node.lineno, node.target.id))
            elif isinstance(value, ast.Call):
                given = [kw.value for kw in value.keywords if kw.arg == "default"] + value.args[:1]
                found += [(node.lineno, node.target.id) for v in given if isinstance(v, ast.Constant)]
        first = node.args[0] if isinstance(node, ast.Call) and node.args else None
        if isinstance(first, ast.Constant) and first.value in SAMPLING_NAMES:
            defaults = [kw.value for kw in node.keywords if kw.arg == "default"]
            found += [(node.lineno, first.value) for v in defaults if isinstance(v, ast.Constant)]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True))
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None]
            for arg, default in pairs:
                if arg.arg in SAMPLING_NAMES and isinstance(default, ast.Constant) and default.value is not None:
                    found.append((default.lineno, arg.arg))
    return found


def test_no_module_declares_a_second_sampling_default() -> None:
    offenders = []
    for path in sorted(LFKIT.rglob("*.py")):
        if path.name == "defaults.py" and path.parent.name == "generate":
            continue
        offenders += [
            f"{path.relative_to(LFKIT)}:{line} {name}" for line, name in _literal_defaults(ast.parse(path.read_text()))
        ]
    assert offenders == []


def test_the_scan_finds_a_copied_default() -> None:
    """The scan above would catch each way a default gets copied."""
    source = """
import click
from dataclasses import dataclass, field
@dataclass
class C:
    temperature: float = field(default=0.8)
    top_p: float = 0.9
@click.option("--temperature", default=0.7)
def f(x, temperature=0.7, *, top_p: float = 0.95, seed=0): ...
"""
    names = sorted(name for _, name in _literal_defaults(ast.parse(source)))
    assert names == ["--temperature", "temperature", "temperature", "top_p", "top_p"]

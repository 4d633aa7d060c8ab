"""recipes/ is exactly what the templates and presets render (`lfkit render --sync`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from click.testing import CliRunner

from lfkit.cli import main
from lfkit.recipes import validate_recipe
from lfkit.recipes.examples import flow_examples, recipes_dir, sync_recipes


def test_checked_in_recipes_match_templates() -> None:
    drift = sync_recipes(check=True)
    assert drift == [], f"recipes/ drifted from templates/presets: {drift}; run `lfkit render --sync`"


def test_checked_in_recipes_cover_the_seed_flow_and_validate() -> None:
    root = recipes_dir()
    names = {p.relative_to(root).as_posix() for p in root.rglob("*.yaml")}
    # GRPO configs (TRL) and accelerate files are not LLaMA-Factory recipes: tests/test_grpo_config.py checks them
    names = {n for n in names if not n.startswith("accelerate/") and not Path(n).name.startswith("grpo")}
    assert {
        "qwen3-coder-30b-a3b/sft.yaml",
        "qwen3-coder-30b-a3b/dpo.yaml",
        "qwen3-coder-30b-a3b/dpo_round.yaml",
        "qwen3-coder-30b-a3b/rm.yaml",
        "qwen3-coder-30b-a3b/export.yaml",
    } <= names
    sft = yaml.safe_load((root / "qwen3-coder-30b-a3b/sft.yaml").read_text())
    dpo = yaml.safe_load((root / "qwen3-coder-30b-a3b/dpo.yaml").read_text())
    for name in names:
        validate_recipe(yaml.safe_load((root / name).read_text()))
    # DPO starts from the SFT output and uses the SFT model as reference (ZeRO-3: base + SFT adapter)
    assert dpo["adapter_name_or_path"] == sft["output_dir"] == dpo["ref_model_adapters"]
    assert dpo["ref_model"] == sft["model_name_or_path"]
    assert dpo["template"] == sft["template"] == "qwen3_nothink"
    # every DeepSpeed path a recipe names ships alongside, under the install prefix
    for name in names:
        ds = yaml.safe_load((root / name).read_text()).get("deepspeed")
        if ds:
            assert ds.startswith("examples/lfkit/deepspeed/")
            assert (root / ds.removeprefix("examples/lfkit/")).is_file()
    assert {ex.path for ex in flow_examples("qwen3-coder-30b-a3b")} <= names


def test_sync_detects_and_repairs_drift(tmp_path: Path) -> None:
    target = tmp_path / "recipes"
    shutil.copytree(recipes_dir(), target)
    (target / "README.md").write_text("hand-written, not synced\n")
    (target / "qwen3-coder-30b-a3b" / "sft.yaml").write_text("learning_rate: 1\n")
    (target / "stale.yaml").write_text("stage: sft\n")
    (target / "deepspeed" / "ds_z2_config.json").unlink()

    drift = sync_recipes(check=True, target=target)
    assert drift == ["deepspeed/ds_z2_config.json", "qwen3-coder-30b-a3b/sft.yaml", "stale.yaml"]
    assert (target / "stale.yaml").exists()  # check mode writes nothing

    assert sync_recipes(target=target) == drift
    assert sync_recipes(check=True, target=target) == []
    assert not (target / "stale.yaml").exists()
    assert (target / "README.md").read_text() == "hand-written, not synced\n"
    assert (target / "qwen3-coder-30b-a3b" / "sft.yaml").read_text() == (
        recipes_dir() / "qwen3-coder-30b-a3b" / "sft.yaml"
    ).read_text()


def test_cli_sync_check() -> None:
    res = CliRunner().invoke(main, ["render", "--sync", "--check"])
    assert res.exit_code == 0, res.output
    assert "up to date" in res.output

"""`lfkit install` into a directory laid out like a LLaMA-Factory checkout."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from lfkit.cli import main
from lfkit.recipes import RecipeError, validate_recipe
from lfkit.recipes.examples import recipes_dir
from lfkit.recipes.install import install_into

LF_ENTRIES = {
    "identity": {"file_name": "identity.json"},
    "alpaca_en_demo": {"file_name": "alpaca_en_demo.json"},
    "dpo_en_demo": {
        "file_name": "dpo_en_demo.json",
        "formatting": "sharegpt",
        "ranking": True,
        "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
    },
}


@pytest.fixture
def lf_checkout(tmp_path: Path) -> Path:
    root = tmp_path / "LLaMA-Factory"
    (root / "data").mkdir(parents=True)
    (root / "data" / "dataset_info.json").write_text(json.dumps(LF_ENTRIES, indent=2) + "\n")
    for name in ("identity.json", "alpaca_en_demo.json", "dpo_en_demo.json"):
        (root / "data" / name).write_text('[{"instruction": "hi", "input": "", "output": "hello"}]\n')
    (root / "examples" / "train_lora").mkdir(parents=True)
    (root / "examples" / "train_lora" / "llama3_lora_sft.yaml").write_text("stage: sft\n")
    (root / "src" / "llamafactory").mkdir(parents=True)
    (root / "src" / "llamafactory" / "__init__.py").write_text("")
    return root


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _backups(root: Path) -> list[str]:
    return sorted(
        rel for rel in _snapshot(root) if re.fullmatch(r"data/dataset_info\.json\.\d{8}-\d{6}(-\d+)?\.bak", rel)
    )


def test_install_merges_datasets_and_writes_recipes(lf_checkout: Path, demo_datasets: Path) -> None:
    before = _snapshot(lf_checkout)
    report = install_into(lf_checkout, data_dir=demo_datasets)
    after = _snapshot(lf_checkout)

    # datasets copied byte for byte, entries merged after the existing ones, which are untouched
    for name in ("text2sql_sft.json", "text2sql_dpo.jsonl"):
        assert after[f"data/{name}"] == (demo_datasets / name).read_bytes()
    info = json.loads(after["data/dataset_info.json"])
    assert list(info)[:3] == list(LF_ENTRIES)
    assert {k: info[k] for k in LF_ENTRIES} == LF_ENTRIES
    assert info["text2sql_dpo"]["ranking"] is True and info["text2sql_sft"]["columns"]["prompt"] == "instruction"
    (backup,) = _backups(lf_checkout)  # one backup per install, of the file as it was before
    assert after[backup] == before["data/dataset_info.json"]

    # nothing else changed; new files only where install promises
    for rel, content in before.items():
        if rel != "data/dataset_info.json":
            assert after[rel] == content, rel
    new = set(after) - set(before)
    assert all(rel.startswith(("data/", "examples/lfkit/")) for rel in new), new
    assert {"data/text2sql_sft.json", "data/text2sql_dpo.jsonl", backup} <= new

    # the recipes are recipes/ and resolve from the checkout root: datasets and DeepSpeed files exist there
    installed = sorted((lf_checkout / "examples" / "lfkit").rglob("*.yaml"))
    assert installed
    for path in installed:
        rel = path.relative_to(lf_checkout / "examples" / "lfkit")
        assert path.read_bytes() == (recipes_dir() / rel).read_bytes()
        validate_recipe(yaml.safe_load(path.read_text()), base_dir=lf_checkout)
    launch = lf_checkout / "examples/lfkit/qwen3-coder-30b-a3b/launch.sh"
    assert launch.stat().st_mode & 0o111

    # LLaMA-Factory's own dataset parser finds old and new entries
    from llamafactory.data.parser import get_dataset_list

    attrs = get_dataset_list(["identity", "text2sql_sft", "text2sql_dpo"], str(lf_checkout / "data"))
    assert [a.ranking for a in attrs] == [False, False, True]

    actions = {action for _, action in report}
    assert {"written", "added:text2sql_sft", "added:text2sql_dpo", "backup"} <= actions

    # idempotent: a second run writes nothing new
    again = install_into(lf_checkout, data_dir=demo_datasets)
    assert all(action.startswith("unchanged") for _, action in again), again
    assert _snapshot(lf_checkout) == after


def test_install_refuses_conflicts_without_touching_anything(lf_checkout: Path, demo_datasets: Path) -> None:
    info_path = lf_checkout / "data" / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["text2sql_sft"] = {"file_name": "someone_elses.json"}
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    before = _snapshot(lf_checkout)
    with pytest.raises(RecipeError, match=r"entry 'text2sql_sft' exists and differs.*--force"):
        install_into(lf_checkout, data_dir=demo_datasets)
    assert _snapshot(lf_checkout) == before

    install_into(lf_checkout, data_dir=demo_datasets, datasets=["text2sql_dpo"], recipes=False)
    (lf_checkout / "data" / "text2sql_dpo.jsonl").write_text('{"user": "edited"}\n')
    before = _snapshot(lf_checkout)
    with pytest.raises(RecipeError, match=r"text2sql_dpo.jsonl exists and differs"):
        install_into(lf_checkout, data_dir=demo_datasets, datasets=["text2sql_dpo"], recipes=False)
    assert _snapshot(lf_checkout) == before

    backups = _backups(lf_checkout)
    kept = {rel: (lf_checkout / rel).read_bytes() for rel in backups}
    install_into(lf_checkout, data_dir=demo_datasets, force=True)
    # a new backup (a counter when within the same second); every earlier one is kept unchanged
    new_backups = _backups(lf_checkout)
    assert len(new_backups) == len(backups) + 1 and set(backups) < set(new_backups)
    assert all((lf_checkout / rel).read_bytes() == content for rel, content in kept.items())
    (latest,) = set(new_backups) - set(backups)
    assert json.loads((lf_checkout / latest).read_text())["text2sql_sft"] == {"file_name": "someone_elses.json"}
    info = json.loads(info_path.read_text())
    assert info["text2sql_sft"]["file_name"] == "text2sql_sft.json"
    assert (lf_checkout / "data" / "text2sql_dpo.jsonl").read_bytes() == (
        demo_datasets / "text2sql_dpo.jsonl"
    ).read_bytes()


def test_install_cli(lf_checkout: Path, demo_datasets: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["install", "--lf-dir", str(lf_checkout), "--data", str(demo_datasets)])
    assert res.exit_code == 0, res.output
    assert "added:text2sql_sft" in res.output and "examples/lfkit/qwen3-coder-30b-a3b/dpo.yaml" in res.output

    not_lf = tmp_path / "empty"
    not_lf.mkdir()
    res = runner.invoke(main, ["install", "--lf-dir", str(not_lf), "--data", str(demo_datasets)])
    assert res.exit_code != 0 and "does not look like a LLaMA-Factory checkout" in res.output
    assert list(not_lf.iterdir()) == []

    res = runner.invoke(main, ["install", "--lf-dir", str(lf_checkout), "--data", str(demo_datasets), "--dataset", "x"])
    assert res.exit_code != 0 and "no dataset 'x'" in res.output and "Traceback" not in res.output


def test_install_reports_bad_data_rows(lf_checkout: Path, tmp_path: Path) -> None:
    from lfkit.registry import register_dataset

    data = tmp_path / "data"
    data.mkdir()
    good = [{"instruction": "i", "input": "q", "output": "```sql\nSELECT 1\n```"}]
    (data / "text2sql_sft.json").write_text(json.dumps(good))
    register_dataset(data / "dataset_info.json", "text2sql_sft", data / "text2sql_sft.json", "sft")
    (data / "text2sql_sft.json").write_text(json.dumps([*good, {"instruction": "i", "input": "q", "output": ""}]))
    before = _snapshot(lf_checkout)
    res = CliRunner().invoke(main, ["install", "--lf-dir", str(lf_checkout), "--data", str(data)])
    assert res.exit_code != 0
    assert "text2sql_sft.json: row 1: field 'output' is empty" in res.output
    assert _snapshot(lf_checkout) == before


def _own_names(demo_datasets: Path, data: Path, names: dict[str, tuple[str, str]]) -> Path:
    """An lfkit data folder whose datasets have the user's names: name -> (kind, file of demo_datasets)."""
    from lfkit.registry import register

    data.mkdir()
    for name, (kind, file_name) in names.items():
        dest = data / f"{name}{Path(file_name).suffix}"
        shutil.copyfile(demo_datasets / file_name, dest)
        register(data / "dataset_info.json", name, dest, kind)
    return data


def test_install_recipes_name_the_installed_datasets(lf_checkout: Path, demo_datasets: Path, tmp_path: Path) -> None:
    """A new user's data (the demo's lfkit_demo_* names) with an extra preset: no recipe names a missing dataset."""
    data = _own_names(
        demo_datasets,
        tmp_path / "demo_out_data",
        {"lfkit_demo_sft": ("sft", "text2sql_sft.json"), "lfkit_demo_dpo": ("preference", "text2sql_dpo.jsonl")},
    )
    res = CliRunner().invoke(
        main, ["install", "--lf-dir", str(lf_checkout), "--data", str(data), "--preset", "qwen2.5-coder-1.5b"]
    )
    assert res.exit_code == 0, res.output
    assert "note:" not in res.output and "not registered" not in res.output
    registered = json.loads((lf_checkout / "data" / "dataset_info.json").read_text())
    recipes = sorted((lf_checkout / "examples" / "lfkit").rglob("*.yaml"))
    assert {p.parent.name for p in recipes} == {"qwen3-coder-30b-a3b", "qwen2.5-coder-1.5b"}
    named = {}
    for path in recipes:
        config = yaml.safe_load(path.read_text())
        if "dataset" in config:
            assert config["dataset"] in registered, (path, config["dataset"])
            named[path.relative_to(lf_checkout / "examples" / "lfkit").as_posix()] = config["dataset"]
        validate_recipe(config, base_dir=lf_checkout)  # LF's parser: the dataset exists and suits the stage
    assert named["qwen2.5-coder-1.5b/sft.yaml"] == named["qwen3-coder-30b-a3b/sft.yaml"] == "lfkit_demo_sft"
    for stage in ("dpo", "dpo_round", "rm"):
        assert named[f"qwen2.5-coder-1.5b/{stage}.yaml"] == "lfkit_demo_dpo"


def test_install_recipe_dataset_choice(lf_checkout: Path, demo_datasets: Path, tmp_path: Path) -> None:
    data = _own_names(
        demo_datasets,
        tmp_path / "data",
        {
            "my_sft": ("sft", "text2sql_sft.json"),
            "pairs_r1": ("preference", "text2sql_dpo.jsonl"),
            "pairs_r2": ("preference", "text2sql_dpo.jsonl"),
        },
    )
    before = _snapshot(lf_checkout)
    base = ["install", "--lf-dir", str(lf_checkout), "--data", str(data)]
    refusals = {
        (): "several preference datasets are being installed (pairs_r1, pairs_r2): choose the one the dpo "
        "recipe trains on with --dpo-dataset",
        ("--dpo-dataset", "pairs_r3"): "--dpo-dataset pairs_r3: not among the datasets being installed "
        "(my_sft, pairs_r1, pairs_r2)",
        ("--dpo-dataset", "my_sft"): "--dpo-dataset my_sft: a sft dataset; the dpo recipe needs preference",
        ("--dpo-dataset", "pairs_r2", "--sft-dataset", "pairs_r1"): "--sft-dataset pairs_r1: a preference dataset",
        ("--dataset", "my_sft", "--dataset", "pairs_r1", "--dpo-dataset", "pairs_r2"): "--dpo-dataset pairs_r2: "
        "not among the datasets being installed (my_sft, pairs_r1)",
    }
    for extra, message in refusals.items():
        res = CliRunner().invoke(main, [*base, *extra])
        assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output, (extra, res.output)
        assert _snapshot(lf_checkout) == before  # refused before anything is written

    res = CliRunner().invoke(main, [*base, "--dpo-dataset", "pairs_r2", "--rm-dataset", "pairs_r1"])
    assert res.exit_code == 0, res.output
    flow = lf_checkout / "examples" / "lfkit" / "qwen3-coder-30b-a3b"
    named = {p.stem: yaml.safe_load(p.read_text()).get("dataset") for p in flow.glob("*.yaml")}
    assert named == {"sft": "my_sft", "dpo": "pairs_r2", "dpo_round": "pairs_r2", "rm": "pairs_r1", "export": None}
    # rm follows the DPO choice unless chosen itself
    assert install_into(lf_checkout, data_dir=data, recipe_datasets={"dpo": "pairs_r1"}, force=True)
    named = {p.stem: yaml.safe_load(p.read_text()).get("dataset") for p in flow.glob("*.yaml")}
    assert named["dpo"] == named["rm"] == "pairs_r1"
    # datasets only: nothing to choose
    assert install_into(lf_checkout, data_dir=data, recipes=False)

"""Hub model ids without a network (issue 26): the tiny model stored in the standard Hugging Face
hub cache layout under a hub-style id, in a temporary HF_HOME, offline; render ->
llamafactory-cli train -> sampling -> eval find it by its id. An id that is not cached while
offline is one ``Error:`` line naming the id and the setting."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lfkit.models import ModelError
from lfkit.models.embedded import MARKER, check_hub_model, resolve_model

REPO = Path(__file__).resolve().parents[1]
HUB_ID = "lfkit-test/tiny-qwen3"
REVISION = "0123456789abcdef0123456789abcdef01234567"


def cache_as_hub_model(folder: Path, hf_home: Path, repo_id: str = HUB_ID) -> Path:
    """Store ``folder`` as huggingface_hub does: blobs by sha256, snapshot links, refs/main."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / REVISION
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for file in sorted(folder.iterdir()):
        if file.name == MARKER:  # a hub model has no lfkit marker: the template must come from the user
            continue
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return snapshot


def lfkit_env(hf_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "TRANSFORMERS_OFFLINE")}
    return {**env, "PYTHONPATH": str(REPO), "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}


def lfkit(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lfkit.cli", *args], env=env, cwd=cwd, capture_output=True, text=True)


def test_uncached_hub_id_while_offline_is_one_error_line(tmp_path: Path, demo_corpus: Path) -> None:
    env = lfkit_env(tmp_path / "hf")
    done = lfkit(
        "eval", "predict", "--bird-dir", str(demo_corpus), "--split", "dev", "--limit", "1",
        "--base-model", "lfkit-test/not-cached", "--template", "qwen3_nothink", "--out", "p.json",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: model 'lfkit-test/not-cached'"), done.stderr
    assert "HF_HUB_OFFLINE=1" in lines[0] and str(tmp_path / "hf" / "hub") in lines[0]


def test_check_hub_model_reads_the_cache_and_the_setting(tmp_path: Path, tiny_model: Path) -> None:
    hf_home = tmp_path / "hf"
    cache_as_hub_model(tiny_model, hf_home)
    offline = {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    check_hub_model(HUB_ID, offline)  # cached: fine offline
    check_hub_model("org/absent", {"HF_HOME": str(hf_home)})  # online: the hub may have it
    with pytest.raises(ModelError, match=r"'org/absent' .* HF_HUB_OFFLINE=1 forbids downloading it"):
        check_hub_model("org/absent", offline)
    with pytest.raises(ModelError, match="TRANSFORMERS_OFFLINE=1"):
        check_hub_model("org/absent", {"HF_HOME": str(hf_home), "TRANSFORMERS_OFFLINE": "1"})
    assert resolve_model(str(tiny_model)) == str(tiny_model)  # a folder is never looked up


@pytest.mark.slow
def test_hub_id_from_the_cache_render_train_sample_eval(tmp_path: Path, tiny_model: Path, demo_corpus: Path) -> None:
    hf_home = tmp_path / "hf"
    cache_as_hub_model(tiny_model, hf_home)
    env = lfkit_env(hf_home)
    data = tmp_path / "data"

    steps = [
        ("data", "sft", "--bird-dir", str(demo_corpus), "--split", "train", "--out", str(data / "sft.json"),
         "--n-examples", "0", "--limit", "8"),
        ("register", "--dataset-info", str(data / "dataset_info.json"), "--name", "text2sql_sft",
         "--file", str(data / "sft.json"), "--kind", "sft"),
        ("render", "sft", "--preset", "tiny", "--set", f"model_name_or_path={HUB_ID}", "--dataset", "text2sql_sft",
         "--dataset-dir", str(data), "--output-dir", str(tmp_path / "saves" / "sft"), "--set", "max_steps=2",
         "-o", str(tmp_path / "sft.yaml")),
    ]  # fmt: skip
    for args in steps:
        done = lfkit(*args, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    train = subprocess.run(
        [sys.executable, "-c", "import sys; from lfkit.train import run_llamafactory; "
         "r = run_llamafactory(sys.argv[1], sys.argv[2], progress=False); print(r.steps)",
         str(tmp_path / "sft.yaml"), str(tmp_path / "sft.log")],
        env=env, cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    assert train.stdout.split()[-1] == "2"
    adapter_config = json.loads((tmp_path / "saves" / "sft" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == HUB_ID  # LF loaded it by its id

    predict = lfkit(
        "eval", "predict", "--bird-dir", str(demo_corpus), "--split", "dev", "--limit", "3",
        "--base-model", HUB_ID, "--template", "qwen3_nothink", "--adapter-path", str(tmp_path / "saves" / "sft"),
        "--n-examples", "0", "--max-new-tokens", "8", "--workers", "0", "--no-progress",
        "--out", str(tmp_path / "predict_dev.json"),
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert predict.returncode == 0, predict.stderr[-3000:]
    assert len(json.loads((tmp_path / "predict_dev.json").read_text())) == 3
    score = lfkit(
        "eval", "score", "-p", str(tmp_path / "predict_dev.json"), "-g", str(demo_corpus / "dev.json"),
        "--db-root", str(demo_corpus / "dev_databases"),
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert score.returncode == 0, score.stderr[-3000:]
    assert "EX" in score.stdout

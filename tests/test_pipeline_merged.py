"""The merged-model cache (lfkit.pipeline.merged): one merge per distinct adapter, bounded, shared by processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_grpo_train import make_adapter

from lfkit.pipeline import merged as cache


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


@pytest.fixture
def adapters(tiny_model: Path, tmp_path: Path) -> list[Path]:
    """Three adapters at three paths (the cache key names each path): three distinct merges."""
    first = make_adapter(tiny_model, tmp_path / "a")
    return [first] + [Path(shutil.copytree(first, tmp_path / name)) for name in ("b", "c")]


def test_a_merge_is_written_once_and_found_again(
    tiny_model: Path, adapters: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LFKIT_HOME", str(tmp_path / "home"))
    out = cache.merged_model(str(tiny_model), [str(adapters[0])])
    assert out.parent == tmp_path / "home" / "merged" and (out / "config.json").is_file()
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    os.utime(out / "lfkit_merge.json", (1, 1))  # as if last used long ago
    assert cache.merged_model(str(tiny_model), [str(adapters[0])]) == out
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp  # not merged again
    assert (out / "lfkit_merge.json").stat().st_mtime > 1  # the hit counts as a use
    assert cache.merged_model(str(tiny_model), [str(adapters[1])]) != out  # other weights' path, other merge


def test_the_cache_keeps_the_most_recently_used_merges_within_its_budget(
    tiny_model: Path, adapters: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("LFKIT_HOME", str(tmp_path / "home"))
    a = cache.merged_model(str(tiny_model), [str(adapters[0])])
    size = _folder_bytes(a)
    monkeypatch.setenv(cache.BUDGET_ENV, str(2.5 * size / 1e9))  # room for two merges, not three
    b = cache.merged_model(str(tiny_model), [str(adapters[1])])
    c = cache.merged_model(str(tiny_model), [str(adapters[2])])
    assert a.is_dir() and b.is_dir() and c.is_dir()  # all used within RECENT_S: another run may load them

    os.utime(a / "lfkit_merge.json", (100, 100))  # a used before b, both long ago
    os.utime(b / "lfkit_merge.json", (200, 200))
    monkeypatch.setattr(cache, "RECENT_S", 0.0)
    leftover = a.with_name(a.name + ".tmp")  # a merge killed half-way
    leftover.mkdir()
    assert cache.merged_model(str(tiny_model), [str(adapters[2])]) == c
    assert not a.exists() and b.is_dir() and c.is_dir()  # least recently used goes first
    assert not leftover.exists()
    assert "removed 2 least recently used" in capsys.readouterr().err
    assert _folder_bytes(tmp_path / "home" / "merged") <= 2.5 * size

    again = cache.merged_model(str(tiny_model), [str(adapters[0])])  # asked for again: merged again
    assert again == a and (a / "config.json").is_file() and not b.exists()  # b was now the oldest


def test_the_newest_merge_stays_even_over_budget(
    tiny_model: Path, adapters: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LFKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(cache.BUDGET_ENV, "0")
    monkeypatch.setattr(cache, "RECENT_S", 0.0)
    a = cache.merged_model(str(tiny_model), [str(adapters[0])])
    assert (a / "config.json").is_file()
    b = cache.merged_model(str(tiny_model), [str(adapters[1])])
    assert (b / "config.json").is_file() and not a.exists()


@pytest.mark.parametrize("value", ["ten", "-1"])
def test_a_bad_budget_is_refused_by_name(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.BUDGET_ENV, value)
    with pytest.raises(cache.CacheBudgetError, match=f"LFKIT_MERGED_CACHE_GB='{value}'"):
        cache.budget_bytes()  # an LfkitError: the command line prints it as one line


def test_two_processes_asking_for_one_merge_share_it(tiny_model: Path, adapters: list[Path], tmp_path: Path) -> None:
    # Without the cache's lock both would write <key>.tmp and one would remove the other's half-written folder.
    code = "import sys; from lfkit.pipeline.merged import merged_model; print(merged_model(sys.argv[1], [sys.argv[2]]))"
    env = {**os.environ, "LFKIT_HOME": str(tmp_path / "home")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tiny_model), str(adapters[0])], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1] and (Path(outs[0]) / "model.safetensors").is_file()
    assert sorted(p.name for p in (tmp_path / "home" / "merged").iterdir()) == [".lock", Path(outs[0]).name]

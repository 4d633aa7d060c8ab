"""Children of lfkit die with it (lfkit.children), and an output folder in use is refused.

SIGKILL of the lfkit process alone (not its group) must take the trainer down: once with a
tree of shell processes in several groups (fast), once with a real ``llamafactory-cli train``
started by ``run_llamafactory`` (slow).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from lfkit.children import FolderInUseError, folder_lock, start_guarded

REPO = Path(__file__).resolve().parents[1]


def _wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_lfkit(code: str, tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A separate Python process running lfkit code (its own group, so SIGKILL hits it alone)."""
    env = {**(env or os.environ), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "lfkit.err", "w"),
        start_new_session=True,
    )


def test_sigkill_of_lfkit_takes_down_every_descendant(tmp_path: Path) -> None:
    # the work: a shell with a child in its group and one that escapes into a session of its own
    # (as some launchers do); both must go when the lfkit process is SIGKILLed
    script = tmp_path / "work.sh"
    script.write_text("sleep 300 &\nsetsid sleep 301 &\nwait\n")
    lfkit = _start_lfkit(
        f"""
        import time
        from lfkit.children import start_guarded
        start_guarded(["bash", {str(script)!r}])
        time.sleep(600)
        """,
        tmp_path,
    )
    try:

        def started() -> list[psutil.Process] | None:
            # both sleeps exec'd (under load `setsid` can still be setsid, not yet sleep)
            tree = psutil.Process(lfkit.pid).children(recursive=True)
            names = [p.name() for p in tree]
            return tree if names.count("sleep") == 2 and "bash" in names else None

        tree = _wait_for(started, 30, "guard, bash and both sleeps")
        pids = [p.pid for p in tree]
        lfkit.send_signal(signal.SIGKILL)  # lfkit alone: no handler runs, its group is not signalled
        lfkit.wait()
        _wait_for(lambda: not _alive(pids), 15, f"descendants {pids} to exit")
    finally:
        for pid in _alive([lfkit.pid]):
            os.kill(pid, signal.SIGKILL)


def test_guard_returns_the_work_exit_status_and_terminate_stops_it(tmp_path: Path) -> None:
    done = start_guarded(["bash", "-c", "echo out; exit 3"], stdout=subprocess.PIPE, text=True)
    out, _ = done.communicate(timeout=30)
    assert done.returncode == 3 and out == "out\n"

    running = start_guarded(["bash", "-c", "sleep 300 & wait"])
    bash = _wait_for(lambda: psutil.Process(running.pid).children(recursive=True), 30, "the work")
    running.terminate()  # what run_llamafactory does on Ctrl-C
    assert running.wait(timeout=30) == 128 + signal.SIGTERM
    _wait_for(lambda: not _alive([p.pid for p in bash]), 15, "the work to exit")


def test_folder_in_use_is_refused_with_the_holder_pid(tmp_path: Path) -> None:
    out = tmp_path / "saves" / "sft"
    first = rf"in use by another run \(pid {os.getpid()}: first run\)"
    with folder_lock(out, "first run"), pytest.raises(FolderInUseError, match=first), folder_lock(out, "second run"):
        pass
    with folder_lock(out, "third run"):  # released when the first run ended
        pass


def test_lock_outlives_lfkit_until_its_child_is_gone(tmp_path: Path) -> None:
    out = tmp_path / "saves" / "sft"
    lfkit = _start_lfkit(
        f"""
        import time
        from lfkit.children import folder_lock, start_guarded
        with folder_lock({str(out)!r}, "holder") as fd:
            start_guarded(["sleep", "300"], pass_fds=(fd,))
            time.sleep(600)
        """,
        tmp_path,
    )
    try:
        tree = _wait_for(lambda: len(c := psutil.Process(lfkit.pid).children(recursive=True)) >= 2 and c, 30, "sleep")
        with pytest.raises(FolderInUseError, match=rf"pid {lfkit.pid}: holder"), folder_lock(out, "re-run"):
            pass
        lfkit.send_signal(signal.SIGKILL)
        lfkit.wait()
        _wait_for(lambda: not _alive([p.pid for p in tree]), 15, "the guarded sleep to exit")
        with folder_lock(out, "re-run"):  # free once the whole run is gone
            pass
    finally:
        for pid in _alive([lfkit.pid]):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.parametrize("torchrun", [False, True], ids=["one-process", "torchrun-x2"])
def test_sigkill_of_lfkit_stops_llamafactory_training(
    torchrun: bool, tiny_model: Path, demo_datasets: Path, tmp_path: Path
) -> None:
    from lfkit.recipes import render_recipe, write_recipe

    # long enough to be killed mid-run: many steps of the tiny model
    overrides = {"max_steps": 2000, "cutoff_len": 256, "logging_steps": 1, "save_steps": 100000}
    recipe = render_recipe("sft", "tiny", overrides, dataset_dir=str(demo_datasets), output_dir=tmp_path / "sft")
    recipe_path = write_recipe(recipe, tmp_path / "sft.yaml")
    runner = f"""
        from lfkit.train import run_llamafactory
        run_llamafactory({str(recipe_path)!r}, {str(tmp_path / "sft.log")!r}, progress=False)
        """
    # a device setting of the user's own reaches the trainer unchanged (issue 26; no GPU here, so harmless)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "7", "OMP_NUM_THREADS": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    if torchrun:  # llamafactory-cli -> torchrun -> 2 workers: the whole tree must go
        env.update(FORCE_TORCHRUN="1", NPROC_PER_NODE="2", MASTER_PORT=str(_free_port()))
    lfkit = _start_lfkit(runner, tmp_path, env)
    try:
        trainer_log = tmp_path / "sft" / "trainer_log.jsonl"
        _wait_for(lambda: trainer_log.exists() and trainer_log.stat().st_size > 0, 300, "training steps")
        tree = psutil.Process(lfkit.pid).children(recursive=True)
        assert len(tree) == (5 if torchrun else 2)  # guard, llamafactory-cli[, torchrun, 2 workers]
        trainer = next(p for p in tree if "llamafactory-cli" in " ".join(p.cmdline()))
        trainer_env = trainer.environ()
        assert trainer_env["CUDA_VISIBLE_DEVICES"] == "7"
        assert trainer_env["HF_HUB_OFFLINE"] == "1"  # the tiny model is a local folder: it never needs the hub

        # a second run into the same folder is refused while the first lives, naming its pid
        again = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(runner)],
            env={**env, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode != 0 and f"in use by another run (pid {lfkit.pid}" in again.stderr
        assert trainer_log.stat().st_size > 0  # the refused run touched nothing of the live one's

        lfkit.send_signal(signal.SIGKILL)
        lfkit.wait()
        _wait_for(lambda: not _alive([p.pid for p in tree]), 20, "llamafactory-cli to exit")
    finally:
        for pid in _alive([lfkit.pid]):
            os.kill(pid, signal.SIGKILL)

"""Child processes for long work that die with lfkit, and output folders one run at a time.

Killing ``lfkit`` (even with SIGKILL, which no handler sees) must not leave a trainer
running on as an orphan, writing into a folder that a re-run writes too. Two pieces:

* :func:`start_guarded` starts ``argv`` under a small guard process (``python -m
  lfkit.children``). The guard is lfkit's direct child, asks Linux for a signal when lfkit
  dies (``prctl(PR_SET_PDEATHSIG)``), becomes a child subreaper (orphans of the work -- e.g.
  torchrun's workers when ``llamafactory-cli`` dies -- become its children, not init's) and
  runs the work in a process group of its own. When lfkit dies, or on SIGTERM / SIGINT, it
  takes the whole group down (SIGTERM, then SIGKILL after :data:`GRACE_S`) and every
  descendant left, then exits. The work itself gets ``PR_SET_PDEATHSIG(SIGKILL)`` towards the
  guard, so even a SIGKILLed guard takes its direct child along. Only Linux has these calls:
  elsewhere the guard only forwards signals.
* :func:`folder_lock` holds an exclusive ``flock`` on ``.<folder>.lfkit-lock`` beside an
  output folder for a run; the descriptor is inherited by the guard, so the lock lasts until
  the last process of the run is gone (not merely lfkit). A second run on the same folder
  gets :class:`FolderInUseError` naming the holder's pid.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lfkit.errors import LfkitError

GRACE_S = 10.0  # SIGTERM first (a trainer may flush its logs), SIGKILL after this
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PARENT_ENV = "LFKIT_GUARD_PARENT"

__all__ = ["GRACE_S", "FolderInUseError", "folder_lock", "start_guarded"]


class FolderInUseError(LfkitError):
    """Another live run holds the output folder's lock."""


# libc's prctl, looked up before any fork: a preexec_fn must not dlopen (locks held by other threads).
_LIBC_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def _prctl(option: int, value: int) -> bool:
    return _LIBC_PRCTL is not None and _LIBC_PRCTL(option, value, 0, 0, 0) == 0


def _die_with_parent(sig: int) -> None:
    """Ask for ``sig`` when the parent thread exits (preexec_fn of a child; Linux only)."""
    _prctl(_PR_SET_PDEATHSIG, sig)


def start_guarded(argv: Sequence[str], *, pass_fds: Sequence[int] = (), **popen: Any) -> subprocess.Popen:
    """Start ``argv`` under a guard that takes it (and everything it starts) down when this process dies.

    ``popen`` goes to :class:`subprocess.Popen` (stdout, stderr, env, cwd). The returned
    process is the guard: its exit status is the work's, ``terminate()`` stops the whole work.
    The guard runs in a new session, so a terminal's Ctrl-C reaches lfkit, which then calls
    ``terminate()``. PR_SET_PDEATHSIG fires when the thread that started the guard exits: call
    this from the thread that waits for it.
    """
    env = dict(popen.pop("env", None) or os.environ)
    env[_PARENT_ENV] = str(os.getpid())
    # The guard must import lfkit from wherever this process did (an editable tree, PYTHONPATH).
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "lfkit.children", "--", *argv],
        env=env,
        pass_fds=tuple(pass_fds),
        start_new_session=True,
        preexec_fn=lambda: _die_with_parent(signal.SIGTERM),
        **popen,
    )


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], what: str) -> Iterator[int]:
    """Hold the lock of output folder ``folder`` for the ``with`` block; yield its descriptor.

    Pass the descriptor to :func:`start_guarded` (``pass_fds``) so the lock outlives a killed
    lfkit until its child is gone too. Raises :class:`FolderInUseError` when another run holds it.
    """
    folder = Path(folder)
    lock_path = folder.parent / f".{folder.name}.lfkit-lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise FolderInUseError(
                f"{folder} is in use by another run ({holder}); wait for it or stop it (lock file {lock_path})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {what}\n".encode(), 0)
        yield fd
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- the guard process


def _descendants(root: int) -> list[int]:
    """Pids below ``root`` in the process tree (Linux /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in () may hold spaces
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            found.append(pid)
            todo.append(pid)
    return found


def _take_down(work: subprocess.Popen) -> None:
    """SIGTERM the work's group, SIGKILL it after GRACE_S, then SIGKILL every descendant left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(work.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while work.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(work.pid, signal.SIGKILL)
    work.wait()
    if sys.platform.startswith("linux"):  # orphans re-parented to us (subreaper), in other groups too
        for pid in _descendants(os.getpid()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _guard(argv: list[str]) -> int:
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda sig, _frame: stop.append(sig))
    signal.signal(signal.SIGINT, lambda sig, _frame: stop.append(sig))
    # The parent may have died between fork and prctl: then the death signal never comes.
    if os.environ.get(_PARENT_ENV) not in (None, str(os.getppid())):
        return 128 + signal.SIGTERM
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    env = {k: v for k, v in os.environ.items() if k != _PARENT_ENV}
    try:
        work = subprocess.Popen(
            argv, env=env, start_new_session=True, preexec_fn=lambda: _die_with_parent(signal.SIGKILL)
        )
    except OSError as exc:
        print(f"lfkit guard: cannot start {argv[0]}: {exc}", file=sys.stderr)
        return 127
    while work.poll() is None and not stop:
        with contextlib.suppress(subprocess.TimeoutExpired):
            work.wait(timeout=0.5)
    if stop:
        _take_down(work)
        return 128 + stop[0]
    _take_down(work)  # the work ended: stop anything it left behind (its group is gone or stray)
    return work.returncode


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        sys.exit("usage: python -m lfkit.children -- COMMAND [ARG ...]")
    sys.exit(_guard(args))

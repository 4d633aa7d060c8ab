"""Cached stages for every pipeline (``lfkit demo``, and the coming ``lfkit iterate``).

A stage is a name and a function returning a JSON-able dict. :class:`StageRunner` runs it
once and caches the dict in ``<out>/stages/<name>.json`` (written atomically, so a crash
mid-stage leaves no file and the stage runs again on resume); a later run reads the file
instead of calling the function, unless ``force``. Names may be nested (``round1/sample``
-> ``stages/round1/sample.json``) so iterative pipelines can group a round's stages.

Cached stages are reused by name only, so a folder must not be resumed with other settings:
:func:`check_settings` records the settings that decide the results in ``<out>/settings.json``
and refuses a run whose settings differ, naming each differing key.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from lfkit.errors import LfkitError
from lfkit.io import atomic_write_text

# One path segment of a stage name: no "/", no leading dot (so never "." or "..").
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class StageError(LfkitError):
    """A pipeline's output folder cannot be used as asked (it holds a run with other settings)."""


@dataclass(frozen=True)
class Layout:
    """The generic part of a pipeline's output folder: ``root/stages/*.json`` and ``root/settings.json``.

    Pipelines subclass it with properties for their own artefacts (see ``DemoLayout``).
    """

    root: Path

    @property
    def stages(self) -> Path:
        return self.root / "stages"

    @property
    def settings(self) -> Path:
        return self.root / "settings.json"

    def stage_file(self, name: str) -> Path:
        """``stages/<name>.json``; ``name`` is ``/``-separated segments of letters, digits, ``_.-``.

        >>> Layout(Path("out")).stage_file("round1/sample").as_posix()
        'out/stages/round1/sample.json'
        """
        parts = name.split("/")
        if not all(_SEGMENT.fullmatch(p) for p in parts):
            raise ValueError(f"invalid stage name {name!r}: use /-separated segments of letters, digits, _ . -")
        return self.stages.joinpath(*parts[:-1], f"{parts[-1]}.json")

    def cached_stages(self) -> list[str]:
        """Names of the stages with a result file, sorted."""
        if not self.stages.is_dir():
            return []
        return sorted(p.relative_to(self.stages).with_suffix("").as_posix() for p in self.stages.rglob("*.json"))


def diff_settings(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"key old -> new"`` for each key whose value differs (a key missing on one side is ``None``).

    >>> diff_settings({"lr": 0.1, "seed": 0}, {"lr": 0.5, "seed": 0, "n": 2})
    ['lr 0.1 -> 0.5', 'n None -> 2']
    """
    keys = [*current, *(k for k in previous if k not in current)]
    return [f"{k} {previous.get(k)!r} -> {current.get(k)!r}" for k in keys if previous.get(k) != current.get(k)]


def check_settings(layout: Layout, settings: dict[str, Any], *, force: bool = False) -> None:
    """Refuse to resume a run made with other settings, then record ``settings`` in ``settings.json``.

    ``settings`` are the JSON-able values that decide the stages' results (not the output
    folder, not ``force``). The check applies only when a stage is cached; ``force``
    (every stage redone) accepts the new settings.
    """
    current = json.loads(json.dumps(settings))  # compare as they will read back (tuples -> lists ...)
    if layout.settings.exists() and layout.cached_stages() and not force:
        previous = json.loads(layout.settings.read_text())
        changed = diff_settings(previous, current)
        if changed:
            raise StageError(
                f"{layout.root} holds a run made with other settings ({', '.join(changed)}); "
                "add --force to redo every stage with the new ones, or choose another --out"
            )
    atomic_write_text(layout.settings, json.dumps(current, indent=2) + "\n")


def stage_line(result: dict[str, Any]) -> str:
    """A stage result in one line: EX by difficulty for an evaluation, else its scalar values."""
    if "ex" in result:
        parts = [f"EX {result['ex']:.1f}% (n={result['n']})"]
        parts += [f"{k} {v['ex']:.1f}%" for k, v in result.get("by_difficulty", {}).items()]
        return ", ".join(parts)
    return ", ".join(f"{k}={v}" for k, v in result.items() if isinstance(v, int | float | str) and k != "seconds")


@dataclass
class StageRunner:
    """Runs stages in order, caching each one's result as JSON.

    ``run`` adds ``"seconds"`` (the stage's wall time) to a fresh result; ``results``
    holds every result of this run, fresh or cached, by stage name.
    """

    layout: Layout
    force: bool = False
    console: Console = field(default_factory=Console)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def run(self, name: str, title: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        marker = self.layout.stage_file(name)
        if marker.exists() and not self.force:
            result = json.loads(marker.read_text())
            self.console.print(f"[dim]- {title}: cached ({marker})[/dim]")
        else:
            self.console.rule(f"[bold]{title}")
            start = time.perf_counter()
            result = fn()
            if not isinstance(result, dict):
                raise TypeError(f"stage {name} returned {type(result).__name__}, not a dict")
            result["seconds"] = round(time.perf_counter() - start, 1)
            atomic_write_text(marker, json.dumps(result, indent=2) + "\n")
            self.console.print(f"[green]✓[/green] {title}: {stage_line(result)}  [dim]({result['seconds']:.0f}s)[/dim]")
        self.results[name] = result
        return result


__all__ = ["Layout", "StageError", "StageRunner", "check_settings", "diff_settings", "stage_line"]

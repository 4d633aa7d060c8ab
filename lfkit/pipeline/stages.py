"""Cached stages for every pipeline (``lfkit demo``, ``lfkit iterate``, ``lfkit demo --full``).

A stage is a name and a function returning a typed result: a :class:`StageResult` dataclass
(``lfkit.pipeline.results``). :class:`StageRunner` runs it once and caches the result as JSON in
``<out>/stages/<name>.json`` (written atomically, so a crash mid-stage leaves no file and the
stage runs again on resume); a later run reads the file back into the same type instead of
calling the function, unless ``force``. Names may be nested (``round1/sample`` ->
``stages/round1/sample.json``) so iterative pipelines can group a round's stages.

Cached stages are reused by name only, so a folder must not be resumed with other settings:
:func:`check_settings` records the settings that decide the results in ``<out>/settings.json``
and refuses a run whose settings differ, naming each differing key.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

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

    Pipelines subclass it with properties for their own artefacts (see ``lfkit.pipeline.layout.RunLayout``).
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


@dataclass
class StageResult:
    """Base of every stage's result: its fields are the stage's JSON file; ``seconds`` is set by the runner.

    :meth:`to_json` / :meth:`from_json` round-trip (nested :class:`StageResult` and other dataclasses
    with a ``from_json`` are rebuilt, tuples come back as tuples); unknown keys are refused so a
    cached file of an older layout is noticed, not half read.
    """

    seconds: float | None = field(default=None, kw_only=True)

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    @classmethod
    def from_json(cls: type[R], data: dict[str, Any]) -> R:
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise StageError(f"a cached {cls.__name__} has unknown keys {unknown}: run with --force to redo it")
        return cls(**{k: _revive(hints[k], v) for k, v in data.items()})

    def line(self) -> str:
        """The result in one line for the console: its scalar values."""
        values = dataclasses.asdict(self)
        return ", ".join(f"{k}={v}" for k, v in values.items() if isinstance(v, int | float | str) and k != "seconds")


R = TypeVar("R", bound=StageResult)


def _revive(hint: Any, value: Any) -> Any:
    """``value`` read from JSON as the type ``hint`` says: dataclasses rebuilt, tuples restored."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _revive(args[0], value) if len(args) == 1 else value
    if dataclasses.is_dataclass(hint) and hasattr(hint, "from_json"):
        return hint.from_json(value)
    if origin is tuple:
        return tuple(value)
    if origin is list and typing.get_args(hint):
        return [_revive(typing.get_args(hint)[0], v) for v in value]
    return value


@dataclass
class StageRunner:
    """Runs stages in order, caching each one's result as JSON.

    ``run`` sets ``seconds`` (the stage's wall time) on a fresh result; ``results`` holds every
    result of this run, fresh or cached, by stage name.
    """

    layout: Layout
    force: bool = False
    console: Console = field(default_factory=Console)
    results: dict[str, StageResult] = field(default_factory=dict)

    def run(self, name: str, title: str, fn: Callable[[], R], result_type: type[R]) -> R:
        marker = self.layout.stage_file(name)
        if marker.exists() and not self.force:
            result = result_type.from_json(json.loads(marker.read_text()))
            self.console.print(f"[dim]- {title}: cached ({marker})[/dim]")
        else:
            self.console.rule(f"[bold]{title}")
            start = time.perf_counter()
            result = fn()
            if not isinstance(result, result_type):
                raise TypeError(f"stage {name} returned {type(result).__name__}, not a {result_type.__name__}")
            result.seconds = round(time.perf_counter() - start, 1)
            atomic_write_text(marker, json.dumps(result.to_json(), indent=2) + "\n")
            self.console.print(f"[green]✓[/green] {title}: {result.line()}  [dim]({result.seconds:.0f}s)[/dim]")
        self.results[name] = result
        return result

    def get(self, name: str, result_type: type[R]) -> R | None:
        """The result of stage ``name`` of this run, if it ran (typed: a wrong type is a bug)."""
        result = self.results.get(name)
        if result is not None and not isinstance(result, result_type):
            raise TypeError(f"stage {name} holds a {type(result).__name__}, not a {result_type.__name__}")
        return result

    def seconds(self) -> dict[str, float | None]:
        """Seconds per stage of this run, by stage name, in run order."""
        return {name: r.seconds for name, r in self.results.items()}


__all__ = ["Layout", "StageError", "StageResult", "StageRunner", "check_settings", "diff_settings"]

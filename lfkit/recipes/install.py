"""`lfkit install`: put lfkit's datasets and recipes into an existing LLaMA-Factory checkout.

Datasets are registered with :func:`lfkit.registry.register` (the same validation, conflict
rules and backup as ``lfkit register``); recipes are :func:`lfkit.recipes.examples.render_examples`
validated against the checkout itself (its data/dataset_info.json, the DeepSpeed files).
"""

from __future__ import annotations

import filecmp
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from lfkit.recipes.examples import EXAMPLE_PRESETS, INSTALL_PREFIX, flow_examples, render_examples
from lfkit.recipes.presets import RecipeError


def _kind_of(name: str, entry: dict) -> str:
    from lfkit.registry.core import STANDARD_DATASETS

    if name in STANDARD_DATASETS:
        return STANDARD_DATASETS[name][0]
    return "preference" if entry.get("ranking") else "sft"


def _copy_atomic(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_bytes_atomic(dest: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def install_into(
    lf_dir: str | Path,
    *,
    data_dir: str | Path = "data",
    datasets: list[str] | None = None,
    presets: list[str] | tuple[str, ...] = (),
    recipes: bool = True,
    force: bool = False,
) -> list[tuple[Path, str]]:
    """Install into the LLaMA-Factory checkout ``lf_dir``; return ``(path, action)`` for each file.

    Everything is checked before anything is written: data files and entries (a differing
    entry or data file of the same name needs ``force``), and each recipe with LLaMA-Factory's
    parser. Actions: ``written``, ``unchanged``, ``added:NAME`` / ``replaced:NAME`` /
    ``unchanged:NAME`` (dataset entries), ``backup`` and ``note: ...``.
    """
    from lfkit.registry.core import entry_for, read_dataset_info, register, validate_data_file

    lf_dir = Path(lf_dir).resolve()
    lf_data = lf_dir / "data"
    lf_info = lf_data / "dataset_info.json"
    if not lf_info.is_file():
        raise RecipeError(f"{lf_dir} does not look like a LLaMA-Factory checkout: no data/dataset_info.json")
    data_dir = Path(data_dir)
    src_info_path = data_dir / "dataset_info.json"
    src_info = read_dataset_info(src_info_path)
    if datasets is None:
        datasets = list(src_info)
    if not src_info and datasets:
        raise RecipeError(f"{src_info_path}: no lfkit datasets registered there (lfkit register ...)")

    # ---- plan and check everything first
    lf_entries = read_dataset_info(lf_info)
    plan: list[tuple[str, str, Path, Path]] = []  # name, kind, source file, destination
    for name in datasets:
        if name not in src_info:
            raise RecipeError(f"{src_info_path}: no dataset {name!r} (has: {', '.join(src_info) or 'none'})")
        entry = src_info[name]
        file_name = entry.get("file_name")
        if not isinstance(file_name, str) or PurePosixPath(file_name).is_absolute() or ".." in Path(file_name).parts:
            raise RecipeError(f"{src_info_path}: entry {name!r}: file_name must be a path inside {data_dir}")
        kind = _kind_of(name, entry)
        src = data_dir / file_name
        validate_data_file(src, kind)  # raises DataFileError naming file/row/field
        dest = lf_data / file_name
        previous = lf_entries.get(name)
        if previous is not None and previous != entry_for(kind, file_name) and not force:
            raise RecipeError(f"{lf_info}: entry {name!r} exists and differs from lfkit's; pass --force to replace it")
        if dest.exists() and not filecmp.cmp(src, dest, shallow=False) and not force:
            raise RecipeError(f"{dest} exists and differs from {src}; pass --force to replace it")
        plan.append((name, kind, src, dest))

    rendered: Path | None = None
    report: list[tuple[Path, str]] = []
    with tempfile.TemporaryDirectory(prefix="lfkit-install-") as tmp:
        if recipes:
            # Render and validate into a scratch folder first: a rejected recipe writes nothing.
            rendered = Path(tmp) / "examples"
            render_examples(rendered, tuple(dict.fromkeys([*EXAMPLE_PRESETS, *presets])), prefix=INSTALL_PREFIX)
            target_root = lf_dir / INSTALL_PREFIX
            for path in sorted(p for p in rendered.rglob("*") if p.is_file()):
                dest = target_root / path.relative_to(rendered)
                if dest.exists() and not filecmp.cmp(path, dest, shallow=False) and not force:
                    raise RecipeError(f"{dest} exists and differs from lfkit's; pass --force to replace it")

        # ---- write
        original = lf_info.read_bytes()
        backup: Path | None = None
        for name, kind, src, dest in plan:
            if not (dest.exists() and filecmp.cmp(src, dest, shallow=False)):
                _copy_atomic(src, dest)
                report.append((dest, "written"))
            result = register(lf_info, name, dest, kind, force=force)
            report.append((lf_info, f"{result.action}:{name}"))
            backup = result.backup or backup
        if backup is not None:
            # register() backs up before each entry; the .bak should be the file as it was before install
            _write_bytes_atomic(backup, original)
            report.append((backup, "backup"))
        if rendered is not None:
            for path in sorted(p for p in rendered.rglob("*") if p.is_file()):
                dest = lf_dir / INSTALL_PREFIX / path.relative_to(rendered)
                if dest.exists() and filecmp.cmp(path, dest, shallow=False):
                    report.append((dest, "unchanged"))
                    continue
                _copy_atomic(path, dest)
                dest.chmod(path.stat().st_mode & 0o777)
                report.append((dest, "written"))
    if recipes:
        # Recipes name the standard datasets; say which the checkout does not have yet.
        registered = read_dataset_info(lf_info)
        wanted = sorted(
            {
                ex.kwargs["dataset"]
                for pr in dict.fromkeys([*EXAMPLE_PRESETS, *presets])
                for ex in flow_examples(pr)
                if "dataset" in ex.kwargs
            }
        )
        for name in wanted:
            if name not in registered:
                report.append((lf_info, f"note: recipes use dataset {name!r}, not registered yet"))
    return report

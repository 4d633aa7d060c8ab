"""`lfkit install`: put lfkit's datasets and recipes into an existing LLaMA-Factory checkout.

Datasets are registered with :func:`lfkit.registry.register` (the same validation and conflict
rules as ``lfkit register``; one timestamped backup of dataset_info.json per install); recipes
are :func:`lfkit.recipes.examples.render_examples` validated against the checkout itself (its
data/dataset_info.json, the DeepSpeed files), naming the datasets being installed.
"""

from __future__ import annotations

import filecmp
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from lfkit.io import atomic_path
from lfkit.recipes.examples import DEFAULT_DATASETS, EXAMPLE_PRESETS, INSTALL_PREFIX, flow_examples, render_examples
from lfkit.recipes.validate import RecipeError

# The dataset kind each recipe stage trains on, and the option that chooses its dataset.
STAGE_KINDS: dict[str, tuple[str, str]] = {
    "sft": ("sft", "--sft-dataset"),
    "dpo": ("preference", "--dpo-dataset"),
    "rm": ("preference", "--rm-dataset"),
}


def _kind_of(name: str, entry: dict) -> str:
    from lfkit.registry.core import STANDARD_DATASETS

    if name in STANDARD_DATASETS:
        return STANDARD_DATASETS[name][0]
    return "preference" if entry.get("ranking") else "sft"


def _copy_atomic(src: Path, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


def choose_recipe_datasets(installed: dict[str, str], chosen: dict[str, str | None]) -> dict[str, str]:
    """The dataset each recipe stage names: ``chosen[stage]`` when given, else the one installed
    dataset of the stage's kind (``rm`` follows ``dpo``'s choice); :data:`DEFAULT_DATASETS` when
    none of that kind is installed. ``installed`` maps the datasets being installed to their kind.

    >>> choose_recipe_datasets({"my_sft": "sft", "my_dpo": "preference"}, {})
    {'sft': 'my_sft', 'dpo': 'my_dpo', 'rm': 'my_dpo'}
    """
    out: dict[str, str] = {}
    for stage, (kind, option) in STAGE_KINDS.items():
        of_kind = [name for name, k in installed.items() if k == kind]
        name = chosen.get(stage) or (out["dpo"] if stage == "rm" and chosen.get("dpo") else None)
        if name is not None:
            if name not in installed:
                raise RecipeError(
                    f"{option} {name}: not among the datasets being installed ({', '.join(installed) or 'none'})"
                )
            if installed[name] != kind:
                raise RecipeError(f"{option} {name}: a {installed[name]} dataset; the {stage} recipe needs {kind}")
        elif len(of_kind) > 1:
            raise RecipeError(
                f"several {kind} datasets are being installed ({', '.join(of_kind)}): "
                f"choose the one the {stage} recipe trains on with {option}"
            )
        else:
            name = of_kind[0] if of_kind else DEFAULT_DATASETS[stage]
        out[stage] = name
    return out


def install_into(
    lf_dir: str | Path,
    *,
    data_dir: str | Path = "data",
    datasets: list[str] | None = None,
    presets: list[str] | tuple[str, ...] = (),
    recipes: bool = True,
    force: bool = False,
    recipe_datasets: dict[str, str | None] | None = None,
) -> list[tuple[Path, str]]:
    """Install into the LLaMA-Factory checkout ``lf_dir``; return ``(path, action)`` for each file.

    Everything is checked before anything is written: data files and entries (a differing
    entry or data file of the same name needs ``force``), and each recipe with LLaMA-Factory's
    parser. The recipes name the datasets being installed (see :func:`choose_recipe_datasets`;
    ``recipe_datasets`` maps ``sft`` / ``dpo`` / ``rm`` to a name). Before the first
    entry changes, data/dataset_info.json is saved once by :func:`lfkit.registry.backup_file`.
    Actions: ``written``, ``unchanged``, ``added:NAME`` / ``replaced:NAME`` /
    ``unchanged:NAME`` (dataset entries), ``backup`` and ``note: ...``.
    """
    from lfkit.registry.core import (
        backup_file,
        entry_for,
        locked_dataset_info,
        read_dataset_info,
        register,
        relative_file_name,
        validate_data_file,
    )

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
    stage_datasets = dict(DEFAULT_DATASETS)
    if recipes:
        stage_datasets = choose_recipe_datasets({name: kind for name, kind, _, _ in plan}, recipe_datasets or {})
    entries_change = any(
        lf_entries.get(name) != entry_for(kind, relative_file_name(lf_info, dest)) for name, kind, _, dest in plan
    )

    rendered: Path | None = None
    report: list[tuple[Path, str]] = []
    with tempfile.TemporaryDirectory(prefix="lfkit-install-") as tmp:
        if recipes:
            # Render and validate into a scratch folder first: a rejected recipe writes nothing.
            rendered = Path(tmp) / "examples"
            render_examples(
                rendered,
                tuple(dict.fromkeys([*EXAMPLE_PRESETS, *presets])),
                prefix=INSTALL_PREFIX,
                datasets=stage_datasets,
            )
            target_root = lf_dir / INSTALL_PREFIX
            for path in sorted(p for p in rendered.rglob("*") if p.is_file()):
                dest = target_root / path.relative_to(rendered)
                if dest.exists() and not filecmp.cmp(path, dest, shallow=False) and not force:
                    raise RecipeError(f"{dest} exists and differs from lfkit's; pass --force to replace it")

        # ---- write
        with locked_dataset_info(lf_info):  # the backup is the file right before these entries
            if entries_change:  # one backup of the file as it was before install, not one per entry
                report.append((backup_file(lf_info), "backup"))
            for name, kind, src, dest in plan:
                if not (dest.exists() and filecmp.cmp(src, dest, shallow=False)):
                    _copy_atomic(src, dest)
                    report.append((dest, "written"))
                result = register(lf_info, name, dest, kind, force=force, backup=False)
                report.append((lf_info, f"{result.action}:{name}"))
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
        # A stage with no installed dataset of its kind keeps the standard name: say if it is missing.
        registered = read_dataset_info(lf_info)
        wanted = sorted(
            {
                ex.kwargs["dataset"]
                for pr in dict.fromkeys([*EXAMPLE_PRESETS, *presets])
                for ex in flow_examples(pr, stage_datasets)
                if "dataset" in ex.kwargs
            }
        )
        for name in wanted:
            if name not in registered:
                report.append((lf_info, f"note: recipes use dataset {name!r}, not registered yet"))
    return report

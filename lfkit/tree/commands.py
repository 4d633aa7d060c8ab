"""``lfkit tree``: revision trees (ReSQLver) -> preference pairs, merged and verified."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from lfkit.generate.commands import backend_options, stop_option
from lfkit.generate.defaults import SAMPLING
from lfkit.sql.commands import verifier_options
from lfkit.tree.verify import PAIR_CHECKS, TREE_CHECKS


def _diagnosed(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a plain ValueError (an option value the library rejects) into one line and exit status 1.

    LfkitErrors need nothing here: ``lfkit.cli`` prints every one of them that way.
    """
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


@click.group()
def tree() -> None:
    """Revision trees (ReSQLver): build, turn into preference pairs, merge shards, verify.

    \b
    A tree holds one question's answers: depth 1 answers the SFT prompt; every wrong
    answer is revised by `--sample-num` children that see the wrong SQL and its own
    execution outcome (never gold's rows), down to `--max-depth`. A node's
    revision_distance is 0 when correct, 1 + its children's minimum otherwise, 999 when
    no correct answer lies below it.

    \b
    Typical flow:
      lfkit tree build ... --num-shards 2 --shard-id 0      # trees_0.jsonl (resumable)
      lfkit tree merge --kind trees --output all_trees.json trees_0.jsonl trees_1.jsonl
      lfkit tree verify --tree-file all_trees.json --db-root corpus/train_databases \\
                        --output verification_report.json
      lfkit tree pairs --trees all_trees.json --output tree_pairs.jsonl --test-fraction 0.05
      lfkit register --dataset-info data/dataset_info.json --name text2sql_tree \\
                     --file tree_pairs.jsonl --kind preference
    """


@tree.command("build")
@click.option(
    "--sft-data",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="SFT rows (JSON array or JSONL): instruction, input, output, db_id[, question_id].",
)
@click.option(
    "--db-root", required=True, type=click.Path(exists=True, file_okay=False), help="<db_id>/<db_id>.sqlite folder."
)
@click.option("--output-dir", required=True, help="Folder for trees_<shard_id>.jsonl (and all_trees.json).")
@click.option("--max-depth", type=click.IntRange(min=1), default=5, show_default=True, help="Deepest revision level.")
@click.option(
    "--sample-num", type=click.IntRange(min=1), default=2, show_default=True, help="Children per expanded node."
)
@click.option(
    "--temperature", type=float, default=SAMPLING["tree"].temperature, show_default=True, help="Sampling temperature."
)
@click.option("--top-p", type=float, default=SAMPLING["tree"].top_p, show_default=True, help="Nucleus sampling mass.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=512, show_default=True, help="Cap per answer.")
@click.option(
    "--seed", type=int, default=SAMPLING["tree"].seed, show_default=True, help="Base seed (question i: seed + i*1000)."
)
@click.option("--max-samples", type=click.IntRange(min=0), default=0, help="Use only the first N SFT rows (0 = all).")
@click.option("--num-shards", type=click.IntRange(min=1), default=1, show_default=True, help="Shard count.")
@click.option("--shard-id", type=click.IntRange(min=0), default=0, show_default=True, help="This run's shard.")
@click.option(
    "--wave-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Questions built together: their whole frontier is one generate call per depth.",
)
@verifier_options
@click.option("--gold-row-count", is_flag=True, help="Feedback also gives gold's ROW COUNT (never its rows).")
@click.option("--prune", is_flag=True, help="Keep only paths to a correct node (ReSQLver's trees; default: full).")
@click.option("--overwrite", is_flag=True, help="Discard an existing trees file and start again.")
@stop_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
@backend_options
def build_cmd(**kwargs: Any) -> None:
    """Build revision trees, breadth-first across many questions; resumable and sharded.

    \b
    Depth 1 answers the SFT prompt (--sample-num answers); every answer is executed and
    compared with gold; each wrong answer gets --sample-num children that see its SQL
    and ITS OWN execution outcome (error; or row count, first rows, column count; or no
    rows) -- never gold's rows -- down to --max-depth. Killed and re-run with the same
    settings, it resumes from <output-dir>/trees_<shard_id>.jsonl.

    \b
    Examples:
      lfkit tree build --sft-data data/sft.json --db-root corpus/train_databases \\
                       --output-dir out/trees --preset smollm2-135m --adapter-path out/sft
      lfkit tree build ... --backend vllm --num-shards 8 --shard-id 3   # one GPU's share
    """
    from lfkit.generate.options import backend_from_options, pop_backend_options
    from lfkit.tree.build import TreeBuildConfig, build_trees

    backend_opts = pop_backend_options(kwargs)
    quiet = kwargs.pop("quiet")
    try:
        cfg = TreeBuildConfig(**kwargs)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    backend, identity, _ = backend_from_options(backend_opts)
    cfg.model_info = identity
    try:
        with backend:
            summary = build_trees(cfg, backend, progress=not quiet)
    except FileNotFoundError as exc:  # a database the SFT rows name is missing
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(summary, indent=2))


@tree.command("pairs")
@click.option(
    "--trees",
    "tree_files",
    required=True,
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Tree file(s): all_trees.json, a tree shard (.jsonl) or ReSQLver's trees. Repeatable.",
)
@click.option("--output", required=True, help="Train pairs in lfkit's preference format (.jsonl or .json).")
@click.option("--test-output", help="Test pairs (default: <output stem>.test<suffix> when --test-fraction > 0).")
@click.option(
    "--test-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.05, show_default=True,
    help="Share of QUESTIONS held out for test (no question on both sides).",
)  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the by-question split.")
@click.option(
    "--rules",
    default=None,
    help="Comma-separated pair rules of lfkit.tree.pairs.PAIR_RULES (default: every registered rule; built in: "
    "family = ReSQLver's dpo_extractor, correct_vs_wrong = compare.py).",
)
@click.option("--round", "round_", type=int, default=1, show_default=True, help="Iteration written to every row.")
@click.option(
    "--resqlver-dir",
    type=click.Path(file_okay=False),
    help="Also write ReSQLver's final_data_emerge_shard_{i}.json (every pair) there, with a settings sidecar.",
)
@_diagnosed
def pairs_cmd(
    tree_files: tuple[str, ...],
    output: str,
    test_output: str | None,
    test_fraction: float,
    seed: int,
    rules: str | None,
    round_: int,
    resqlver_dir: str | None,
) -> None:
    """Preference pairs from revision trees, split train/test by question.

    \b
    Rules: for each node every pair in {parent, siblings, self, children} whose revision
    distances differ (lower = chosen), and every same-depth or parent-child pair with
    one correct node; deduplicated by normalised SQL. Rows: instruction/input = the SFT
    question prompt, chosen/rejected in the SFT answer format, chosen_dist,
    rejected_dist, question_id, db_id, source "tree", round, kind.

    \b
    Example:
      lfkit tree pairs --trees all_trees.json --output out/tree_pairs.jsonl \\
                       --test-fraction 0.05 --seed 0 --resqlver-dir out/
    """
    from pathlib import Path

    from lfkit.tree.model import load_trees, read_tree_dicts
    from lfkit.tree.pairs import PAIR_RULES, build_pairs, pairs_settings, write_pairs

    rule_list = [r.strip() for r in rules.split(",") if r.strip()] if rules else list(PAIR_RULES)
    trees = load_trees(tree_files)
    result = build_pairs(trees, test_fraction=test_fraction, seed=seed, rules=rule_list, round=round_)
    if test_output is None and test_fraction > 0:
        out = Path(output)
        test_output = str(out.with_name(f"{out.stem}.test{out.suffix}"))
    header = read_tree_dicts(tree_files[0])[0] if len(tree_files) == 1 else None
    settings = pairs_settings((header or {}).get("settings"), rule_list, round_)
    written = write_pairs(result, output, test_output, resqlver_dir, settings)
    click.echo(json.dumps({**result.summary(), **written}, indent=2))


@tree.command("merge")
@click.argument("shards", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--kind",
    type=click.Choice(["trees", "pairs"]),
    required=True,
    help="trees: tree shards (.jsonl) -> one JSON array; pairs: final_data_emerge_shard_*.json -> "
    "final_data_train.json + final_data_test.json.",
)
@click.option("--output", required=True, help="trees: the merged file (all_trees.json); pairs: the output folder.")
@click.option(
    "--test-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.05, show_default=True,
    help="pairs: share of questions in final_data_test.json.",
)  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="pairs: seed of the by-question split.")
@click.option("--allow-missing", is_flag=True, help="Merge even when some shard ids of the run are absent.")
@_diagnosed
def merge_cmd(
    shards: tuple[str, ...], kind: str, output: str, test_fraction: float, seed: int, allow_missing: bool
) -> None:
    """Merge shards made by one run; refuses shards made with other settings.

    \b
    Examples:
      lfkit tree merge --kind trees --output all_trees.json out/trees_0.jsonl out/trees_1.jsonl
      lfkit tree merge --kind pairs --output out/ out/final_data_emerge_shard_*.json
    """
    from lfkit.tree.merge import merge_pair_shards, merge_tree_shards

    if kind == "trees":
        summary = merge_tree_shards(shards, output, allow_missing=allow_missing)
    else:
        summary = merge_pair_shards(shards, output, test_fraction, seed, allow_missing=allow_missing)
    click.echo(json.dumps(summary, indent=2))


@tree.command("verify")
@click.option(
    "--tree-file",
    "tree_files",
    required=True,
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Trees to check (lfkit's or ReSQLver's; .json array, one tree, or .jsonl). Repeatable.",
)
@click.option(
    "--db-root", required=True, type=click.Path(exists=True, file_okay=False), help="<db_id>/<db_id>.sqlite folder."
)
@click.option("--output", help="Write the full report (JSON) here, e.g. verification_report.json.")
@click.option(
    "--pairs",
    "pairs_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Also check a pairs file (lfkit's rows or ReSQLver's final_data_*_shard_<i>.json). Repeatable.",
)
@click.option(
    "--allow",
    multiple=True,
    type=click.Choice([*TREE_CHECKS, *PAIR_CHECKS]),
    help="Accept this check's findings: listed, but the exit status stays 0. E.g. --allow feedback_leak to "
    "verify ReSQLver's trees (their feedback shows gold's rows) for structure and labels. Repeatable.",
)
@verifier_options
@_diagnosed
def verify_cmd(
    tree_files: tuple[str, ...],
    db_root: str,
    output: str | None,
    pairs_files: tuple[str, ...],
    allow: tuple[str, ...],
    comparison: str,
    timeout: float,
    workers: int | None,
) -> None:
    """Check trees: structure, every node's label re-executed, distances, pairs.

    Exit status 1 when any problem is found (each is listed with its tree and node id) that
    --allow does not accept. Reads lfkit's trees and ReSQLver's (its current per-question
    tree_<id>.json without node_id fields, and its first version's); a tree_status that
    follows ReSQLver's rule (node_1_1 only) is a warning, not a problem.

    \b
    Example:
      lfkit tree verify --tree-file all_trees.json --db-root corpus/train_databases \\
                        --pairs tree_pairs.jsonl --output verification_report.json
      # ReSQLver's run_pipeline output, checked for structure and labels
      lfkit tree verify --tree-file output/tree_62.json --tree-file output/tree_63.json \\
                        --db-root data/train/train_databases \\
                        --pairs output/final_data_emerge_shard_0.json --allow feedback_leak
    """
    from lfkit.io import atomic_write_text
    from lfkit.tree.model import load_trees
    from lfkit.tree.verify import read_pairs, verify_trees

    trees = load_trees(tree_files)
    pairs = [row for path in pairs_files for row in read_pairs(path)] if pairs_files else None
    report = verify_trees(trees, db_root, pairs, comparison=comparison, timeout=timeout, workers=workers, allow=allow)
    data = report.as_dict()
    if output:
        atomic_write_text(output, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    lines = [f"trees {report.trees}, nodes {report.nodes}" + (f", pairs {report.pairs}" if pairs is not None else "")]
    for name, c in report.checks.items():
        accepted = " (accepted: --allow)" if name in allow and c["problems"] else ""
        lines.append(f"  {name:<18} checked {c['checked']:>7}  problems {c['problems']}{accepted}")
    for p in report.problems[:20]:
        where = f"question {p['question_id']}" + (f" {p['node_id']}" if p["node_id"] else "")
        lines.append(f"  [{p['check']}] {where}: {p['message']}")
    if report.warnings:
        lines.append(f"  {len(report.warnings)} warning(s), e.g. {report.warnings[0]['message']}")
    if len(report.problems) > 20:
        lines.append(f"  ... {len(report.problems) - 20} more problems" + (f" in {output}" if output else ""))
    click.echo("\n".join(lines))
    if not report.ok:
        raise SystemExit(1)


__all__ = ["tree"]

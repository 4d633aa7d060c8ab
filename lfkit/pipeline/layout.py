"""Where every artefact of a pipeline run lives (``lfkit demo``, ``lfkit iterate``, ``lfkit demo --full``).

One layout for the three: they share the corpus, data, saves, recipes and report folders, and a
stage writes its files at the same place whichever pipeline runs it.
"""

from __future__ import annotations

from pathlib import Path

from lfkit.pipeline.stages import Layout


class RunLayout(Layout):
    """``root/``: corpus/, data/, recipes/, saves/<stage>, logs/, report/, rounds/, models/, trees/, bon/."""

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def dataset_info(self) -> Path:
        return self.data / "dataset_info.json"

    @property
    def sft_data(self) -> Path:
        return self.data / "demo_sft.json"

    @property
    def pref_data(self) -> Path:
        return self.data / "demo_dpo.jsonl"

    @property
    def pool(self) -> Path:
        """Every train question as an SFT row: the DPO rounds draw their fresh questions from it."""
        return self.data / "train_pool.json"

    @property
    def recipes(self) -> Path:
        return self.root / "recipes"

    @property
    def saves(self) -> Path:
        return self.root / "saves"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def report(self) -> Path:
        return self.root / "report"

    def adapter(self, stage: str) -> Path:
        return self.saves / stage

    def predictions(self, stage: str) -> Path:
        return self.report / f"predict_dev_{stage}.json"

    # DPO rounds
    def round_dir(self, k: int) -> Path:
        return self.root / "rounds" / f"round{k}"

    def merged(self, k: int) -> Path:
        return self.root / "models" / f"round{k}"

    def round_adapter(self, k: int) -> Path:
        return self.saves / f"round{k}"

    def round_recipes(self, k: int) -> Path:
        return self.recipes / f"round{k}"

    def round_predictions(self, k: int) -> Path:
        return self.report / f"round{k}" / "predict_dev.json"

    # revision trees, reward model, best-of-N, GRPO (lfkit demo --full)
    @property
    def trees(self) -> Path:
        return self.root / "trees"

    @property
    def tree_pairs(self) -> Path:
        return self.data / "tree_pairs.jsonl"

    @property
    def rm_train(self) -> Path:
        return self.data / "rm_train.jsonl"

    @property
    def dev_sft(self) -> Path:
        return self.data / "dev_sft.json"

    @property
    def rm_test(self) -> Path:
        return self.data / "rm_test.jsonl"

    @property
    def rm_eval(self) -> Path:
        return self.root / "rm_eval" / "eval_results.json"

    @property
    def bon(self) -> Path:
        return self.root / "bon"

    @property
    def grpo_data(self) -> Path:
        return self.data / "grpo_train.jsonl"

    def rel(self, path: str | Path) -> str:
        """``path`` relative to the run's folder when inside it (as reports and stage files name files)."""
        path = Path(path)
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)


__all__ = ["RunLayout"]

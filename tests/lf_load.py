"""Load a registered dataset through LLaMA-Factory's own pipeline (argument parser, loader,
template and stage preprocessing), as ``llamafactory-cli train`` does before training."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def lf_dataset(
    dataset_dir: str | Path, dataset: str, stage: str, model: str | Path, template: str, tmp: Path, **extra: Any
) -> tuple[Any, Any]:
    """(preprocessed train dataset, tokenizer) for ``dataset`` at ``stage`` (sft | rm | dpo)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    args = {
        "stage": stage,
        "do_train": True,
        "model_name_or_path": str(model),
        "dataset": dataset,
        "dataset_dir": str(dataset_dir),
        "template": template,
        "output_dir": str(tmp / "lf_out"),
        "cutoff_len": 4096,
        "finetuning_type": "lora",
        "report_to": "none",
        "overwrite_cache": True,
        **extra,
    }
    model_args, data_args, training_args, _, _ = get_train_args(args)
    tokenizer_module = load_tokenizer(model_args)
    template_obj = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    module = get_dataset(template_obj, model_args, data_args, training_args, stage=stage, **tokenizer_module)
    return module["train_dataset"], tokenizer_module["tokenizer"]

"""The model GRPO starts from: ``model_name_or_path`` as is, or the SFT adapter merged into the base.

The merge itself is :func:`lfkit.train.merge_adapter` (the one function that writes a merged
model); this module decides when it is needed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lfkit.models.embedded import resolve_model
from lfkit.recipes.grpo_config import GRPOConfigError, GRPOSettings
from lfkit.train import TrainError, merge_marker, merge_once

logger = logging.getLogger("lfkit.grpo.train")


def prepare_start_model(settings: GRPOSettings) -> Path | str:
    """The model GRPO starts from: ``model_name_or_path`` as is, or, with ``lfkit.sft_adapter``,
    that folder made from base + adapter (merged once; again only when the adapter's weights
    or the base changed)."""
    lf = settings.lfkit
    target = settings.model.model_name_or_path
    if not lf.sft_adapter:
        return resolve_model(target)

    adapter = Path(lf.sft_adapter)
    if not adapter.is_dir():
        raise GRPOConfigError(f"{settings.source}: lfkit.sft_adapter {adapter} not found")
    try:
        marker = merge_marker(lf.base_model or "", adapter)  # a bad adapter folder: a config error, before loading
    except TrainError as e:
        raise GRPOConfigError(f"lfkit.sft_adapter {e}") from None
    logger.info("SFT adapter %s merged into %s -> %s (unless already there)", adapter, lf.base_model, target)
    return merge_once(lf.base_model or "", adapter, target, marker=marker)


__all__ = ["prepare_start_model"]

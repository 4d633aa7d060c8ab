"""``lfkit grpo train``: TRL's GRPOTrainer plus what ``trl grpo`` lacks.

* **Start model.** With ``lfkit.sft_adapter`` the SFT LoRA is merged into ``lfkit.base_model``
  (:func:`lfkit.train.merge_adapter`) and saved to ``model_name_or_path``
  (:func:`lfkit.grpo.start.prepare_start_model`, redone only when the adapter changes); GRPO
  trains a *new* LoRA on the merged model. TRL's
  reference model under PEFT is the policy with its adapter disabled, so with ``beta > 0``
  the KL term pulls towards the SFT model, not the raw base.
* **Prompts** are rendered with the LLaMA-Factory template SFT used (``lfkit.template``,
  :class:`lfkit.generate.prompts.PromptEncoder`) and given to TRL as plain strings, so GRPO
  samples from exactly the prompt SFT trained on (a tokenizer's own chat template can differ:
  SmolLM2's default system prompt does, by a full stop).
* **Rewards** by import path as ``trl grpo`` loads them, but ``execution`` gets a run-owned
  :class:`lfkit.reward.execution.ExecutionReward` (``lfkit.reward_timeout``) whose Verifier
  cache runs each gold SQL once for the run. A reward function that raises is logged and
  scores 0 for that batch (``reward_errors`` in the log): a bad row never stops training.
* **Gold guidance** (``lfkit.gold_guide``, :mod:`lfkit.grpo.guide`): a group with no correct
  completion gets the gold SQL as its last completion (LUFFY-style off-policy guidance).
* **Dev EX** (:class:`DevEvalCallback`): greedy SQL for the first ``lfkit.dev_size`` rows of
  ``lfkit.dev_file`` (:func:`lfkit.eval.predict.predict_sql`, scored by
  :func:`lfkit.eval.score_predictions`) at the start and every ``lfkit.dev_every`` steps;
  ``OUTPUT_DIR/best_model/`` holds the adapter with the best dev EX (``lfkit_best.json``).
* **Logs**: every TRL log record (loss, ``reward``, ``rewards/<name>/mean`` ...) and dev EX in
  ``OUTPUT_DIR/grpo_log.jsonl``, sample completions with their rewards in ``samples.jsonl``,
  ``reward_curve.png`` at the end; tensorboard when installed, W&B when installed and
  ``lfkit.wandb``.

The pieces live beside this module: :mod:`~lfkit.grpo.start` (start model),
:mod:`~lfkit.grpo.rewards`, :mod:`~lfkit.grpo.data` (rows, prompts, dev questions),
:mod:`~lfkit.grpo.callback` (dev EX, ``best_model/``, logs), :mod:`~lfkit.grpo.plot`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from lfkit.grpo.callback import BEST_DIR, BEST_MARKER, LOG_FILE, SAMPLES_FILE, DevEvalCallback, dev_ex
from lfkit.grpo.data import dev_questions, load_rows, render_prompts
from lfkit.grpo.plot import CURVE_FILE, plot_rewards
from lfkit.grpo.rewards import build_rewards
from lfkit.grpo.start import prepare_start_model
from lfkit.io import atomic_write_text
from lfkit.recipes.grpo_config import GRPOConfigError, GRPOSettings, load_grpo_config
from lfkit.train import MERGE_MARKER, merge_adapter

logger = logging.getLogger(__name__)


def _report_to(settings: GRPOSettings) -> list[str]:
    wanted = settings.training.report_to
    wanted = [] if wanted in (None, "none", ["none"]) else list(wanted) if isinstance(wanted, list) else [wanted]
    if settings.lfkit.tensorboard and (
        importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")
    ):
        wanted.append("tensorboard")
    if settings.lfkit.wandb:
        if importlib.util.find_spec("wandb"):
            wanted.append("wandb")
            os.environ.setdefault("WANDB_PROJECT", settings.lfkit.wandb_project)
        else:
            logger.warning("lfkit.wandb is true but wandb is not installed: not logging to W&B")
    return sorted(set(wanted))  # [] = none (what TrainingArguments makes of "none")


def train_grpo(config: str | os.PathLike[str], *, resume: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Run GRPO from a config file (see the module docstring); returns a summary.

    Everything that can be checked is checked before the model loads: the config (TRL's parser,
    unknown keys, rewards), the training rows and the dev rows.
    """
    settings = load_grpo_config(config)
    lf = settings.lfkit
    errors: dict[str, int] = {}
    rows = load_rows(settings)
    questions = dev_questions(lf.dev_file, lf.dev_size) if lf.dev_file else []
    reward_funcs, owned = build_rewards(settings, errors)
    if resume is not None and not (Path(resume) / "trainer_state.json").is_file():
        raise GRPOConfigError(f"--resume {resume}: not a checkpoint folder (no trainer_state.json)")

    start_model = str(prepare_start_model(settings))
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer, get_peft_config

    from lfkit.generate.prompts import PromptEncoder, offline_if_local, resolve_template

    offline_if_local(start_model)
    encoder = PromptEncoder(start_model, resolve_template(start_model, lf.template or None))
    dataset = Dataset.from_list(render_prompts(rows, encoder))
    training = settings.training
    training.report_to = _report_to(settings)
    output_dir = Path(training.output_dir)
    model_kwargs = dict(training.model_init_kwargs or {})
    dtype = settings.model.dtype or model_kwargs.get("dtype") or "auto"
    if isinstance(dtype, str) and dtype != "auto":
        import torch

        dtype = getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(
        start_model, dtype=dtype, trust_remote_code=settings.model.trust_remote_code
    )
    training.model_init_kwargs = None  # the model is built here
    tokenizer = AutoTokenizer.from_pretrained(start_model, trust_remote_code=settings.model.trust_remote_code)
    tokenizer.truncation_side = "left"  # as TRL's own loading does: a long prompt keeps its question
    callback = DevEvalCallback(
        output_dir,
        encoder,
        questions,
        every=lf.dev_every,
        max_new_tokens=lf.dev_max_new_tokens,
        batch_size=lf.dev_batch_size,
        timeout=lf.reward_timeout,
        samples_per_log=lf.samples_per_log,
        reward_errors=errors,
    )
    peft_config = get_peft_config(settings.model)
    trainer_class, guide = GRPOTrainer, {}
    if lf.gold_guide:
        from lfkit.grpo.guide import guided_trainer_class
        from lfkit.reward.execution import ExecutionReward

        trainer_class = guided_trainer_class(GRPOTrainer)
        guide = {"guide_reward": next(fn for fn in owned if isinstance(fn, ExecutionReward))}
    trainer = trainer_class(
        model=model,
        reward_funcs=reward_funcs,
        args=training,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[callback],
        peft_config=peft_config,
        **guide,
    )
    callback.trainer = trainer
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    if questions and plugin is not None and getattr(plugin, "zero_stage", 0) == 3:
        # ZeRO-3 shards the weights: a greedy decode on the main process alone would wait forever
        logger.warning("dev EX is evaluated on the main process only: off under ZeRO-3 (use lfkit grpo eval)")
        callback.questions = []
    started = time.monotonic()
    try:
        result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        trainer.save_model(str(output_dir))
    finally:
        for fn in owned:
            fn.close()
    seconds = time.monotonic() - started
    steps = trainer.state.global_step
    curve = plot_rewards(output_dir / LOG_FILE, output_dir / CURVE_FILE) if (output_dir / LOG_FILE).is_file() else None
    summary = {
        "config": str(config),
        "start_model": start_model,
        "output_dir": str(output_dir),
        "adapter": str(output_dir),
        "best_model": str(output_dir / BEST_DIR) if (output_dir / BEST_DIR).is_dir() else None,
        "best": callback.best,
        "dev": [{"step": h["step"], "ex": h["ex"], "n": h["n"]} for h in callback.history],
        "steps": steps,
        "resumed_from": str(resume) if resume else None,
        "seconds": round(seconds, 2),
        "train_runtime": result.metrics.get("train_runtime"),
        "reward_errors": errors,
        "reward_curve": str(curve) if curve else None,
        "guided_groups": getattr(trainer, "guided_groups", None),
        "kl_reference": "SFT model (merged start model, adapter disabled)" if training.beta > 0 else "none (beta 0)",
    }
    atomic_write_text(output_dir / "lfkit_grpo_summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


__all__ = [
    "BEST_DIR",
    "BEST_MARKER",
    "CURVE_FILE",
    "LOG_FILE",
    "MERGE_MARKER",
    "SAMPLES_FILE",
    "DevEvalCallback",
    "build_rewards",
    "dev_ex",
    "dev_questions",
    "load_rows",
    "merge_adapter",
    "plot_rewards",
    "prepare_start_model",
    "render_prompts",
    "train_grpo",
]

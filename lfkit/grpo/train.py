"""``lfkit grpo train``: TRL's GRPOTrainer plus what ``trl grpo`` lacks.

* **Start model.** With ``lfkit.sft_adapter`` the SFT LoRA is merged into ``lfkit.base_model``
  (peft ``merge_and_unload``) and saved to ``model_name_or_path`` (:func:`prepare_start_model`,
  redone only when the adapter changes); GRPO trains a *new* LoRA on the merged model. TRL's
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
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lfkit.io import DataFileError, atomic_write_text
from lfkit.models.embedded import resolve_model
from lfkit.recipes.grpo_config import GRPOConfigError, GRPOSettings, dataset_files, import_reward, load_grpo_config

logger = logging.getLogger(__name__)

MERGE_MARKER = "lfkit_merge.json"
BEST_DIR = "best_model"
BEST_MARKER = "lfkit_best.json"
LOG_FILE = "grpo_log.jsonl"
SAMPLES_FILE = "samples.jsonl"
CURVE_FILE = "reward_curve.png"


# ------------------------------------------------------------------------------ start model


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _adapter_weights(adapter: Path) -> Path:
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        if (adapter / name).is_file():
            return adapter / name
    raise GRPOConfigError(f"lfkit.sft_adapter {adapter}: no adapter_model.safetensors there (a PEFT LoRA folder?)")


def merge_adapter(
    base_model: str | os.PathLike[str], adapter: str | os.PathLike[str], out: str | os.PathLike[str]
) -> Path:
    """Merge the LoRA ``adapter`` into ``base_model`` and save model + tokenizer to ``out``
    (atomically: a finished folder is renamed into place). The base's ``lfkit_model.json``
    (embedded models: names the chat template) is copied along, and ``lfkit_merge.json``
    records what was merged."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lfkit.generate.prompts import offline_if_local
    from lfkit.models.embedded import MARKER as EMBEDDED_MARKER

    base = resolve_model(base_model)
    offline_if_local(base)
    adapter = Path(adapter)
    weights = _adapter_weights(adapter)
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    # merge in float32: rounding the LoRA delta into bf16 weights loses most of it
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp)
    if (Path(base) / EMBEDDED_MARKER).is_file():
        shutil.copy2(Path(base) / EMBEDDED_MARKER, tmp / EMBEDDED_MARKER)
    marker = {"base_model": str(base), "sft_adapter": str(adapter.resolve()), "adapter_sha256": _file_digest(weights)}
    (tmp / MERGE_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


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
    out = Path(target)
    marker = out / MERGE_MARKER
    want = {
        "base_model": str(resolve_model(lf.base_model or "")),
        "sft_adapter": str(adapter.resolve()),
        "adapter_sha256": _file_digest(_adapter_weights(adapter)),
    }
    if marker.is_file() and json.loads(marker.read_text()) == want and (out / "config.json").is_file():
        return out
    logger.info("merging SFT adapter %s into %s -> %s", adapter, lf.base_model, out)
    return merge_adapter(lf.base_model or "", adapter, out)


# ---------------------------------------------------------------------------------- rewards


def _guarded(fn: Callable[..., list[float]], errors: dict[str, int]) -> Callable[..., list[float]]:
    """``fn`` that returns 0.0 per completion (and counts the error) instead of raising."""
    name = getattr(fn, "__name__", type(fn).__name__)

    @functools.wraps(fn)
    def reward(prompts: Any, completions: Sequence[Any], **columns: Any) -> list[float]:
        try:
            values = fn(prompts, completions, **columns)
        except Exception:  # a reward must never stop a training step; the traceback goes to the log
            logger.exception("reward %s raised; scoring this batch 0", name)
            errors[name] = errors.get(name, 0) + 1
            return [0.0] * len(completions)
        return [0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in values]

    reward.__name__ = name
    return reward


def build_rewards(settings: GRPOSettings, errors: dict[str, int]) -> tuple[list[Callable[..., list[float]]], list]:
    """The config's reward functions (guarded), and what to close after training."""
    from lfkit.reward.config import REWARD_IMPORT_PATHS
    from lfkit.reward.execution import ExecutionReward

    funcs, owned = [], []
    for name in settings.script.reward_funcs or []:
        if name == REWARD_IMPORT_PATHS["execution"]:
            fn = ExecutionReward(timeout=settings.lfkit.reward_timeout, workers=settings.lfkit.reward_workers)
            owned.append(fn)
        else:
            fn = import_reward(name, settings.source)
        funcs.append(_guarded(fn, errors))
    return funcs, owned


# ------------------------------------------------------------------------------------- data


def load_rows(settings: GRPOSettings) -> list[dict[str, Any]]:
    """The training rows of the config's local data files, checked (:func:`lfkit.data.grpo.read_grpo_rows`)."""
    from lfkit.data.grpo import read_grpo_rows

    files = dataset_files(settings)
    if not files:
        raise GRPOConfigError(f"{settings.source}: lfkit grpo train reads local GRPO rows: set datasets[].data_files")
    rows: list[dict[str, Any]] = []
    for name in files:
        rows += read_grpo_rows(name)
    if not rows:
        raise DataFileError(f"{', '.join(files)}: no rows")
    missing = sum(1 for r in rows if not r.get("db_path") or not r.get("gold_sql"))
    if missing:
        logger.warning("%d of %d rows have no db_path or gold_sql: their execution reward is 0", missing, len(rows))
    return rows


def chat_of(prompt: Any) -> list[dict[str, str]]:
    """A row's prompt as a chat (a string prompt is one user turn)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


def render_prompts(rows: list[dict[str, Any]], encoder: Any) -> list[dict[str, Any]]:
    """Rows with ``prompt`` rendered as text by the LLaMA-Factory template (``encoder``)."""
    cache: dict[str, str] = {}
    out = []
    for row in rows:
        chat = chat_of(row["prompt"])
        key = json.dumps(chat, ensure_ascii=False)
        if key not in cache:
            cache[key] = encoder.render(chat)
        out.append({**row, "prompt": cache[key]})
    return out


# --------------------------------------------------------------------------------- dev eval


class _RowPrompts:
    """``predict_sql``'s builder for questions read from GRPO rows: their own prompt."""

    def build(self, question: Any) -> tuple[str, str]:
        return question.instruction, question.input


def dev_questions(path: str | os.PathLike[str], size: int) -> list[Any]:
    """The first ``size`` rows of a GRPO rows file as Questions (prompt in ``input``); every row
    needs ``db_path`` in BIRD layout and ``gold_sql``."""
    from lfkit.data.grpo import read_grpo_rows
    from lfkit.data.rows import UNKNOWN_DIFFICULTY, Question

    rows = read_grpo_rows(path, require_gold=True)[: size or None]
    out = []
    for i, row in enumerate(rows):
        chat = chat_of(row["prompt"])
        if len(chat) != 1 or chat[0]["role"] != "user":
            raise DataFileError(f"{path}: row {i}: field 'prompt': dev rows need one user turn")
        db_path = Path(row["db_path"])
        db_id = row.get("db_id") or db_path.stem
        if db_path.parent.name != db_id or db_path.stem != db_id:
            raise DataFileError(f"{path}: row {i}: field 'db_path' {db_path} is not <root>/{db_id}/{db_id}.sqlite")
        out.append(
            Question(
                row.get("question_id", str(i)),
                db_id,
                row.get("question", ""),
                gold_sql=row["gold_sql"],
                difficulty=row.get("difficulty") or UNKNOWN_DIFFICULTY,
                db_path=db_path,
                index=i,
                input=chat[0]["content"],
            )
        )
    return out


def policy_backend(model: Any, encoder: Any, batch_size: int) -> Any:
    """An ``hf`` generation backend over a live (training) model: no copy, no reload."""
    from lfkit.generate.base import GenerationBackend
    from lfkit.generate.hf_backend import HFBackend

    class PolicyBackend(HFBackend):
        def __init__(self) -> None:
            GenerationBackend.__init__(self)
            self.encoder = encoder
            self.model = model
            self.device = str(next(model.parameters()).device)
            self.batch_size = batch_size
            self.share_prompt = False
            self.grouped_attention = False
            self._logits_kw = {}
            self.model_path, self.adapter = "policy", None

        def close(self) -> None:  # the trainer owns the model
            pass

    return PolicyBackend()


def dev_ex(
    model: Any, encoder: Any, questions: Sequence[Any], *, max_new_tokens: int, batch_size: int, timeout: float
) -> dict[str, Any]:
    """Greedy dev EX of ``model`` (set to eval mode for the call, restored after)."""
    from lfkit.eval import score_predictions
    from lfkit.eval.predict import predict_sql

    was_training = model.training
    model.eval()
    try:
        backend = policy_backend(model, encoder, batch_size)
        preds = predict_sql(
            questions, backend, _RowPrompts(), max_new_tokens=max_new_tokens, progress=False, description="dev EX"
        )
    finally:
        model.train(was_training)
    db_root = Path(questions[0].db_path).parent.parent
    report = score_predictions(preds, list(questions), db_root, timeout=timeout)
    return {"ex": report["ex"], "n": report["n"], "by_difficulty": report["by_difficulty"]}


def _trainer_callback_base() -> type:
    from transformers import TrainerCallback

    return TrainerCallback


class DevEvalCallback(_trainer_callback_base()):  # type: ignore[misc]
    """Dev EX at the start and every ``every`` steps, ``best_model/`` by dev EX, JSONL logs.

    ``trainer`` is set after the trainer is built (TRL's logs of sampled completions live on it).
    """

    def __init__(
        self,
        output_dir: Path,
        encoder: Any,
        questions: Sequence[Any],
        *,
        every: int,
        max_new_tokens: int,
        batch_size: int,
        timeout: float,
        samples_per_log: int,
        reward_errors: dict[str, int],
    ) -> None:
        self.output_dir = Path(output_dir)
        self.encoder = encoder
        self.questions = list(questions)
        self.every = every
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.timeout = timeout
        self.samples_per_log = samples_per_log
        self.reward_errors = reward_errors
        self.trainer: Any = None
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        best = self.output_dir / BEST_DIR / BEST_MARKER
        if best.is_file():  # resumed run: keep beating the best of the earlier run
            self.best = json.loads(best.read_text())
        self._evaluated: set[int] = set()
        self.started = time.monotonic()

    def _append(self, name: str, record: dict[str, Any]) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with (self.output_dir / name).open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")

    def evaluate(self, step: int, model: Any) -> dict[str, Any] | None:
        if not self.questions or step in self._evaluated:
            return None
        self._evaluated.add(step)
        start = time.monotonic()
        result = dev_ex(
            model,
            self.encoder,
            self.questions,
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
            timeout=self.timeout,
        )
        result.update(step=step, seconds=round(time.monotonic() - start, 2))
        self.history.append(result)
        self._append(LOG_FILE, {"step": step, "dev_ex": result["ex"], "dev_n": result["n"], "dev": result})
        logger.info("step %d: dev EX %.2f%% (%d questions)", step, result["ex"], result["n"])
        if self.best is None or result["ex"] > self.best["dev_ex"]:
            self.save_best(step, model, result)
        return result

    def save_best(self, step: int, model: Any, result: dict[str, Any]) -> None:
        best_dir = self.output_dir / BEST_DIR
        tmp = best_dir.with_name(BEST_DIR + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        self.best = {
            "step": step,
            "dev_ex": result["ex"],
            "dev_n": result["n"],
            "by_difficulty": result["by_difficulty"],
        }
        (tmp / BEST_MARKER).write_text(json.dumps(self.best, indent=2) + "\n")
        shutil.rmtree(best_dir, ignore_errors=True)
        tmp.rename(best_dir)

    def _model(self, model: Any) -> Any:
        if self.trainer is not None:
            return self.trainer.accelerator.unwrap_model(self.trainer.model)
        return model

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if state.is_world_process_zero and self.best is None:
            self.evaluate(state.global_step, self._model(model))  # the start model (step 0: the SFT model)

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if self.every and state.global_step % self.every == 0 and state.is_world_process_zero:
            self.evaluate(state.global_step, self._model(model))

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if self.every and state.is_world_process_zero:
            self.evaluate(state.global_step, self._model(model))

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, int | float | str)}}
        if self.reward_errors:
            record["reward_errors"] = dict(self.reward_errors)
        record["elapsed"] = round(time.monotonic() - self.started, 2)
        self._append(LOG_FILE, record)
        self._log_samples(state.global_step)

    def _log_samples(self, step: int) -> None:
        logs = getattr(self.trainer, "_logs", None)
        if not logs or not self.samples_per_log or not logs.get("completion"):
            return
        prompts, completions = list(logs["prompt"]), list(logs["completion"])
        rewards = {name: list(values) for name, values in logs.get("rewards", {}).items()}
        for i in range(min(self.samples_per_log, len(completions))):
            prompt = prompts[i] if isinstance(prompts[i], str) else json.dumps(prompts[i], ensure_ascii=False)
            self._append(
                SAMPLES_FILE,
                {
                    "step": step,
                    "prompt_tail": prompt[-300:],
                    "completion": completions[i],
                    "rewards": {name: values[i] for name, values in rewards.items() if i < len(values)},
                },
            )


# -------------------------------------------------------------------------------- training


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


def plot_rewards(log_file: Path, out: Path) -> Path | None:
    """``reward_curve.png``: mean total reward and each reward's mean per step, dev EX on a second axis."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    records = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    train = [r for r in records if "reward" in r]
    dev = [r for r in records if "dev_ex" in r]
    if not train and not dev:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if train:
        steps = [r["step"] for r in train]
        ax.plot(steps, [r["reward"] for r in train], label="total reward (weighted)", linewidth=2)
        for key in sorted({k for r in train for k in r if k.startswith("rewards/") and k.endswith("/mean")}):
            ax.plot(steps, [r.get(key, float("nan")) for r in train], label=key[8:-5], alpha=0.6)
    ax.set_xlabel("step")
    ax.set_ylabel("reward (mean over completions)")
    if dev:
        ax2 = ax.twinx()
        ax2.plot([r["step"] for r in dev], [r["dev_ex"] for r in dev], "k--o", label="dev EX (%)")
        ax2.set_ylabel("dev EX (%)")
        ax2.legend(loc="lower right")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("GRPO rewards and dev EX")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


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

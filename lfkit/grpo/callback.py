"""Dev EX during GRPO (:class:`DevEvalCallback`): at the start and every K steps, ``best_model/``, JSONL logs."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lfkit.grpo.data import RowPrompts

logger = logging.getLogger("lfkit.grpo.train")

BEST_DIR = "best_model"
BEST_MARKER = "lfkit_best.json"
LOG_FILE = "grpo_log.jsonl"
SAMPLES_FILE = "samples.jsonl"


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
            questions, backend, RowPrompts(), max_new_tokens=max_new_tokens, progress=False, description="dev EX"
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


__all__ = ["BEST_DIR", "BEST_MARKER", "LOG_FILE", "SAMPLES_FILE", "DevEvalCallback", "dev_ex", "policy_backend"]

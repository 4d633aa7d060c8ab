"""Gold guidance for GRPO: an all-wrong group gets the gold SQL as one of its completions.

GRPO learns only from groups whose rewards differ. On a small model most groups are all
wrong (the demo SFT model solves 61 of 400 training questions in 4 samples at T 0.7), so
most steps teach nothing. LUFFY (Yan et al. 2025, "Learning to Reason under Off-Policy
Guidance") mixes an off-policy correct answer into such groups; lfkit's rule, per training
step and per question in the step:

* every completion is scored by the run's execution reward (its Verifier cache makes the
  reward call that follows free for the same SQL);
* if none of the question's completions is correct, the **last** one is replaced by the gold
  SQL written as the SFT target (:func:`lfkit.data.prompts.format_sql_answer`, a ```sql
  fence, then the end-of-turn token) -- its reward is then the correct one and its advantage
  the group's largest;
* a group with any correct completion is left alone (on-policy GRPO), and so is a gold
  completion longer than ``max_completion_length`` (a truncated gold would be wrong).

The replaced completion is off-policy: its "old" log-probabilities are the current policy's,
so its importance ratio is 1 and its gradient is the advantage-weighted log-likelihood of the
gold answer. Generation must be lfkit's own (transformers): vLLM's sampling log-probabilities
would not cover the gold tokens, so the config check refuses ``use_vllm`` with guidance.

>>> all_wrong_last([("q1",), ("q1",), ("q2",), ("q2",)], [0.1, 0.0, 1.0, 0.1], correct=1.0)
[1]
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from lfkit.data.prompts import format_sql_answer


def all_wrong_last(keys: Sequence[Hashable], scores: Sequence[float], *, correct: float) -> list[int]:
    """The index of the last completion of every group (same ``key``) with no score ``>= correct``.

    Groups are keyed, not positional, so a batch that interleaves questions still works.

    >>> all_wrong_last(["a", "b", "a", "b"], [0.0, 1.0, 0.1, 0.0], correct=1.0)
    [2]
    >>> all_wrong_last(["a", "a"], [1.0, 0.0], correct=1.0)
    []
    """
    last: dict[Hashable, int] = {}
    solved: set[Hashable] = set()
    for i, (key, score) in enumerate(zip(keys, scores, strict=True)):
        last[key] = i
        if score >= correct:
            solved.add(key)
    return sorted(i for key, i in last.items() if key not in solved)


def gold_completion(gold_sql: str) -> str:
    """The guide text for ``gold_sql``: the SFT target (a ```sql fence).

    >>> gold_completion(" SELECT 1 ")
    '```sql\\nSELECT 1\\n```'
    """
    return format_sql_answer(gold_sql)


def guided_trainer_class(base: type) -> type:
    """A subclass of TRL's ``GRPOTrainer`` (``base``) that applies gold guidance (module docstring).

    Built with ``guide_reward=`` (the run's :class:`lfkit.reward.execution.ExecutionReward`)
    on top of the trainer's own arguments; ``guided_groups`` counts the groups guided so far
    and ``guided/groups`` is logged per step.
    """
    import torch

    class GuidedGRPOTrainer(base):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, guide_reward: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.guide_reward = guide_reward
            self.guided_groups = 0
            self._guide_inputs: list[dict[str, Any]] | None = None

        def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
            self._guide_inputs = inputs  # _generate sees only the prompts; the rows carry the gold
            try:
                return super()._generate_and_score_completions(inputs)
            finally:
                self._guide_inputs = None

        def _generate(self, prompts: list[str], images: Any) -> tuple:
            prompt_ids, completion_ids, n_tokens, logprobs, forward_kwargs = super()._generate(prompts, images)
            rows = self._guide_inputs
            if not self.model.training or rows is None or len(rows) != len(completion_ids):
                return prompt_ids, completion_ids, n_tokens, logprobs, forward_kwargs
            texts = self.processing_class.batch_decode(completion_ids, skip_special_tokens=True)
            db_paths = [row.get("db_path") for row in rows]
            golds = [row.get("gold_sql") for row in rows]
            scores = self.guide_reward(None, texts, db_path=db_paths, gold_sql=golds)
            keys = [(str(db), str(gold)) for db, gold in zip(db_paths, golds, strict=True)]
            guided = 0
            delta = 0
            for i in all_wrong_last(keys, scores, correct=self.guide_reward.correct):
                if not db_paths[i] or not isinstance(golds[i], str) or not golds[i].strip():
                    continue  # nothing to guide with: the row's reward is 0 anyway
                ids = self.processing_class(gold_completion(golds[i]), add_special_tokens=False)["input_ids"]
                ids = [*ids, self.eos_token_id]
                if len(ids) > self.max_completion_length:
                    continue
                delta += len(ids) - len(completion_ids[i])
                completion_ids[i] = ids
                guided += 1
            if guided:
                # num_items_in_batch (DAPO's loss normaliser) counts completion tokens of all processes
                n_tokens = n_tokens + self.accelerator.gather(torch.tensor([delta], device=n_tokens.device)).sum()
            self.guided_groups += guided
            self._metrics["train"]["guided/groups"].append(float(guided))
            return prompt_ids, completion_ids, n_tokens, logprobs, forward_kwargs

    return GuidedGRPOTrainer


__all__ = ["all_wrong_last", "gold_completion", "guided_trainer_class"]

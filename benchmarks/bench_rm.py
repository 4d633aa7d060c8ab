"""Benchmark: reward-model pair scoring, lfkit vs the seed's evaluation loop.

Run:  .venv/bin/python benchmarks/bench_rm.py [--questions 16 --pairs-per-question 3 --batch-size 8]

Both sides score the same pairs with the same model -- SmolLM2-135M-Instruct
(``smollm2-135m``) as ``AutoModelForSequenceClassification`` plus a SEQ_CLS LoRA over every
linear layer with the ``score`` head saved (the seed's ``train.py`` configuration; weights
random but fixed, made by this script) -- and the same batch size (pairs per step):

* seed loop -- what ReSQLver's ``evaluate.py`` does: pairs in file order; per batch, the
  chat template applied to each text, one padded forward for the chosen texts and another for
  the rejected ones (each padded to its own longest text), the LoRA unmerged;
* lfkit -- :meth:`lfkit.reward.model.RewardModel.score_groups` as ``rm eval`` calls it: the
  LoRA merged, each distinct text once (a preference file repeats its chosen answer across the
  pairs of a question), texts sharing a prompt prefix run it once (its key/value cache copied
  to each answer: a pair's two answers, the pairs of one question, and the schema part of
  prompts on one database), the answers in one forward; decoder + head only;
* lfkit, plain -- the same without de-duplication and prefix sharing: pairs sorted by length,
  chosen and rejected in one forward (``dedup=False, share_prefix=False``).

The pairs imitate an lfkit/ReSQLver pair file: demo-corpus train questions with the SFT prompt
(schema without example values, as the demo trains), the gold answer as chosen and
``pairs-per-question`` different wrong or failing answers as rejected, shuffled (the seed
evaluates a random split). Loading time is excluded on both sides. The script checks that
all give the same scores (to 1e-3) and prints pairs/s, tokens run and the ratios.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path


def make_pairs(n_questions: int, per_question: int, seed: int) -> list[tuple[list[dict], str, str]]:
    from lfkit.data.bird import load_bird
    from lfkit.data.demo import DEMO_PROMPT_OPTIONS, build_demo_corpus
    from lfkit.data.prompts import SchemaPromptBuilder, chat_messages, format_sql_answer

    corpus = Path(tempfile.mkdtemp(prefix="bench_rm_")) / "corpus"
    build_demo_corpus(corpus, seed=0)
    builder = SchemaPromptBuilder(**DEMO_PROMPT_OPTIONS)
    pairs = []
    for q in load_bird(corpus, "train")[:n_questions]:
        gold = q.gold_sql.strip().rstrip(";")
        wrongs = [
            f"SELECT * FROM ({gold}) LIMIT 0",
            "SELECT COUNT(*) FROM People",
            f"{gold} ORDER BY 1 DESC LIMIT 1" if "LIMIT" not in gold.upper() else f"SELECT * FROM ({gold}) LIMIT 1",
            "SELECT no_such_column FROM People WHERE nameLast = 'Aaron'",
        ]
        messages = chat_messages(*builder.build(q))
        for w in wrongs[:per_question]:
            pairs.append((messages, format_sql_answer(gold), format_sql_answer(w)))
    random.Random(seed).shuffle(pairs)
    return pairs


def make_adapter(model_dir: str, out: Path) -> Path:
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype=torch.float32)
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=16, lora_alpha=32, modules_to_save=["score"],
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )  # fmt: skip
    model = get_peft_model(base, config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.02)
    model.save_pretrained(str(out))
    return out


def seed_loop(model_dir: str, adapter: Path, pairs, batch_size: int) -> tuple[list[tuple[float, float]], float]:
    """The seed's evaluation loop (file order, two padded forwards per batch, unmerged LoRA)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tok.pad_token_id
    model = PeftModel.from_pretrained(model, str(adapter)).eval()
    out: list[tuple[float, float]] = []
    tokens = 0
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(pairs), batch_size):
            batch = pairs[i : i + batch_size]
            sides = []
            for k in (1, 2):
                texts = [tok.apply_chat_template([*m, {"role": "assistant", "content": p[k]}], tokenize=False)
                         for p in batch for m in [p[0]]]  # fmt: skip
                inputs = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=4096)
                tokens += inputs["input_ids"].numel()
                sides.append(model(**inputs).logits.squeeze(-1).tolist())
            out += list(zip(sides[0], sides[1], strict=True))
    return out, time.perf_counter() - start, tokens


def lfkit_scores(model_dir: str, adapter: Path, pairs, batch_size: int, fast: bool):
    from lfkit.reward.model import RewardModel

    rm = RewardModel.load(model_dir, adapter)
    start = time.perf_counter()
    groups = [rm.encode_pair(m, c, r) for m, c, r in pairs]  # encoding is part of the timed work
    scores = rm.score_groups(groups, batch_size, dedup=fast, share_prefix=fast)
    seconds = time.perf_counter() - start
    return [(a, b) for a, b in scores], seconds, dict(rm.stats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=16)
    parser.add_argument("--pairs-per-question", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (both sides)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="Write the numbers here.")
    parser.add_argument(
        "--lfkit-first", action="store_true", help="Time lfkit before the seed loop (order effects on a busy machine)."
    )
    args = parser.parse_args(argv)

    import torch

    from lfkit.models.embedded import prepare_model

    torch.set_num_threads(args.threads)
    model_dir = str(prepare_model("smollm2-135m"))
    pairs = make_pairs(args.questions, args.pairs_per_question, args.seed)
    adapter = make_adapter(model_dir, Path(tempfile.mkdtemp(prefix="bench_rm_adapter_")) / "rm")
    n = len(pairs)
    print(f"{n} pairs ({args.questions} questions x {args.pairs_per_question}), batch size {args.batch_size}, "
          f"{args.threads} threads, smollm2-135m + SEQ_CLS LoRA r=16")  # fmt: skip

    if not args.lfkit_first:
        base_scores, base_s, base_tokens = seed_loop(model_dir, adapter, pairs, args.batch_size)
    ours, ours_s, stats = lfkit_scores(model_dir, adapter, pairs, args.batch_size, fast=True)
    plain, plain_s, plain_stats = lfkit_scores(model_dir, adapter, pairs, args.batch_size, fast=False)
    if args.lfkit_first:
        base_scores, base_s, base_tokens = seed_loop(model_dir, adapter, pairs, args.batch_size)
    worst = max(abs(a - b) for x, y in zip(base_scores, ours, strict=True) for a, b in zip(x, y, strict=True))
    worst_plain = max(abs(a - b) for x, y in zip(base_scores, plain, strict=True) for a, b in zip(x, y, strict=True))
    result = {
        "pairs": n,
        "batch_size": args.batch_size,
        "seed_loop": {"seconds": round(base_s, 2), "pairs_per_s": round(n / base_s, 3), "tokens": base_tokens},
        "lfkit": {"seconds": round(ours_s, 2), "pairs_per_s": round(n / ours_s, 3), **stats},
        "lfkit_plain": {"seconds": round(plain_s, 2), "pairs_per_s": round(n / plain_s, 3), **plain_stats},
        "speedup": round(base_s / ours_s, 2),
        "speedup_plain": round(base_s / plain_s, 2),
        "max_score_difference": worst,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if worst > 1e-3 or worst_plain > 1e-3:
        print(f"FAIL: scores differ by {max(worst, worst_plain):.2e}", file=sys.stderr)
        return 1
    print(f"lfkit {result['speedup']}x the seed loop (plain, sorted + one forward: {result['speedup_plain']}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The hf backend on CPU with the tiny model: batching, per-sample seeds, LoRA adapters, stops."""

from __future__ import annotations

from pathlib import Path

import pytest

from lfkit.generate import GenerationError, SamplingConfig, get_backend, truncate_at_stop

CHATS = [
    [{"role": "user", "content": "How many players were born in 1980?"}],
    [{"role": "user", "content": "List the teams of 2017 " + "with a long schema " * 30}],
    [{"role": "user", "content": "Who hit the most home runs?"}],
]


@pytest.fixture(scope="module")
def hf(tiny_model: Path):
    backend = get_backend("hf", model=str(tiny_model), device="cpu", batch_size=8)
    yield backend
    backend.close()


def test_n_completions_per_chat_reproducible_by_seed(hf) -> None:
    cfg = SamplingConfig(n=3, temperature=1.0, top_p=0.95, max_new_tokens=12, seed=5)
    a = hf.generate(CHATS, cfg)
    assert [len(x) for x in a] == [3, 3, 3]
    assert all(isinstance(t, str) and t for x in a for t in x)
    assert hf.generate(CHATS, cfg) == a
    assert len({t for x in a for t in x}) > 3  # samples differ from each other
    assert hf.generate(CHATS, SamplingConfig(n=3, temperature=1.0, top_p=0.95, max_new_tokens=12, seed=6)) != a


def test_samples_do_not_depend_on_batch_composition(hf) -> None:
    # Each row draws from its own generator (seed + index*1000 + j): batching 3 prompts with
    # left padding, or asking for one prompt alone with its own seed, gives the same samples.
    cfg = SamplingConfig(n=2, temperature=0.9, top_p=1.0, max_new_tokens=10, seed=11)
    hf.batch_size = 3
    batched = hf.generate(CHATS, cfg)
    hf.batch_size = 1
    try:
        one_by_one = hf.generate(CHATS, cfg)
        alone = hf.generate([CHATS[2]], cfg, seeds=[11 + 2 * 1000])
    finally:
        hf.batch_size = 8
    assert batched == one_by_one
    assert alone[0] == batched[2]


SCHEMA = "CREATE TABLE Teams (yearID INTEGER, teamID TEXT, name TEXT, W INTEGER, L INTEGER, HR INTEGER);\n" * 4
SCHEMA_CHATS = [
    [{"role": "user", "content": SCHEMA + q}]
    for q in ("Question: wins of Boston in 2017?", "Question: most home runs?", "Question: teams in 1901 by losses")
]


@pytest.mark.parametrize("chats", [CHATS, SCHEMA_CHATS], ids=["distinct", "shared-schema"])
def test_shared_prompt_prefill_changes_nothing(hf, chats) -> None:
    # A common schema prefix encoded once for the batch (padding after it), each prompt encoded
    # once for its n samples -- or everything copied and encoded per row as transformers does:
    # the same samples.
    from lfkit.generate.hf_backend import MIN_SHARED_PREFIX, common_prefix

    prompts = [hf.encoder.encode(c) for c in chats]
    assert (common_prefix(prompts) >= MIN_SHARED_PREFIX) == (chats is SCHEMA_CHATS)
    cfg = SamplingConfig(n=3, temperature=0.9, top_p=1.0, max_new_tokens=8, seed=2)
    shared = hf.generate(chats, cfg)
    greedy = hf.generate(chats, SamplingConfig(n=1, temperature=0, max_new_tokens=8))
    hf.share_prompt = False
    try:
        assert hf.generate(chats, cfg) == shared
        assert hf.generate(chats, SamplingConfig(n=1, temperature=0, max_new_tokens=8)) == greedy
    finally:
        hf.share_prompt = True


def test_grouped_query_attention_without_kv_copies(tiny_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from lfkit.generate.hf_backend import GROUPED_SDPA, use_grouped_sdpa

    stock = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    grouped = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    assert use_grouped_sdpa(grouped) and grouped.config._attn_implementation == GROUPED_SDPA
    ids = torch.randint(0, 5000, (3, 24), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0
    mask[1, 10:14] = 0  # padding inside a row, as after a shared prefix
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        a = stock(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        b = grouped(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        assert torch.allclose(a.logits[mask.bool()], b.logits[mask.bool()], atol=1e-5)
        step = torch.tensor([[7], [8], [9]])
        mask2 = torch.cat([mask, torch.ones(3, 1, dtype=mask.dtype)], dim=1)
        a2 = stock(input_ids=step, attention_mask=mask2, past_key_values=a.past_key_values)
        b2 = grouped(input_ids=step, attention_mask=mask2, past_key_values=b.past_key_values)
        assert torch.allclose(a2.logits, b2.logits, atol=1e-5)


def test_reserved_cache_decodes_like_transformers_cache(tiny_model: Path) -> None:
    # Prefill, repeat rows (as for n samples), decode: the in-place cache returns the same logits
    # as transformers' DynamicCache, writes into one buffer while it has room, and re-buffers
    # after a batch reshape or when its room runs out.
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    from lfkit.generate.hf_backend import reserved_cache

    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    ids = torch.randint(0, 5000, (2, 12), generator=torch.Generator().manual_seed(1))
    results = []
    for cache in (DynamicCache(), reserved_cache(3)):
        logits, buffers = [], []
        with torch.inference_mode():
            model(input_ids=ids, past_key_values=cache, use_cache=True)
            cache.batch_repeat_interleave(2)
            step = torch.tensor([[5], [6], [7], [8]])
            for _ in range(5):  # a new buffer holds the first token + 3 reserved, then another
                out = model(input_ids=step, past_key_values=cache, use_cache=True)
                step = out.logits[:, -1:].argmax(-1)
                logits.append(out.logits)
                buffers.append(cache.layers[0].keys.data_ptr())
            cache.batch_select_indices(torch.tensor([0, 3]))
            logits.append(model(input_ids=step[[0, 3]], past_key_values=cache, use_cache=True).logits)
        assert cache.get_seq_length() == 12 + 6
        results.append((logits, buffers))
    (plain, _), (reserved, ptrs) = results
    for a, b in zip(plain, reserved, strict=True):
        assert torch.equal(a, b)  # bitwise: the same numbers as before, only no copies
    assert ptrs[0] == ptrs[1] == ptrs[2] == ptrs[3] != ptrs[4]  # 5th token: the reserved room is used up


def test_greedy_decodes_once_and_copies(hf) -> None:
    before = hf.stats.completion_tokens
    out = hf.generate(CHATS[:2], SamplingConfig(n=3, temperature=0, max_new_tokens=6))
    assert all(len(set(x)) == 1 and len(x) == 3 for x in out)
    assert hf.stats.completion_tokens - before <= 2 * 3 * 6


def test_top_p_keeps_the_same_nucleus_as_transformers() -> None:
    import torch
    from transformers.generation.logits_process import TopPLogitsWarper

    from lfkit.generate.hf_backend import SeededSampler

    logits = torch.log(torch.tensor([[0.05, 0.5, 0.15, 0.3]]))
    for top_p in (0.5, 0.7, 0.9, 0.99):
        hf_support = set(torch.isfinite(TopPLogitsWarper(top_p)(None, logits.clone()))[0].nonzero().flatten().tolist())
        drawn = set()
        for seed in range(200):
            scores = SeededSampler(1.0, top_p, [seed], "cpu")(None, logits.clone())
            assert torch.isfinite(scores).sum() == 1
            drawn.add(int(scores.argmax()))
        assert drawn == hf_support, top_p
    # frequencies follow the renormalised nucleus: p(1) = 0.5 / 0.8 at top_p = 0.7
    picks = [int(SeededSampler(1.0, 0.7, [s], "cpu")(None, logits.clone()).argmax()) for s in range(400)]
    assert 0.55 < picks.count(1) / 400 < 0.70


def test_completion_is_cut_at_the_first_stop_token(hf) -> None:
    enc = hf.encoder
    ids = enc.tokenizer.encode("SELECT 1", add_special_tokens=False)
    stop = enc.stop_token_ids[0]
    text, n = enc.decode_completion([*ids, stop, *ids])
    assert text == "SELECT 1"
    assert n == len(ids) + 1


def test_lora_adapter_is_applied(hf, tiny_model: Path, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    # init_lora_weights=False: random B, so the adapter changes the model from the first step
    peft_model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    cfg = SamplingConfig(n=1, temperature=0.0, max_new_tokens=8, seed=3)
    with get_backend("hf", model=str(tiny_model), adapter=str(tmp_path / "adapter"), device="cpu") as tuned:
        with_adapter = tuned.generate(CHATS, cfg)
    # the reference: the same adapter applied by peft itself (not merged), greedy, one chat at a time
    from peft import PeftModel

    ref = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), str(tmp_path / "adapter"))
    enc, want = hf.encoder, []
    for chat in CHATS:
        ids = torch.tensor([enc.encode(chat)])
        with torch.inference_mode():
            out = ref.eval().generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=8,
                eos_token_id=enc.stop_token_ids,
                pad_token_id=enc.pad_token_id,
            )
        want.append([enc.decode_completion(out[0, ids.shape[1] :].tolist())[0]])
    assert with_adapter == want
    assert with_adapter != hf.generate(CHATS, cfg)  # and for these prompts the adapter matters
    with pytest.raises(GenerationError, match=r"adapter_config\.json"):
        get_backend("hf", model=str(tiny_model), adapter=str(tmp_path / "missing"), device="cpu")


def test_stop_criterion_fires_at_the_closing_fence_not_the_opening_one(hf) -> None:
    # Canned text through the real tokenizer, fed token by token as generate does: the fence
    # stop (a closing ``` on its own line) must not fire at "\n```sql\n" but at the line after SQL.
    import torch

    from lfkit.generate.hf_backend import StopOnStrings
    from lfkit.sql.extract import SQL_FENCE_STOP

    tok = hf.encoder.tokenizer
    text = "Here it is:\n```sql\nSELECT name\nFROM t\n```\n\nThis query lists names."
    prompt = tok.encode("question", add_special_tokens=False)
    ids = tok.encode(text, add_special_tokens=False)
    stopper = StopOnStrings(SQL_FENCE_STOP, tok, len(prompt), rows=1)
    fired_at = next(k for k in range(1, len(ids) + 1) if bool(stopper(torch.tensor([prompt + ids[:k]]), None)[0]))
    assert stopper.lengths == [fired_at]
    seen = tok.decode(ids[:fired_at])
    assert seen.startswith("Here it is:\n```sql\nSELECT name\nFROM t\n```\n")
    assert "```" not in tok.decode(ids[: fired_at - 1])[len("Here it is:\n```sql") :]


def test_stop_strings_cut_each_row_of_a_batch(hf) -> None:
    # The random tiny model emits arbitrary text: take a stop string from its own greedy output,
    # then decode again with it. Every row is the no-stop text cut right after the first stop
    # (kept), rows that stop early pad while the others go on, and fewer tokens are counted.
    full = hf.generate(CHATS, SamplingConfig(n=1, temperature=0, max_new_tokens=24))
    stop = full[0][0][6:9]
    assert len(stop) == 3, full
    before = hf.stats.completion_tokens
    stopped = hf.generate(CHATS, SamplingConfig(n=2, temperature=0, max_new_tokens=24, stop=[stop]))
    spent = hf.stats.completion_tokens - before
    assert stopped == [[truncate_at_stop(x[0], [stop])[0]] * 2 for x in full]
    assert len(stopped[0][0]) <= 9 < len(full[0][0]) and stopped[0][0].endswith(stop)
    assert spent < 2 * sum(len(hf.encoder.tokenizer.encode(x[0], add_special_tokens=False)) for x in full)
    # sampling: the same rule per sample
    cfg = SamplingConfig(n=3, temperature=1.0, top_p=1.0, max_new_tokens=16, seed=4)
    sampled = hf.generate(CHATS, cfg)
    stop = sampled[1][2][3:5]
    cut = hf.generate(CHATS, SamplingConfig(n=3, temperature=1.0, top_p=1.0, max_new_tokens=16, seed=4, stop=[stop]))
    assert cut == [[truncate_at_stop(t, [stop])[0] for t in x] for x in sampled]
    assert len(cut[1][2]) <= 5 < len(sampled[1][2]) and cut[1][2].endswith(stop)

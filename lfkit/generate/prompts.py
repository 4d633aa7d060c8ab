"""Sampling prompts built by LLaMA-Factory's own template code.

A model samples well only from the prompt it was trained on, so lfkit never renders a
chat itself: it loads the tokenizer the way LLaMA-Factory does (``load_tokenizer``),
fixes it with ``get_template_and_fix_tokenizer`` and encodes ``chat + [empty assistant
turn]`` with ``Template.encode_oneturn`` -- exactly what LLaMA-Factory's own chat
engines do, and (tested) the prompt part of its SFT preprocessing of the same row.
"""

from __future__ import annotations

import os
from typing import Any

from lfkit.generate.base import Chat, GenerationError, validate_chat
from lfkit.models.embedded import offline_default, read_marker
from lfkit.models.presets import load_preset


def resolve_template(
    model: str | os.PathLike[str] | None, template: str | None = None, preset: str | None = None
) -> str:
    """The LLaMA-Factory template name: ``template`` > the preset's > the embedded model's.

    Raises ValueError when none says, because guessing a template silently breaks the
    prompt identity between training and sampling.
    """
    if template:
        return template
    if preset:
        found = load_preset(preset).get("template")
        if not found:
            raise ValueError(f"preset {preset!r} names no template")
        return found
    if model is not None:
        found = (read_marker(model) or {}).get("template")
        if found:
            return found
    raise ValueError(
        f"no LLaMA-Factory template for model {model}: pass --template (e.g. qwen3_nothink) or --preset, "
        "the same one the model was trained with"
    )


def offline_if_local(model: str) -> None:
    # A local folder never needs the hub; without this transformers may still probe it.
    offline_default(model, os.environ)


class PromptEncoder:
    """Token ids of a chat's generation prompt, per LLaMA-Factory template ``template``."""

    def __init__(self, model: str | os.PathLike[str], template: str, *, trust_remote_code: bool = True) -> None:
        model = str(model)
        offline_if_local(model)
        from llamafactory.data import get_template_and_fix_tokenizer
        from llamafactory.data.template import TEMPLATES
        from llamafactory.hparams import DataArguments, ModelArguments
        from llamafactory.model import load_tokenizer

        if template not in TEMPLATES:
            raise GenerationError(f"LLaMA-Factory has no template {template!r} (see llamafactory/data/template.py)")
        try:
            tokenizer_module = load_tokenizer(
                ModelArguments(model_name_or_path=model, trust_remote_code=trust_remote_code)
            )
        except OSError as exc:
            raise GenerationError(f"cannot load a tokenizer from {model}: {exc}") from exc
        self.model = model
        self.template_name = template
        self.tokenizer = tokenizer_module["tokenizer"]
        self.template = get_template_and_fix_tokenizer(self.tokenizer, DataArguments(template=template))
        self.stop_token_ids: list[int] = sorted(
            t for t in self.template.get_stop_token_ids(self.tokenizer) if t is not None
        )
        self.pad_token_id: int = self.tokenizer.pad_token_id

    def encode(self, chat: Chat) -> list[int]:
        """Prompt ids for ``chat`` (ending with a user turn), generation prompt included."""
        chat = validate_chat(chat)
        system = None
        if chat[0]["role"] == "system":  # LF passes the system prompt beside the messages
            system, chat = chat[0]["content"], chat[1:]
        messages = [dict(m) for m in chat] + [{"role": "assistant", "content": ""}]
        prompt_ids, _ = self.template.encode_oneturn(self.tokenizer, messages, system)
        return list(prompt_ids)

    def render(self, chat: Chat) -> str:
        """The prompt as text (special tokens kept), for logs and debugging."""
        return self.tokenizer.decode(self.encode(chat), skip_special_tokens=False)

    def decode_completion(self, ids: list[int]) -> tuple[str, int]:
        """Text of a completion cut at its first stop token, and its token count (stop included)."""
        stops = set(self.stop_token_ids)
        n = len(ids)
        for k, tok in enumerate(ids):
            if tok in stops:
                n = k + 1
                ids = ids[:k]
                break
        return self.tokenizer.decode(ids, skip_special_tokens=True), n

    def info(self) -> dict[str, Any]:
        return {"model": self.model, "template": self.template_name, "stop_token_ids": self.stop_token_ids}

"""Token lengths of dataset rows, as LLaMA-Factory will see them.

LLaMA-Factory truncates a sequence longer than ``cutoff_len`` without an error: it keeps
the start of the prompt, so a long schema pushes the question itself out of the model's
view. :func:`length_report` counts, per data file, the rows that exceed a cutoff with a
given tokenizer (and, with ``template``, LLaMA-Factory's own chat template encoding).
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lfkit.data.prompts import chat_messages
from lfkit.io import DataFileError, read_rows

# Row columns holding the answer(s): SFT rows have one, preference rows two (the longer counts).
RESPONSE_FIELDS = ("output", "chosen", "rejected")


@dataclass
class LengthStats:
    """Token lengths of one data file against a cutoff."""

    file: str
    rows: int
    min: int
    median: float
    p95: int
    max: int
    cutoff: int
    over_cutoff: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Encoder:
    """prompt + response token count for a chat, with LLaMA-Factory's template or the tokenizer's."""

    def __init__(self, tokenizer_path: str | os.PathLike[str], template: str | None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_path))
        self.template = None
        if template is not None:
            from llamafactory.data import get_template_and_fix_tokenizer
            from llamafactory.hparams import DataArguments

            self.template = get_template_and_fix_tokenizer(self.tokenizer, DataArguments(template=template))

    def count(self, instruction: str, input_text: str, response: str) -> int:
        messages = chat_messages(instruction, input_text, response)
        if self.template is not None:
            prompt_ids, response_ids = self.template.encode_oneturn(self.tokenizer, messages)
            return len(prompt_ids) + len(response_ids) + int(self.template.efficient_eos)
        if getattr(self.tokenizer, "chat_template", None):
            return len(self.tokenizer.apply_chat_template(messages, tokenize=True))
        return len(self.tokenizer(messages[0]["content"] + "\n" + response).input_ids)


def row_lengths(path: str | os.PathLike[str], encoder: _Encoder) -> list[int]:
    """Tokens per row of an alpaca SFT / preference file (prompt + its longest response)."""
    lengths = []
    for i, row in enumerate(read_rows(path)):
        responses = [row[f] for f in RESPONSE_FIELDS if isinstance(row.get(f), str)]
        if not responses:
            raise DataFileError(f"{path}: row {i}: no response field (one of {', '.join(RESPONSE_FIELDS)})")
        instruction, input_text = row.get("instruction") or "", row.get("input") or ""
        lengths.append(max(encoder.count(instruction, input_text, r) for r in responses))
    return lengths


def length_report(
    files: Sequence[str | os.PathLike[str]],
    tokenizer: str | os.PathLike[str],
    cutoff: int,
    template: str | None = None,
) -> list[LengthStats]:
    """Token length statistics and the number of rows over ``cutoff``, one entry per file."""
    if cutoff <= 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    encoder = _Encoder(tokenizer, template)
    out = []
    for f in files:
        lengths = row_lengths(f, encoder)
        if not lengths:
            raise DataFileError(f"{f}: no rows")
        ordered = sorted(lengths)
        out.append(
            LengthStats(
                file=str(Path(f)),
                rows=len(lengths),
                min=ordered[0],
                median=statistics.median(ordered),
                p95=ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
                max=ordered[-1],
                cutoff=cutoff,
                over_cutoff=sum(n > cutoff for n in lengths),
            )
        )
    return out

"""LoRA adapter lists: the one parser for ``--adapter-path`` / ``adapter_name_or_path`` values."""

from __future__ import annotations

import os


def split_adapters(value: str | os.PathLike[str] | list | tuple | None) -> list[str]:
    """Adapter paths in the order they were trained, from ``"sft,dpo"`` or a list.

    Blank entries are dropped, so ``None``, ``""`` and ``[]`` all mean no adapter.

    >>> split_adapters("out/sft, out/dpo")
    ['out/sft', 'out/dpo']
    >>> split_adapters(["a", " ", "b"]), split_adapters(None), split_adapters("")
    (['a', 'b'], [], [])
    """
    if not value:
        return []
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]

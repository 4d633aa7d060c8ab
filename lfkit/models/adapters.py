"""LoRA adapter lists: the one parser for ``--adapter-path`` / ``adapter_name_or_path`` values."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


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


# Adapter settings a stack can be built from: anything else changes the arithmetic of the delta.
_STACKABLE = {"peft_type": "LORA", "use_dora": False, "modules_to_save": None, "bias": "none"}


def _scaling(config: dict) -> float:
    rank = int(config["r"])
    return float(config["lora_alpha"]) / (rank**0.5 if config.get("use_rslora") else rank)


def stack_adapters(paths: list[str] | tuple[str, ...], out_dir: str | os.PathLike[str] | None = None) -> str:
    """One LoRA adapter folder equal to applying ``paths`` in order; returns its folder.

    LLaMA-Factory trains a later adapter on the model with the earlier ones merged in, and a
    LoRA delta is linear, so ``W + s1 B1 A1 + s2 B2 A2`` is one LoRA of rank ``r1 + r2`` with
    ``A = [A1; A2]`` and ``B = [s1 B1, s2 B2]`` (scalings folded into B, the result's scaling 1).
    A module only some adapters target gets zero blocks for the others. Engines that apply one
    adapter per request (vLLM) then serve a stack without merging weights into a new base model.
    The result is cached under ``$LFKIT_HOME/lora-stacks`` keyed by the inputs' contents.
    A single path is returned as it is.
    """
    import hashlib
    import json

    paths = [str(p) for p in paths]
    if len(paths) == 1:
        return paths[0]
    if not paths:
        raise ValueError("stack_adapters needs at least one adapter")
    configs, files = [], []
    digest = hashlib.sha256()
    for path in paths:
        folder = Path(path)
        config_file, weights = folder / "adapter_config.json", folder / "adapter_model.safetensors"
        if not config_file.is_file() or not weights.is_file():
            raise ValueError(f"{folder}: not a PEFT LoRA folder (adapter_config.json + adapter_model.safetensors)")
        config = json.loads(config_file.read_text())
        for key, wanted in _STACKABLE.items():
            if config.get(key, wanted) not in (wanted, [], {}):
                raise ValueError(f"{config_file}: {key}={config[key]!r} cannot be stacked (needs {wanted!r})")
        if config.get("rank_pattern") or config.get("alpha_pattern"):
            raise ValueError(f"{config_file}: rank_pattern/alpha_pattern cannot be stacked")
        configs.append(config)
        files.append(weights)
        digest.update(config_file.read_bytes() + weights.read_bytes())
    if out_dir is None:
        from lfkit.resources import cache_dir

        out_dir = cache_dir() / "lora-stacks" / digest.hexdigest()[:16]
    out = Path(out_dir)
    if (out / "adapter_config.json").is_file():
        return str(out)
    return str(_write_stack(configs, files, out))


def _write_stack(configs: list[dict], files: list, out: Any) -> Any:
    import json
    import shutil
    import tempfile

    import torch
    from safetensors.torch import load_file, save_file

    tensors = [load_file(str(f)) for f in files]
    ranks = [int(c["r"]) for c in configs]
    total = sum(ranks)
    modules = sorted({k.rsplit(".lora_", 1)[0] for t in tensors for k in t if ".lora_A." in k})
    stacked: dict[str, torch.Tensor] = {}
    for module in modules:
        a_blocks, b_blocks = [], []
        shape_a = shape_b = None
        for t in tensors:
            a = t.get(f"{module}.lora_A.weight")
            if a is not None:
                shape_a, shape_b = a.shape[1], t[f"{module}.lora_B.weight"].shape[0]
        for t, c, r in zip(tensors, configs, ranks, strict=True):
            a, b = t.get(f"{module}.lora_A.weight"), t.get(f"{module}.lora_B.weight")
            if a is None:
                a, b = torch.zeros(r, shape_a), torch.zeros(shape_b, r)
            a_blocks.append(a.float())
            b_blocks.append(b.float() * _scaling(c))
        stacked[f"{module}.lora_A.weight"] = torch.cat(a_blocks, 0).contiguous()
        stacked[f"{module}.lora_B.weight"] = torch.cat(b_blocks, 1).contiguous()
    targets: set[str] = set()
    for c in configs:
        t = c.get("target_modules") or []
        targets.update([t] if isinstance(t, str) else t)
    config = dict(configs[0])
    config.update(r=total, lora_alpha=total, use_rslora=False, target_modules=sorted(targets), lora_dropout=0.0)
    config["lfkit_stack"] = [c.get("r") for c in configs]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_file(stacked, str(tmp / "adapter_model.safetensors"))
        (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2))
        os.replace(tmp, out)  # whole folder or nothing; a concurrent writer's equal copy may win
    except OSError:
        if not (out / "adapter_config.json").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out

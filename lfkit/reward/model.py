"""Reward models: load either kind, encode texts as training saw them, score them fast.

Two kinds of reward model, told apart by the adapter folder (:func:`detect_kind`):

* ``valuehead`` -- LLaMA-Factory's ``stage: rm`` output: a LoRA adapter plus
  ``value_head.safetensors`` (``v_head.summary.weight``/``bias``). Loaded through
  LLaMA-Factory's own code (``get_infer_args``, ``load_tokenizer``,
  ``get_template_and_fix_tokenizer``, ``load_model(add_valuehead=True)``), exactly as its
  ``ChatModel`` with ``stage: rm`` loads it, so weights, merge and dtype are LF's. A text is
  encoded the way LF's pairwise preprocessing encodes a preference row
  (``Template.encode_oneturn`` of prompt + response, eos appended for ``efficient_eos``
  templates, cut to ``cutoff_len`` by LF's ``infer_seqlen``) and its score is the value at the
  last non-pad token (LF's ``PairwiseTrainer`` and ``get_scores``).
* ``seqcls`` -- the seed's (ReSQLver ``train.py``): ``AutoModelForSequenceClassification``
  (``num_labels=1``) + a ``SEQ_CLS`` LoRA whose ``score`` head is saved
  (``modules_to_save``). Texts are the tokenizer's own chat template of
  ``[user prompt, assistant response]``, as the seed's ``evaluate.py`` builds them; the score
  is the head at the last token that is not the pad token (transformers' pooling rule).

``--adapters none`` (kind ``none``) scores the bare base through LF's loader with a value
head initialised from a fixed seed: a floor to compare trained models against.

Speed: both kinds run the decoder only (no LM head: its vocabulary-sized logits are never
used), on right-padded batches of sequences sorted by length, each distinct sequence once;
the chosen and rejected answers of a pair go through the same forward.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfkit.errors import LfkitError

VALUE_HEAD_FILES = ("value_head.safetensors", "value_head.bin")
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
KINDS = ("valuehead", "seqcls", "none")
NO_ADAPTER = "none"
# Seed for the untrained value head of ``--adapters none`` (repeatable floors).
BARE_HEAD_SEED = 0
DEFAULT_CUTOFF = 4096  # the seed's max_length
# Sequences sharing fewer leading tokens run as plain batches (a shared forward would save nothing).
MIN_SHARED_PREFIX = 16
# Weight dtypes a reward model may score in: torch's name for each (LF's ``infer_dtype`` values).
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}

Messages = list[dict[str, str]]


class RewardModelError(LfkitError, ValueError):
    """A reward model that cannot be loaded or used (message names the folder and why)."""


def resolve_dtype(dtype: str | None, device: str) -> str:
    """The dtype a model is scored in: ``dtype`` when given, else fp32 on the CPU and bf16 on an accelerator.

    ReSQLver's ``evaluate.py`` always scores in bf16; on a CPU bf16 is slow and rounds near-zero
    margins, so lfkit's CPU default is fp32 -- and every report names the dtype it used.

    >>> resolve_dtype(None, "cpu"), resolve_dtype(None, "cuda:0"), resolve_dtype("fp16", "cpu")
    ('fp32', 'bf16', 'fp16')
    """
    if dtype is None:
        return "fp32" if device == "cpu" else "bf16"
    if dtype not in DTYPES:
        raise RewardModelError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


def _is_none(adapter: str | os.PathLike[str] | None) -> bool:
    return adapter is None or str(adapter).strip().lower() == NO_ADAPTER


def _adapter_config(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RewardModelError(f"{folder}/adapter_config.json: cannot read it ({exc})") from exc


def _weight_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor shapes of a safetensors file, read from its header only (no tensor is loaded)."""
    if path.suffix != ".safetensors":
        return {}
    with path.open("rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


def _first_file(folder: Path, names: Sequence[str]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def detect_kind(adapter: str | os.PathLike[str] | None) -> str:
    """``valuehead`` | ``seqcls`` | ``none`` for an adapter folder (or ``none``/None).

    ``valuehead``: ``adapter_config.json`` and ``value_head.safetensors`` (or ``.bin``).
    ``seqcls``: ``adapter_config.json`` with ``task_type: SEQ_CLS``, ``score`` in
    ``modules_to_save``, or saved ``score`` weights. Anything else raises RewardModelError.
    """
    if _is_none(adapter):
        return "none"
    folder = Path(str(adapter))
    if not folder.is_dir():
        raise RewardModelError(f"{folder}: no such reward-model folder (give an adapter folder or 'none')")
    has_config = (folder / "adapter_config.json").is_file()
    weights = _first_file(folder, ADAPTER_WEIGHTS)
    if has_config and weights is not None:
        if _first_file(folder, VALUE_HEAD_FILES) is not None:
            return "valuehead"
        config = _adapter_config(folder)
        saved = [k for k in _weight_shapes(weights) if ".score." in k or k.startswith("score.")]
        if config.get("task_type") == "SEQ_CLS" or "score" in (config.get("modules_to_save") or []) or saved:
            return "seqcls"
    raise RewardModelError(
        f"{folder}: neither a LLaMA-Factory reward model (adapter_config.json + adapter weights + "
        "value_head.safetensors) nor a sequence-classification LoRA (adapter_config.json with task_type "
        "SEQ_CLS or a saved 'score' head)"
    )


def check_adapter_base(adapter: Path, base_config: dict[str, Any], kind: str) -> None:
    """Raise RewardModelError when ``adapter`` was made for a base of another shape.

    Compares the saved head's input size with ``hidden_size`` and the LoRA layer indices
    with ``num_hidden_layers`` (header reads only: nothing is loaded).
    """
    hidden = base_config.get("hidden_size")
    layers = base_config.get("num_hidden_layers")
    made_for = _adapter_config(adapter).get("base_model_name_or_path", "?")
    where = f"{adapter} was made for base model {made_for}"
    shapes: dict[str, list[int]] = {}
    for name in ADAPTER_WEIGHTS + VALUE_HEAD_FILES:
        if (adapter / name).is_file():
            shapes.update(_weight_shapes(adapter / name))
    for key, shape in shapes.items():
        is_head = key.startswith("v_head.summary.weight") or (
            (".score." in key or key.startswith("score.")) and (key.endswith("weight"))
        )
        if is_head and hidden is not None and shape and shape[-1] != hidden:
            raise RewardModelError(f"{where}: its head {key} takes {shape[-1]} features, this base has {hidden}")
        if layers is not None and ".layers." in key:
            index = key.split(".layers.", 1)[1].split(".", 1)[0]
            if index.isdigit() and int(index) >= layers:
                raise RewardModelError(f"{where}: it adapts layer {index}, this base has {layers} layers")


def _base_config(model: str) -> dict[str, Any]:
    path = Path(model) / "config.json"
    if not path.is_file():
        raise RewardModelError(f"{model}: no config.json (give a model folder or an embedded model name)")
    return json.loads(path.read_text(encoding="utf-8"))


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix.

    >>> _common_prefix([1, 2, 3], [1, 2, 4]), _common_prefix([1], [2]), _common_prefix([1, 2], [1, 2, 3])
    (2, 0, 2)
    """
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _sequential_batches(order: Sequence[int], sizes: Sequence[int], rows: int) -> list[list[int]]:
    """Group item indices (in ``order``) so that each group holds at most ``rows`` sequences.

    An item counts ``sizes[i]`` sequences (a pair 2, a pair whose texts were seen 0 or 1)
    and is never split across groups.
    """
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in order:
        if current and used + sizes[i] > rows:
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += sizes[i]
    if current:
        batches.append(current)
    return batches


@dataclass
class RewardModel:
    """A loaded reward model of either kind; see the module docstring for the exact rules."""

    kind: str
    base_model: str
    adapter: str | None
    tokenizer: Any
    network: Any  # the whole loaded model (LF's value-head wrapper or a seq-cls model)
    body: Any  # its decoder: input_ids, attention_mask -> last_hidden_state
    head: Any  # nn.Linear(hidden, 1): LF's v_head.summary or the seed's score
    template: Any = None  # LF Template (valuehead / none)
    cutoff_len: int = DEFAULT_CUTOFF
    device: str = "cpu"
    dtype: str = "fp32"  # the weights' dtype (a key of DTYPES)
    stats: dict[str, int] = field(default_factory=lambda: {"sequences": 0, "forwards": 0, "tokens": 0})

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        base_model: str | os.PathLike[str],
        adapter: str | os.PathLike[str] | None = None,
        *,
        template: str | None = None,
        cutoff_len: int = DEFAULT_CUTOFF,
        device: str = "cpu",
        dtype: str | None = None,
    ) -> RewardModel:
        """Load ``adapter`` (a folder of either kind, or ``none``) on ``base_model``.

        ``base_model``: a folder or an embedded model name; ``template``: the LF template the
        model was trained with (default: the embedded model's; needed for ``valuehead``);
        ``dtype``: fp32 / bf16 / fp16 (default: :func:`resolve_dtype`).
        """
        from lfkit.generate.prompts import offline_if_local, resolve_template
        from lfkit.models.embedded import resolve_model

        model = resolve_model(base_model)
        kind = detect_kind(adapter)
        dtype = resolve_dtype(dtype, device)
        base_config = _base_config(model)
        adapter_path = None if kind == "none" else str(adapter)
        if adapter_path is not None:
            check_adapter_base(Path(adapter_path), base_config, kind)
        offline_if_local(model)
        try:
            if kind == "seqcls":
                return cls._load_seqcls(model, adapter_path, cutoff_len=cutoff_len, device=device, dtype=dtype)
            try:
                template = resolve_template(model, template)
            except ValueError as exc:
                raise RewardModelError(str(exc)) from exc
            return cls._load_valuehead(model, adapter_path, template, cutoff_len=cutoff_len, device=device, dtype=dtype)
        except RuntimeError as exc:  # peft/torch: size mismatches of an adapter made for another base
            if adapter_path is None or ("size mismatch" not in str(exc) and "shape" not in str(exc)):
                raise
            first = str(exc).strip().splitlines()[0][:300]
            raise RewardModelError(f"{adapter_path} does not fit base model {model}: {first}") from exc

    @classmethod
    def _load_valuehead(
        cls, model: str, adapter: str | None, template: str, *, cutoff_len: int, device: str, dtype: str
    ) -> RewardModel:
        os.environ.setdefault("LLAMAFACTORY_VERBOSITY", "WARN")  # LF's INFO loader logs would bury the report
        import torch
        from llamafactory.data import get_template_and_fix_tokenizer
        from llamafactory.data.template import TEMPLATES
        from llamafactory.hparams import get_infer_args
        from llamafactory.model import load_model, load_tokenizer

        if template not in TEMPLATES:
            raise RewardModelError(f"LLaMA-Factory has no template {template!r}")
        args: dict[str, Any] = {
            "model_name_or_path": model,
            "template": template,
            "stage": "rm",
            "finetuning_type": "lora",
            "infer_backend": "huggingface",
            "trust_remote_code": True,
            "infer_dtype": DTYPES[dtype],  # LF's compute dtype (adapter merge, config flags)
        }
        if adapter is not None:
            args["adapter_name_or_path"] = adapter
        # the same steps as LF's HuggingfaceEngine.__init__ with stage rm
        model_args, data_args, finetuning_args, _ = get_infer_args(args)
        # trl's value-head wrapper refuses any device map that names the CPU (LF's "auto" included)
        model_args.device_map = None if device == "cpu" else {"": torch.device(device)}
        tokenizer = load_tokenizer(model_args)["tokenizer"]
        tokenizer.padding_side = "right"
        lf_template = get_template_and_fix_tokenizer(tokenizer, data_args)
        if adapter is None:
            torch.manual_seed(BARE_HEAD_SEED)  # the untrained head is random: make it repeatable
        network = load_model(tokenizer, model_args, finetuning_args, is_trainable=False, add_valuehead=True)
        # LF loads the checkpoint's own dtype ("auto": a bf16 checkpoint stays bf16 even on a CPU): cast, so
        # the scores are in the dtype the report names
        network.to(getattr(torch, DTYPES[dtype]))
        if adapter is not None and not hasattr(network, "v_head"):
            raise RewardModelError(f"{adapter}: LLaMA-Factory loaded no value head")
        body = network.pretrained_model.get_decoder()
        return cls(
            kind="valuehead" if adapter else "none",
            base_model=model,
            adapter=adapter,
            tokenizer=tokenizer,
            network=network,
            body=body,
            head=network.v_head.summary,
            template=lf_template,
            cutoff_len=cutoff_len,
            device=device,
            dtype=dtype,
        )

    @classmethod
    def _load_seqcls(cls, model: str, adapter: str | None, *, cutoff_len: int, device: str, dtype: str) -> RewardModel:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        # as the seed's evaluate.py: pad = eos when the tokenizer has none, right padding
        tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=True)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        net = AutoModelForSequenceClassification.from_pretrained(
            model, num_labels=1, dtype=getattr(torch, DTYPES[dtype]), trust_remote_code=True
        ).to(device)
        net.config.pad_token_id = tokenizer.pad_token_id
        net = PeftModel.from_pretrained(net, adapter).merge_and_unload()  # merged: same scores, faster
        net.eval().requires_grad_(False)
        return cls(
            kind="seqcls",
            base_model=model,
            adapter=adapter,
            tokenizer=tokenizer,
            network=net,
            body=net.get_decoder() if hasattr(net, "get_decoder") else net.base_model,
            head=net.score,
            cutoff_len=cutoff_len,
            device=device,
            dtype=dtype,
        )

    # ----------------------------------------------------------------- encoding
    def encode_pair(self, messages: Messages, chosen: str, rejected: str) -> tuple[list[int], list[int]]:
        """Token ids of (prompt + chosen, prompt + rejected), as training encoded the row.

        ``messages``: the prompt turns ([system?] user ...), without the answer.
        """
        if self.kind == "seqcls":
            return self._encode_chat(messages, chosen), self._encode_chat(messages, rejected)
        from llamafactory.data.processor.processor_utils import infer_seqlen

        # LF's PairwiseDatasetProcessor._encode_data_example (text only)
        system, prompt = _split_system(messages)
        tok, tpl = self.tokenizer, self.template
        prompt_ids, chosen_ids = tpl.encode_oneturn(tok, [*prompt, {"role": "assistant", "content": chosen}], system)
        _, rejected_ids = tpl.encode_oneturn(tok, [*prompt, {"role": "assistant", "content": rejected}], system)
        if tpl.efficient_eos:
            chosen_ids = [*chosen_ids, tok.eos_token_id]
            rejected_ids = [*rejected_ids, tok.eos_token_id]
        source_len, target_len = infer_seqlen(len(prompt_ids), max(len(chosen_ids), len(rejected_ids)), self.cutoff_len)
        prompt_ids = prompt_ids[:source_len]
        return prompt_ids + chosen_ids[:target_len], prompt_ids + rejected_ids[:target_len]

    def encode(self, messages: Messages, response: str) -> list[int]:
        """Token ids of one prompt + response (a pair with itself: the same truncation rule)."""
        return self.encode_pair(messages, response, response)[0]

    def _encode_chat(self, messages: Messages, response: str) -> list[int]:
        chat = [*messages, {"role": "assistant", "content": response}]
        text = self.tokenizer.apply_chat_template(chat, tokenize=False)
        return self.tokenizer(text, truncation=True, max_length=self.cutoff_len)["input_ids"]

    # ------------------------------------------------------------------ scoring
    def _forward(self, seqs: Sequence[Sequence[int]]) -> list[float]:
        import torch

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, : len(s)] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        with torch.inference_mode():
            hidden = self.body(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
            if self.kind == "seqcls":
                # transformers' rule: the rightmost token that is not the pad token
                real = (ids != pad).long() * mask * torch.arange(width, device=ids.device)
                last = real.argmax(-1)
            else:
                last = mask.sum(-1) - 1  # LF's rule: the last non-pad position
            picked = hidden[torch.arange(len(seqs), device=ids.device), last]
            values = self.head(picked.to(self.head.weight.dtype)).squeeze(-1)
        self.stats["forwards"] += 1
        self.stats["sequences"] += len(seqs)
        self.stats["tokens"] += len(seqs) * width
        return values.float().tolist()

    def _last_index(self, seq: Sequence[int]) -> int:
        """Position whose hidden state is scored (see _forward's two rules)."""
        if self.kind == "seqcls":
            pad = self.tokenizer.pad_token_id
            for i in range(len(seq) - 1, -1, -1):
                if seq[i] != pad:
                    return i
            return 0
        return len(seq) - 1

    def _forward_shared(self, prefix_len: int, seqs: Sequence[Sequence[int]]) -> list[float]:
        """Scores of ``seqs`` that share their first ``prefix_len`` tokens: the prefix runs once
        (its key/value cache copied to every sequence), then every suffix in one forward."""
        import torch

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        p, m = prefix_len, len(seqs)
        width = max(len(s) for s in seqs) - p
        ids = torch.full((m, width), pad, dtype=torch.long)
        mask = torch.zeros((m, p + width), dtype=torch.long)
        mask[:, :p] = 1
        for i, s in enumerate(seqs):
            ids[i, : len(s) - p] = torch.tensor(s[p:], dtype=torch.long)
            mask[i, p : len(s)] = 1
        last = torch.tensor([self._last_index(s) - p for s in seqs])
        ids, mask, last = ids.to(self.device), mask.to(self.device), last.to(self.device)
        with torch.inference_mode():
            head = torch.tensor([list(seqs[0][:p])], dtype=torch.long, device=self.device)
            cache = self.body(input_ids=head, use_cache=True).past_key_values
            cache.batch_repeat_interleave(m)
            positions = torch.arange(p, p + width, device=self.device)
            hidden = self.body(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions.unsqueeze(0).expand(m, width),
                past_key_values=cache,
                cache_position=positions,
                use_cache=True,
            ).last_hidden_state
            picked = hidden[torch.arange(m, device=ids.device), last]
            values = self.head(picked.to(self.head.weight.dtype)).squeeze(-1)
        self.stats["forwards"] += 2
        self.stats["sequences"] += m
        self.stats["tokens"] += p + m * width
        return values.float().tolist()

    def _families(self, seqs: Sequence[tuple[int, ...]], rows: int) -> list[tuple[int, list[tuple[int, ...]]]]:
        """(shared prefix length, members): sequences in lexicographic order, cut into runs of at most
        ``rows`` that share at least MIN_SHARED_PREFIX tokens; each member keeps its scored token
        and one token after the prefix. A run of one has prefix length 0 (a plain forward)."""
        families: list[tuple[int, list[tuple[int, ...]]]] = []
        members: list[tuple[int, ...]] = []
        shared = 0
        for s in sorted(seqs):
            limit = min(len(s) - 1, self._last_index(s))
            if members:
                # sorted order: the prefix the run shares is the one its first member shares with s
                common = min(shared, _common_prefix(members[0], s), limit)
                if len(members) < rows and common >= MIN_SHARED_PREFIX:
                    members.append(s)
                    shared = common
                    continue
                families.append((shared if len(members) > 1 else 0, members))
            members, shared = [s], limit
        if members:
            families.append((shared if len(members) > 1 else 0, members))
        return families

    def score_groups(
        self,
        groups: Sequence[Sequence[Sequence[int]]],
        batch_size: int = 16,
        *,
        progress: Callable[[int], None] | None = None,
        dedup: bool = True,
        share_prefix: bool = True,
    ) -> list[list[float]]:
        """Scores of token-id sequences given in groups (a pair = a group of two).

        Each distinct sequence runs once (``dedup``). With ``share_prefix`` sequences are taken in
        lexicographic order, in runs of up to ``batch_size * largest group`` that share a prefix
        of at least MIN_SHARED_PREFIX tokens (the prompt: a pair's two answers, the pairs of one
        question, and the schema part of prompts on one database): the prefix runs once and the
        suffixes in one forward. Otherwise groups are sorted by their longest sequence and packed
        ``batch_size`` groups per forward, a group (a pair's chosen and rejected) never split.
        ``progress(k)`` is called as groups complete.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        keys = [[tuple(s) for s in g] for g in groups]
        rows = batch_size * max((len(g) for g in groups), default=1)
        order = sorted(range(len(groups)), key=lambda i: -max((len(s) for s in keys[i]), default=0))
        seen: set[tuple[int, ...]] = set()
        fresh: list[list[tuple[int, ...]]] = [[] for _ in groups]
        for i in order:  # which sequences each group brings to its forward
            for k in keys[i]:
                if not dedup or k not in seen:
                    seen.add(k)
                    fresh[i].append(k)
        scores: dict[tuple[int, ...], float] = {}
        if share_prefix:
            waiting = {i: len(set(keys[i])) for i in range(len(groups))}
            owners: dict[tuple[int, ...], list[int]] = {}
            for i in range(len(groups)):
                for k in set(keys[i]):
                    owners.setdefault(k, []).append(i)
            for prefix, members in self._families(list(dict.fromkeys(k for f in fresh for k in f)), rows):
                values = self._forward_shared(prefix, members) if prefix else self._forward(members)
                scores.update(zip(members, values, strict=True))
                done = 0
                for k in members:
                    for i in owners[k]:
                        waiting[i] -= 1
                        done += waiting[i] == 0
                if progress is not None and done:
                    progress(done)
            return [[scores[k] for k in g] for g in keys]
        for batch in _sequential_batches(order, [len(f) for f in fresh], rows):
            seqs = [k for i in batch for k in fresh[i]]
            if seqs:
                scores.update(zip(seqs, self._forward(seqs), strict=True))
            if progress is not None:
                progress(len(batch))
        return [[scores[k] for k in g] for g in keys]

    def score_pairs(
        self,
        pairs: Sequence[tuple[Messages, str, str]],
        batch_size: int = 16,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> list[tuple[float, float]]:
        """(chosen score, rejected score) per (prompt messages, chosen, rejected)."""
        groups = [self.encode_pair(m, c, r) for m, c, r in pairs]
        return [(a, b) for a, b in self.score_groups(groups, batch_size, progress=progress)]

    def score(
        self,
        items: Sequence[tuple[Messages, str]],
        batch_size: int = 16,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> list[float]:
        """One score per (prompt messages, response)."""
        groups = [[self.encode(m, r)] for m, r in items]
        return [g[0] for g in self.score_groups(groups, batch_size, progress=progress)]

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "base_model": self.base_model,
            "adapter": self.adapter,
            "cutoff": self.cutoff_len,
            "dtype": self.dtype,
        }

    def close(self) -> None:
        self.network = self.body = self.head = None


def _split_system(messages: Messages) -> tuple[str | None, Messages]:
    if messages and messages[0]["role"] == "system":
        return messages[0]["content"], [dict(m) for m in messages[1:]]
    return None, [dict(m) for m in messages]

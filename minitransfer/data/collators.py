"""Collators: a list of one-example feature dicts in, a dict of NumPy arrays out (transformers' names).

    collate = DataCollatorWithPadding(tokenizer)        # pads to the batch's longest row
    batch = collate([tokenizer(t) for t in texts])      # input_ids, attention_mask, ... (batch, seq) int64

As in transformers, `label` and `label_ids` come out as `labels`; return_tensors is "np" (the only kind).
DataCollatorWithPadding, DataCollatorForTokenClassification and DataCollatorForLanguageModeling pad with
`tokenizer.pad` (on the tokenizer's padding_side); the language-modeling one masks as BERT (masking.py's
MLMMasker); default_data_collator only stacks.

DataCollatorWithFlattening puts a whole batch into one row with no padding at all: input_ids (1, T), the
sequences back to back, position_ids restarting at 0 for each, and optionally their bounds (cu_seq_lens_q).
minitransfer's models read that form directly (nn/packing.py) — on the CPU, where transformers needs
FlashAttention-2 on a GPU for it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from minitransfer import seeding
from minitransfer.data.batching import LABEL_PAD
from minitransfer.data.masking import MLMMasker
from minitransfer.errors import InputError

TOKEN_KEYS = ("input_ids", "token_type_ids")


def _check_numpy(return_tensors: Any) -> None:
    if return_tensors != "np":
        raise InputError(f"return_tensors={return_tensors!r}: minitransfer's collators return NumPy arrays ('np') "
                         "only, and its models take them")


def _check_features(features: Any) -> None:
    if not isinstance(features, (list, tuple)) or not features:
        raise InputError("a collator takes a non-empty list of examples (one feature dict each)")


def _rename_labels(batch: dict) -> dict:
    """transformers' convention: a `label` (one per example) or `label_ids` feature is the model's `labels`."""
    for key in ("label", "label_ids"):
        if key in batch:
            batch["labels"] = batch.pop(key)
    return batch


def default_data_collator(features: list[Mapping[str, Any]], return_tensors: str = "np") -> dict[str, np.ndarray]:
    """Stack equal-shaped features into arrays, as transformers' default_data_collator (no padding).

    `label` (int labels → int64, float → float32) and `label_ids` become `labels`; keys whose value is None
    or a str in the first example are dropped. Returns {key: (batch, ...) array}.
    """
    _check_numpy(return_tensors)
    _check_features(features)
    if not isinstance(features[0], Mapping):
        features = [vars(f) for f in features]
    first = features[0]
    batch: dict[str, np.ndarray] = {}
    if first.get("label") is not None:
        label = first["label"].item() if isinstance(first["label"], np.ndarray) else first["label"]
        dtype = np.int64 if isinstance(label, (int, np.integer)) else np.float32
        batch["labels"] = np.array([f["label"] for f in features], dtype=dtype)
    elif first.get("label_ids") is not None:
        if isinstance(first["label_ids"], np.ndarray):
            batch["labels"] = np.stack([f["label_ids"] for f in features])
        else:
            dtype = np.int64 if isinstance(first["label_ids"][0], (int, np.integer)) else np.float32
            batch["labels"] = np.array([f["label_ids"] for f in features], dtype=dtype)
    for key, value in first.items():
        if key in ("label", "label_ids") or value is None or isinstance(value, str):
            continue
        try:
            batch[key] = np.stack([np.asarray(f[key]) for f in features])
        except ValueError as e:
            raise InputError(f"the examples' {key!r} values differ in shape ({e}); default_data_collator only "
                             "stacks: pad them first, or use DataCollatorWithPadding") from None
    return batch


class DataCollatorWithPadding:
    """Pad a batch of tokenized features to one length with `tokenizer.pad`, as transformers' collator.

    padding: True / "longest" (to the batch's longest row), "max_length" (to max_length), False.
    pad_to_multiple_of: round the padded length up. Other keys pass through, stacked; `label`/`label_ids`
    become `labels`. Returns input_ids, attention_mask (and token_type_ids when given) as (batch, seq) int64.
    """

    def __init__(self, tokenizer, padding: bool | str = True, max_length: int | None = None,
                 pad_to_multiple_of: int | None = None, return_tensors: str = "np"):
        _check_numpy(return_tensors)
        self.tokenizer, self.padding, self.max_length = tokenizer, padding, max_length
        self.pad_to_multiple_of, self.return_tensors = pad_to_multiple_of, return_tensors

    def __call__(self, features: list[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        _check_features(features)
        batch = self.tokenizer.pad(features, padding=self.padding, max_length=self.max_length,
                                   pad_to_multiple_of=self.pad_to_multiple_of, return_tensors=self.return_tensors)
        return _rename_labels(batch)


class DataCollatorForTokenClassification:
    """Pad features and their per-token labels, as transformers' DataCollatorForTokenClassification.

    The labels (`labels` or `label`: one per token) are padded with label_pad_token_id (-100, ignored by the
    loss) on the tokenizer's padding_side, to the padded length of input_ids. Returns (batch, seq) int64 arrays,
    the labels as `labels`.
    """

    def __init__(self, tokenizer, padding: bool | str = True, max_length: int | None = None,
                 pad_to_multiple_of: int | None = None, label_pad_token_id: int = LABEL_PAD,
                 return_tensors: str = "np"):
        _check_numpy(return_tensors)
        self.tokenizer, self.padding, self.max_length = tokenizer, padding, max_length
        self.pad_to_multiple_of, self.label_pad_token_id = pad_to_multiple_of, label_pad_token_id
        self.return_tensors = return_tensors

    def __call__(self, features: list[Mapping[str, Any]], return_tensors: str | None = None) -> dict[str, np.ndarray]:
        _check_numpy(return_tensors or self.return_tensors)
        _check_features(features)
        label_name = next((k for k in ("labels", "label", "label_ids") if k in features[0]), None)
        inputs = [{k: v for k, v in f.items() if k != label_name} for f in features]
        batch = self.tokenizer.pad(inputs, padding=self.padding, max_length=self.max_length,
                                   pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="np")
        if label_name is None:
            return batch
        length = batch["input_ids"].shape[1]
        labels = np.full((len(features), length), self.label_pad_token_id, dtype=np.int64)
        for row, feature in zip(labels, features):
            values = np.asarray(feature[label_name], dtype=np.int64).reshape(-1)
            if len(values) > length:
                raise InputError(f"an example has {len(values)} labels but its batch is {length} tokens long: "
                                 "one label per token")
            if self.tokenizer.padding_side == "right":
                row[:len(values)] = values
            else:
                row[length - len(values):] = values
        batch["labels"] = labels
        return batch


class DataCollatorForLanguageModeling:
    """Pad and mask a batch for masked-LM training, as transformers' DataCollatorForLanguageModeling.

    features: feature dicts (padded with tokenizer.pad) or bare lists of token ids.
    mlm=True: each token other than special tokens and padding (and positions a `special_tokens_mask` feature
    marks) is selected with mlm_probability; a selected token becomes [MASK] with mask_replace_prob, a random
    token with random_replace_prob, else stays (BERT's 80/10/10; masking.py's MLMMasker). labels: the
    original id at selected positions, -100 elsewhere. mlm=False: labels = input_ids with padding -100.
    seed: a generator of its own, drawn from call after call; None draws from minitransfer's seeded generator
    (minitransfer.manual_seed). Returns input_ids, labels (and attention_mask, ... given dicts): (batch, seq).
    """

    def __init__(self, tokenizer, mlm: bool = True, mlm_probability: float = 0.15, mask_replace_prob: float = 0.8,
                 random_replace_prob: float = 0.1, pad_to_multiple_of: int | None = None, return_tensors: str = "np",
                 seed: int | None = None):
        _check_numpy(return_tensors)
        self.tokenizer, self.mlm, self.mlm_probability = tokenizer, mlm, mlm_probability
        self.mask_replace_prob, self.random_replace_prob = mask_replace_prob, random_replace_prob
        self.pad_to_multiple_of, self.return_tensors, self.seed = pad_to_multiple_of, return_tensors, seed
        self.masker = MLMMasker(len(tokenizer), tokenizer.mask_token_id, tokenizer.all_special_ids,
                                tokenizer.pad_token_id, mlm_probability, mask_replace_prob,
                                random_replace_prob) if mlm else None
        self.generator = None if seed is None else np.random.default_rng(seed)

    def __call__(self, features: list, return_tensors: str | None = None) -> dict[str, np.ndarray]:
        _check_numpy(return_tensors or self.return_tensors)
        _check_features(features)
        if isinstance(features[0], Mapping):
            batch = self.tokenizer.pad(features, pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="np")
        else:  # bare id lists: only input_ids, as transformers
            batch = self.tokenizer.pad({"input_ids": list(features)}, pad_to_multiple_of=self.pad_to_multiple_of,
                                       return_attention_mask=False, return_tensors="np")
        special = batch.pop("special_tokens_mask", None)
        batch.pop("offset_mapping", None)  # transformers drops it too (it serves whole-word masking there)
        input_ids = batch["input_ids"]
        if not self.mlm:
            labels = input_ids.copy()
            labels[labels == self.tokenizer.pad_token_id] = LABEL_PAD
            batch["labels"] = labels
            return batch
        maskable = batch["attention_mask"].astype(bool) if "attention_mask" in batch else None
        if special is not None:
            maskable = ~special.astype(bool) if maskable is None else maskable & ~special.astype(bool)
        rng = self.generator if self.generator is not None else seeding.numpy_rng()
        batch["input_ids"], batch["labels"] = self.masker.mask(input_ids, maskable, rng)
        return batch


class DataCollatorWithFlattening:
    """Concatenate a batch into one flattened sequence (1, T), as transformers' DataCollatorWithFlattening.

    Returns input_ids, position_ids (if return_position_ids), token_type_ids (when the features have them; a BERT
    sentence pair needs them), cu_seq_lens_q/k (int32) and max_length_q/k (ints) if return_flash_attn_kwargs,
    seq_idx if return_seq_idx. Labels: per-token labels (a list as long as input_ids) are concatenated with
    `separator_id` at each sequence's first token, as transformers does; one label per example (`label` or
    `labels`, sequence classification) become labels (n_seqs,). Unlike transformers, features without labels get
    no labels: copying input_ids is a causal-LM convention, meaningless for an encoder.
    """

    def __init__(self, return_position_ids: bool = True, separator_id: int = -100,
                 return_flash_attn_kwargs: bool = False, return_seq_idx: bool = False, position_ids_start: int = 0,
                 return_tensors: str = "np"):
        self.return_position_ids, self.separator_id = return_position_ids, separator_id
        self.return_flash_attn_kwargs, self.return_seq_idx = return_flash_attn_kwargs, return_seq_idx
        self.position_ids_start, self.return_tensors = position_ids_start, return_tensors

    def __call__(self, features: list[dict], return_tensors: str | None = None, separator_id: int | None = None):
        _check_numpy(return_tensors or self.return_tensors)
        _check_features(features)
        separator_id = self.separator_id if separator_id is None else separator_id
        lengths = [len(f["input_ids"]) for f in features]
        if min(lengths) == 0:
            raise InputError(f"example {lengths.index(0)} has no token: drop empty examples before batching")
        batch = {key: np.concatenate([np.asarray(f[key], dtype=np.int64) for f in features])[None]
                 for key in TOKEN_KEYS if key in features[0]}
        label_key = "labels" if "labels" in features[0] else ("label" if "label" in features[0] else None)
        if label_key is not None:
            values = [f[label_key] for f in features]
            if np.ndim(values[0]) == 0:  # one label per sequence
                batch["labels"] = np.asarray(values)
            else:
                batch["labels"] = np.concatenate([np.r_[separator_id, np.asarray(v, dtype=np.int64)[1:]]
                                                  for v in values])[None]
        if self.return_position_ids:
            batch["position_ids"] = np.concatenate([np.arange(n) + self.position_ids_start for n in lengths])[None]
        if self.return_seq_idx:
            batch["seq_idx"] = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)[None]
        if self.return_flash_attn_kwargs:
            bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
            batch["cu_seq_lens_q"] = batch["cu_seq_lens_k"] = bounds
            batch["max_length_q"] = batch["max_length_k"] = max(lengths)
        return batch

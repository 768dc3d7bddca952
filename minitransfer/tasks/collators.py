"""Collators: a list of one-example feature dicts in, a dict of NumPy arrays out (transformers' names).

DataCollatorWithFlattening puts a whole batch into one row with no padding at all: input_ids (1, T), the
sequences back to back, position_ids restarting at 0 for each, and optionally their bounds (cu_seq_lens_q).
minitransfer's models read that form directly (nn/packing.py) — on the CPU, where transformers needs
FlashAttention-2 on a GPU for it.
"""
from __future__ import annotations

import numpy as np

from minitransfer.errors import InputError

TOKEN_KEYS = ("input_ids", "token_type_ids")


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
        if (return_tensors or self.return_tensors) != "np":
            raise InputError(f"return_tensors={return_tensors or self.return_tensors!r}: minitransfer returns NumPy "
                             "arrays ('np') only")
        separator_id = self.separator_id if separator_id is None else separator_id
        if not features:
            raise InputError("cannot make a batch of zero examples")
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

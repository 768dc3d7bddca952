"""The model-call boundary: input_ids / attention_mask / token_type_ids / position_ids and labels into checked
int arrays on the model's device, and a flattened batch's sequence bounds from transformers' keyword names."""
from __future__ import annotations

import numpy as np

from minitransfer import backend
from minitransfer.autograd import Tensor
from minitransfer.backend import get_array_module, to_numpy
from minitransfer.errors import InputError
from minitransfer.models.config import ModelConfig

FLATTENED_KEYS = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k", "seq_idx")


def _array(x, name: str, like_device: str):
    if isinstance(x, Tensor):
        x = x.data
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if not hasattr(x, "dtype"):
        raise InputError(f"{name} must be an integer array or Tensor, got {type(x).__name__}")
    if x.dtype.kind not in "iub":
        raise InputError(f"{name} must hold integers, got dtype {x.dtype}")
    if backend.device_of(x) != like_device:
        x = backend.to_device(x, like_device)
    return x


def _like_ids(x, name: str, ids, device: str, limit: int | None = None, why: str = ""):
    """An array shaped as input_ids, with values in [0, limit) when a limit is given; None stays None."""
    if x is None:
        return None
    x = _array(x, name, device)
    if x.shape != ids.shape:
        raise InputError(f"{name} has shape {x.shape} but input_ids has {ids.shape}")
    if limit is not None and (int(x.min()) < 0 or int(x.max()) >= limit):
        raise InputError(f"{name} must lie in [0, {limit}){why}")
    return x


def check_inputs(config: ModelConfig, device: str, input_ids, attention_mask=None, token_type_ids=None,
                 position_ids=None):
    """Validate and normalize a model call's inputs (token_type_ids: BERT's; DistilBERT's body drops them).

    input_ids: (batch, seq) ints; attention_mask, token_type_ids, position_ids: same shape or None.
    Returns (input_ids, attention_mask, token_type_ids, position_ids) as arrays on `device` (or None).
    """
    if input_ids is None:
        raise InputError("input_ids is required")
    ids = _array(input_ids, "input_ids", device)
    if ids.dtype.kind == "b":
        raise InputError("input_ids must hold integer token ids, got booleans: was an attention_mask passed as "
                         "input_ids?")
    if ids.ndim == 1:
        raise InputError(f"input_ids has shape {ids.shape}: pass a batch of shape (batch, seq), e.g. ids[None]")
    if ids.ndim != 2 or ids.shape[1] == 0 or ids.shape[0] == 0:
        raise InputError(f"input_ids must have shape (batch, seq) with batch, seq > 0, got {ids.shape}")
    max_positions = config.max_position_embeddings
    if ids.shape[1] > max_positions and position_ids is None:
        raise InputError(
            f"sequence of {ids.shape[1]} tokens is longer than the model's max_position_embeddings ({max_positions}): "
            f"tokenize with truncation=True, max_length={max_positions} (or split the text into windows)"
        )
    if int(ids.min()) < 0 or int(ids.max()) >= config.vocab_size:
        raise InputError(f"input_ids has ids outside the vocabulary [0, {config.vocab_size}): "
                         "was it made by this model's tokenizer?")
    return (ids, _like_ids(attention_mask, "attention_mask", ids, device),
            _like_ids(token_type_ids, "token_type_ids", ids, device, getattr(config, "type_vocab_size", None)),
            _like_ids(position_ids, "position_ids", ids, device, max_positions,
                      " (the model's max_position_embeddings): a sequence is longer than the model can read; "
                      "truncate or split it"))


def flattened_bounds(kwargs: dict):
    """The sequence bounds of a flattened batch, from transformers' keyword names (DataCollatorWithFlattening's
    `return_flash_attn_kwargs=True`): cu_seq_lens_q, or None. Self-attention has one set of bounds, so
    cu_seq_lens_k must equal it; the max lengths and seq_idx follow from the bounds and are not needed."""
    unknown = sorted(set(kwargs) - set(FLATTENED_KEYS))
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {unknown}")
    q, k = kwargs.get("cu_seq_lens_q"), kwargs.get("cu_seq_lens_k")
    if q is None:
        q, k = k, None
    if q is not None and k is not None:
        if to_numpy(q).tolist() != to_numpy(k).tolist():
            raise InputError("cu_seq_lens_k differs from cu_seq_lens_q: self-attention needs one set of bounds")
    return q


def label_array(labels, like: Tensor):
    """labels as an array on `like`'s device: a Tensor's data, or a list / tuple / array (as a user passes them)."""
    data = labels.data if isinstance(labels, Tensor) else labels
    return get_array_module(like.data).asarray(data)

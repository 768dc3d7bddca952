"""The model-call boundary: turn input_ids / attention_mask / token_type_ids into checked int arrays."""
from __future__ import annotations

import numpy as np

from minitransfer import backend
from minitransfer.autograd import Tensor
from minitransfer.errors import InputError


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


def check_inputs(input_ids, attention_mask, token_type_ids, *, vocab_size: int, max_positions: int,
                 type_vocab_size: int | None, device: str, position_ids=None):
    """Validate and normalize model inputs.

    input_ids: (batch, seq) ints; attention_mask, token_type_ids, position_ids: same shape or None.
    Returns (input_ids, attention_mask or None, token_type_ids or None, position_ids or None) as arrays on
    `device`.
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
    if ids.shape[1] > max_positions and position_ids is None:
        raise InputError(
            f"sequence of {ids.shape[1]} tokens is longer than the model's max_position_embeddings ({max_positions}): "
            f"tokenize with truncation=True, max_length={max_positions} (or split the text into windows)"
        )
    if int(ids.min()) < 0 or int(ids.max()) >= vocab_size:
        raise InputError(f"input_ids has ids outside the vocabulary [0, {vocab_size}): "
                         "was it made by this model's tokenizer?")
    mask = None
    if attention_mask is not None:
        mask = _array(attention_mask, "attention_mask", device)
        if mask.shape != ids.shape:
            raise InputError(f"attention_mask has shape {mask.shape} but input_ids has {ids.shape}")
    types = None
    if token_type_ids is not None:
        if type_vocab_size is None:
            raise InputError("this model has no token types (DistilBERT): do not pass token_type_ids")
        types = _array(token_type_ids, "token_type_ids", device)
        if types.shape != ids.shape:
            raise InputError(f"token_type_ids has shape {types.shape} but input_ids has {ids.shape}")
        if int(types.min()) < 0 or int(types.max()) >= type_vocab_size:
            raise InputError(f"token_type_ids must lie in [0, {type_vocab_size})")
    positions = None
    if position_ids is not None:
        positions = _array(position_ids, "position_ids", device)
        if positions.shape != ids.shape:
            raise InputError(f"position_ids has shape {positions.shape} but input_ids has {ids.shape}")
        if int(positions.min()) < 0 or int(positions.max()) >= max_positions:
            raise InputError(f"position_ids must lie in [0, {max_positions}) (the model's max_position_embeddings): "
                             "a sequence is longer than the model can read; truncate or split it")
    return ids, mask, types, positions

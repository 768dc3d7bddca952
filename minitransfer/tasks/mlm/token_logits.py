"""The masked-LM head applied only where it is needed: logits at chosen positions, for chosen words.

Prompting and the bias probe read a few words' logits at one [MASK] per row; the decoder (hidden → 30,522
words) costs as much as MiniLM's whole encoder per token, so it runs on those positions and words only.
"""
from __future__ import annotations

from minitransfer import ops
from minitransfer.autograd import Tensor
from minitransfer.backend import get_array_module
from minitransfer.data.batching import SEQUENCE_KEYS
from minitransfer.errors import InputError


def head_transform(model, hidden: Tensor) -> Tensor:
    """The MLM head before the decoder (dense → GELU → LayerNorm); hidden (..., hidden) → (..., hidden)."""
    if model.model_type == "bert":
        return model.cls.predictions.transform(hidden)
    if model.model_type == "distilbert":
        return model.vocab_layer_norm(model.activation(model.vocab_transform(hidden)))
    raise InputError(f"no masked-LM head for model_type {model.model_type!r}")


def decoder_of(model):
    """The Linear mapping the transformed hidden state to vocabulary logits (weight tied to the embeddings)."""
    return model.cls.predictions.decoder if model.model_type == "bert" else model.vocab_projector


def token_logits_at(model, batch: dict, rows, cols, token_ids=None) -> Tensor:
    """MLM logits at positions (rows[i], cols[i]): (M, vocab), or (M, len(token_ids)) for those tokens only.

    Equal to model(**batch).logits[rows, cols][:, token_ids] without computing the other positions' logits.
    """
    body = getattr(model, model.base_model_prefix)
    hidden, packed, _ = body.encode(*(batch.get(k) for k in SEQUENCE_KEYS))
    at = (rows, cols) if packed is None else packed.index_of(rows, cols)  # packed: rows of real tokens (T, H)
    picked = head_transform(model, ops.getitem(hidden, at))
    decoder = decoder_of(model)
    if token_ids is None:
        return decoder(picked)
    token_ids = get_array_module(decoder.weight.data).asarray(token_ids)
    return ops.linear(picked, ops.getitem(decoder.weight, token_ids), ops.getitem(decoder.bias, token_ids))

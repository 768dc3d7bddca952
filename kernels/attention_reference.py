"""Scaled dot-product attention in NumPy or CuPy: the reference of attention_cpu.py and attention_varlen_cpu.py.

    P = softmax(q k^T / sqrt(d)),  padded keys at probability exactly 0 (their score is the dtype's lowest)
    out = (P * drop) v,            drop = dropout_rng.py's mask (1 / (1 - p) kept, 0 dropped), or none
    backward: dP = dout v^T * drop,  dS = P * (dP - rowsum(dP * P)) / sqrt(d),  dq = dS k,  dk = dS^T q,
              dv = (P * drop)^T dout

Over any leading axes: (batch, heads, seq, d) for padded batches, (heads, L, d) per sequence of a packed one.
Unlike the kernels it builds and keeps P (seq x seq per head): the ops' ReferenceAttention and
ReferenceVarlenAttention (minitransfer/ops/) wrap these; `probabilities` is also what output_attentions returns.
"""
from __future__ import annotations

import math

from minitransfer.backend import get_array_module


def probabilities(q, k, key_padding_mask=None):
    """softmax(q k^T / sqrt(d)) over the last two axes of q, k (..., seq, d); key_padding_mask (batch, seq), 1 for
    real keys and 0 for padding, gives padded keys probability 0 (as transformers). Returns (..., seq, seq)."""
    xp = get_array_module(q)
    scores = q @ xp.swapaxes(k, -1, -2)
    scores *= q.dtype.type(1.0 / math.sqrt(q.shape[-1]))
    if key_padding_mask is not None:
        scores = xp.where((xp.asarray(key_padding_mask) == 0)[:, None, None, :], xp.finfo(q.dtype).min, scores)
    scores -= scores.max(axis=-1, keepdims=True)
    xp.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)
    return scores


def backward(gout, q, k, v, probs, drop_mask=None, without_keys=None):
    """(dq, dk, dv) of out = (probs * drop_mask) @ v with probs = probabilities(q, k, ...), given dout = gout.

    without_keys: a boolean (batch,) of rows with no real key, whose constant scores send nothing to q or k."""
    xp = get_array_module(gout)
    dropped = probs * drop_mask if drop_mask is not None else probs
    gv = xp.swapaxes(dropped, -1, -2) @ gout
    gp = gout @ xp.swapaxes(v, -1, -2)
    if drop_mask is not None:
        gp *= drop_mask
    gs = probs * (gp - (gp * probs).sum(axis=-1, keepdims=True))
    gs *= gs.dtype.type(1.0 / math.sqrt(q.shape[-1]))
    if without_keys is not None:
        gs[without_keys] = 0
    return gs @ k, xp.swapaxes(gs, -1, -2) @ q, gv

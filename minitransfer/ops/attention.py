"""Scaled dot-product attention: the one entry point the models call.

`attention(q, k, v, key_padding_mask, dropout_p, training)` picks an implementation; the plain NumPy/CuPy
composition below (`ReferenceAttention`) is always available and is what the fused kernels are tested
against. Shapes: q, k, v (batch, heads, seq, head_dim); key_padding_mask (batch, seq) with 1 for real
tokens and 0 for padding; output (batch, heads, seq, head_dim).

On NumPy float32/float64 arrays, when numba is installed, the fused CPU kernel runs
(`FusedAttention`, kernels/attention_cpu.py): it never builds the (seq x seq) probabilities for
backward. Switches:
    MINITRANSFER_ATTENTION=reference   always use ReferenceAttention (to compare, or to rule the kernel out)
    NUMBA_DISABLE_JIT=1                run the kernel as plain Python, to step into it with a debugger
"""
from __future__ import annotations

import importlib.util
import math
import os

import numpy as np

from minitransfer import random
from minitransfer.autograd import Function, Tensor, as_tensor
from minitransfer.backend import get_array_module
from minitransfer.errors import ConfigError
from minitransfer.ops.fused_attention import FusedAttention


class ReferenceAttention(Function):
    """softmax(q k^T / sqrt(d) + mask) (dropout) v, keeping the probabilities for backward."""

    def __init__(self, key_padding_mask=None, dropout_p: float = 0.0):
        self.key_padding_mask = key_padding_mask
        self.dropout_p = dropout_p

    def forward(self, q, k, v):
        xp = get_array_module(q)
        self.scale = 1.0 / math.sqrt(q.shape[-1])
        scores = q @ xp.swapaxes(k, -1, -2)
        scores *= q.dtype.type(self.scale)
        self.no_real_key = None
        if self.key_padding_mask is not None:
            # Padded keys get the dtype's lowest value, so their probability is exactly 0 (as transformers).
            masked = (self.key_padding_mask == 0)[:, None, None, :]
            scores = xp.where(masked, xp.finfo(q.dtype).min, scores)
            # A row with no real key gets constant scores (uniform probabilities): no gradient to q or k.
            self.no_real_key = ~xp.asarray(self.key_padding_mask != 0).any(axis=-1)
        scores -= scores.max(axis=-1, keepdims=True)
        xp.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        probs = scores
        self.drop_mask = None
        if self.dropout_p > 0:
            keep = random.rng(xp).random(probs.shape, dtype=probs.dtype) >= self.dropout_p
            self.drop_mask = keep * probs.dtype.type(1.0 / (1.0 - self.dropout_p))
            dropped = probs * self.drop_mask
        else:
            dropped = probs
        self.q, self.k, self.v, self.probs = q, k, v, probs
        return dropped @ v

    def backward(self, gout):
        xp = get_array_module(gout)
        probs, drop = self.probs, self.drop_mask
        dropped = probs * drop if drop is not None else probs
        gv = xp.swapaxes(dropped, -1, -2) @ gout if self.needs_input_grad[2] else None
        gp = gout @ xp.swapaxes(self.v, -1, -2)
        if drop is not None:
            gp *= drop
        gs = probs * (gp - (gp * probs).sum(axis=-1, keepdims=True))
        gs *= gs.dtype.type(self.scale)
        if self.no_real_key is not None:
            gs[self.no_real_key] = 0
        gq = gs @ self.k if self.needs_input_grad[0] else None
        gk = xp.swapaxes(gs, -1, -2) @ self.q if self.needs_input_grad[1] else None
        return gq, gk, gv


def attention(q: Tensor, k: Tensor, v: Tensor, key_padding_mask=None, dropout_p: float = 0.0,
              training: bool = False) -> Tensor:
    """Attention over (batch, heads, seq, head_dim) tensors; dropout on the probabilities only in training."""
    p = dropout_p if training else 0.0
    mask = key_padding_mask.data if isinstance(key_padding_mask, Tensor) else key_padding_mask
    impl = _select_implementation(as_tensor(q), p)
    return impl(mask, p)(q, k, v)


def _select_implementation(q: Tensor, dropout_p: float):
    """FusedAttention for NumPy float32/float64 when numba is installed, else ReferenceAttention."""
    choice = os.environ.get("MINITRANSFER_ATTENTION", "auto").strip().lower()
    if choice not in ("auto", "", "reference"):
        raise ConfigError(f"MINITRANSFER_ATTENTION={choice!r} is not understood: set it to 'reference' to use the "
                          "plain NumPy attention, or unset it to let minitransfer pick the fused kernel")
    if choice == "reference" or not isinstance(q.data, np.ndarray) or q.dtype not in (np.float32, np.float64):
        return ReferenceAttention
    if not _numba_installed():
        return ReferenceAttention
    return FusedAttention


_numba_found: bool | None = None


def _numba_installed() -> bool:
    """Whether numba can be imported, found without importing it (that costs a second)."""
    global _numba_found
    if _numba_found is None:
        _numba_found = importlib.util.find_spec("numba") is not None
    return _numba_found


def attention_probabilities(q, k, key_padding_mask=None):
    """softmax(q k^T / sqrt(d)) with padded keys at probability 0: (batch, heads, seq, seq), no gradient.

    What `output_attentions=True` returns; computed only when asked (the kernels never build it). q, k: arrays or
    Tensors (batch, heads, seq, head_dim). Before dropout, as transformers returns them in eval mode.
    """
    q, k = (t.data if isinstance(t, Tensor) else t for t in (q, k))
    xp = get_array_module(q)
    scores = (q @ xp.swapaxes(k, -1, -2)) * q.dtype.type(1.0 / math.sqrt(q.shape[-1]))
    if key_padding_mask is not None:
        scores = xp.where((xp.asarray(key_padding_mask) == 0)[:, None, None, :], xp.finfo(q.dtype).min, scores)
    scores -= scores.max(axis=-1, keepdims=True)
    probs = xp.exp(scores)
    return probs / probs.sum(axis=-1, keepdims=True)

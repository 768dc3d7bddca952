"""Attention as one Function over the fused CPU kernel (kernels/attention_cpu.py).

Forward keeps q, k, v, the output and the per-row logsumexp (batch, heads, seq) -- not the (seq x seq)
probabilities nor the dropout mask: backward recomputes both. The kernel module (and numba with it) is
imported on first use, so `import minitransfer` stays light.
"""
from __future__ import annotations

import numpy as np

from minitransfer import random
from minitransfer.autograd import Function


def _kernel():
    from minitransfer.kernels import attention_cpu  # lazy: imports numba

    return attention_cpu


class FusedAttention(Function):
    """softmax(q k^T / sqrt(d), padded keys masked) (dropout) v on NumPy arrays, float32 or float64.

    q, k, v: (batch, heads, seq, head_dim); key_padding_mask: (batch, seq), 1 real / 0 padding, or None.
    Each call draws one 64-bit dropout seed from minitransfer's generator, so `manual_seed` reproduces it.
    """

    def __init__(self, key_padding_mask=None, dropout_p: float = 0.0):
        self.key_padding_mask = key_padding_mask
        self.dropout_p = float(dropout_p)

    def forward(self, q, k, v):
        k, v = k.astype(q.dtype, copy=False), v.astype(q.dtype, copy=False)
        self.seed = int(random.numpy_rng().integers(0, 2**64, dtype=np.uint64)) if self.dropout_p > 0 else 0
        out, lse = _kernel().attention_forward(q, k, v, self.key_padding_mask, self.dropout_p, self.seed)
        self.q, self.k, self.v, self.out, self.lse = q, k, v, out, lse
        return out

    def backward(self, gout):
        dq, dk, dv = _kernel().attention_backward(gout.astype(self.q.dtype, copy=False), self.q, self.k, self.v,
                                                  self.out, self.lse, self.key_padding_mask, self.dropout_p,
                                                  self.seed)
        return tuple(g if need else None for g, need in zip((dq, dk, dv), self.needs_input_grad))

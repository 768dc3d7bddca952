"""Scaled dot-product attention over padded batches: the one entry point the models call for them.

`attention(q, k, v, key_padding_mask, dropout_p, training)` is a fused pair (ops/dispatch.py). Shapes: q, k, v
(batch, heads, seq, head_dim); key_padding_mask (batch, seq) with 1 for real tokens and 0 for padding; output
(batch, heads, seq, head_dim).
    ReferenceAttention   NumPy/CuPy (kernels/attention_reference.py): keeps the (seq x seq) probabilities
    FusedAttention       NumPy float32/float64 (kernels/attention_cpu.py): keeps only the output and the per-row
                         logsumexp, and recomputes the probabilities in backward
    CudaAttention        CuPy float32/float16, keys <= 512: cuBLAS GEMMs (xp.matmul) around one numba-cuda kernel
                         each way (kernels/attention_cuda.py: scale, mask, softmax, dropout); keeps the probabilities
All draw one dropout seed per call and drop the same probabilities for it (kernels/dropout_rng.py).
"""
from __future__ import annotations

import math

from minitransfer.autograd import Function, Tensor
from minitransfer.backend import get_array_module
from minitransfer.kernels import attention_reference
from minitransfer.kernels.dropout_rng import attention_dropout_mask
from minitransfer.ops import costs
from minitransfer.ops.autocast import to_half
from minitransfer.ops.dispatch import LazyModule, cupy_float, numpy_float, pick
from minitransfer.ops.dropout import dropout_seed

attention_cpu = LazyModule("minitransfer.kernels.attention_cpu")
attention_cuda = LazyModule("minitransfer.kernels.attention_cuda")
CUDA_MAX_KEYS = 512  # attention_cuda.MAX_KEYS (not imported: that loads numba): a warp holds a row of scores


class ReferenceAttention(Function):
    """softmax(q k^T / sqrt(d) + mask) (dropout) v, keeping the probabilities (and the scaled dropout mask,
    `drop_mask`) for backward."""

    cost = costs.attention

    def __init__(self, key_padding_mask=None, dropout_p: float = 0.0):
        self.key_padding_mask = key_padding_mask
        self.dropout_p = dropout_p

    def forward(self, q, k, v):
        self.q, self.k, self.v = q, k, v
        self.probs = attention_reference.probabilities(q, k, self.key_padding_mask)
        self.drop_mask = None
        if self.dropout_p > 0:
            self.drop_mask = attention_dropout_mask(dropout_seed(), *q.shape[:3], self.dropout_p, q.dtype,
                                                    get_array_module(q))
            return (self.probs * self.drop_mask) @ v
        return self.probs @ v

    def backward(self, gout):
        mask = self.key_padding_mask
        without_keys = None if mask is None else ~get_array_module(gout).asarray(mask != 0).any(axis=-1)
        grads = attention_reference.backward(gout, self.q, self.k, self.v, self.probs, self.drop_mask, without_keys)
        return tuple(g if need else None for g, need in zip(grads, self.needs_input_grad))


class FusedAttention(Function):
    """The same with the fused CPU kernel; k and v are cast to q's dtype."""

    cost = costs.attention

    def __init__(self, key_padding_mask=None, dropout_p: float = 0.0):
        self.key_padding_mask = key_padding_mask
        self.dropout_p = float(dropout_p)

    @classmethod
    def supports(cls, q, k, v) -> bool:
        return numpy_float(q)

    def forward(self, q, k, v):
        k, v = k.astype(q.dtype, copy=False), v.astype(q.dtype, copy=False)
        self.seed = dropout_seed() if self.dropout_p > 0 else 0
        out, lse = attention_cpu.attention_forward(q, k, v, self.key_padding_mask, self.dropout_p, self.seed)
        self.q, self.k, self.v, self.out, self.lse = q, k, v, out, lse
        return out

    def backward(self, gout):
        dq, dk, dv = attention_cpu.attention_backward(gout.astype(self.q.dtype, copy=False), self.q, self.k, self.v,
                                                      self.out, self.lse, self.key_padding_mask, self.dropout_p,
                                                      self.seed)
        return tuple(g if need else None for g, need in zip((dq, dk, dv), self.needs_input_grad))


class CudaAttention(ReferenceAttention):
    """The same as q k^T and P v by xp.matmul (cuBLAS) around attention_cuda's fused softmax each way. Keeps the
    probabilities, not the dropout mask: backward rebuilds it (and the dropped probabilities) from the seed."""

    @classmethod
    def supports(cls, q, k, v) -> bool:
        return cupy_float(q, k, v) and k.shape[-2] <= CUDA_MAX_KEYS

    def forward(self, q, k, v):
        xp = get_array_module(q)
        self.mask = None if self.key_padding_mask is None else xp.asarray(self.key_padding_mask)
        self.scale, self.seed = 1.0 / math.sqrt(q.shape[-1]), dropout_seed() if self.dropout_p > 0 else 0
        self.probs, dropped = attention_cuda.softmax_dropout_forward(q @ xp.swapaxes(k, -1, -2), self.scale,
                                                                     self.mask, self.dropout_p, self.seed)
        self.q, self.k, self.v = q, k, v
        return dropped @ v

    def backward(self, gout):
        xp = get_array_module(gout)
        grad_scores, dropped = attention_cuda.softmax_dropout_backward(gout @ xp.swapaxes(self.v, -1, -2), self.probs,
                                                                       self.scale, self.mask, self.dropout_p, self.seed)
        grads = (grad_scores @ self.k, xp.swapaxes(grad_scores, -1, -2) @ self.q, xp.swapaxes(dropped, -1, -2) @ gout)
        return tuple(g if need else None for g, need in zip(grads, self.needs_input_grad))


def attention(q: Tensor, k: Tensor, v: Tensor, key_padding_mask=None, dropout_p: float = 0.0,
              training: bool = False) -> Tensor:
    """Attention over (batch, heads, seq, head_dim) tensors; dropout on the probabilities only in training."""
    mask = key_padding_mask.data if isinstance(key_padding_mask, Tensor) else key_padding_mask
    q, k, v = to_half(q, k, v)
    implementation = pick(ReferenceAttention, [FusedAttention, CudaAttention], q, k, v)
    return implementation(mask, dropout_p if training else 0.0)(q, k, v)


def attention_probabilities(q, k, key_padding_mask=None):
    """softmax(q k^T / sqrt(d)) with padded keys at probability 0: (batch, heads, seq, seq), no gradient.

    What `output_attentions=True` returns; computed only when asked (the kernels never build it). q, k: arrays or
    Tensors (batch, heads, seq, head_dim). Before dropout, as transformers returns them in eval mode.
    """
    q, k = (t.data if isinstance(t, Tensor) else t for t in (q, k))
    return attention_reference.probabilities(q, k, key_padding_mask)

"""Variable-length ("varlen", packed, padding-free) attention: the entry point for packed batches.

Layout (FlashAttention-2's varlen API): q, k, v are (tokens, heads, head_dim), the real tokens of several
sequences one after another, and cu_seqlens (n_seqs + 1,) holds the offsets: sequence s is rows
cu_seqlens[s]:cu_seqlens[s + 1]. Each sequence attends to itself only, with no mask:
    out[t, h] = softmax(q[t, h] . k[seq(t), h]^T / sqrt(head_dim)) (dropout) v[seq(t), h]
which costs sum L_s^2 instead of batch x seq^2. A fused op (ops/dispatch.py): ReferenceVarlenAttention
(kernels/attention_reference.py per sequence, NumPy/CuPy), FusedVarlenAttention (kernels/attention_varlen_cpu.py,
NumPy float32/float64) and CudaVarlenAttention (per-sequence cuBLAS GEMMs around kernels/attention_cuda.py's packed
softmax, CuPy float32/float16, sequences of <= 512 tokens), which drop the same probabilities for a given seed
(kernels/dropout_rng.py).
"""
from __future__ import annotations

import math

import numpy as np

from minitransfer.autograd import Function, Tensor, as_tensor
from minitransfer.backend import get_array_module, to_numpy
from minitransfer.errors import InputError
from minitransfer.kernels import attention_reference
from minitransfer.kernels.dropout_rng import varlen_dropout_mask
from minitransfer.ops import costs
from minitransfer.ops.attention import CUDA_MAX_KEYS, attention_cuda
from minitransfer.ops.autocast import to_half
from minitransfer.ops.dispatch import LazyModule, cupy_float, numpy_float, pick
from minitransfer.ops.dropout import dropout_seed

attention_varlen_cpu = LazyModule("minitransfer.kernels.attention_varlen_cpu")


def check_cu_seqlens(cu_seqlens, tokens: int) -> np.ndarray:
    """cu_seqlens as a 1-D int64 NumPy array, after checking that it splits `tokens` rows into sequences:
    it starts at 0, increases strictly (no sequence without a token) and ends at `tokens`."""
    if isinstance(cu_seqlens, Tensor):
        cu_seqlens = cu_seqlens.data
    cu = to_numpy(cu_seqlens)
    if cu.ndim != 1 or cu.dtype.kind not in "iu":
        raise InputError(f"cu_seqlens must be a 1-D integer array of sequence offsets, (n_seqs + 1,); got shape "
                         f"{cu.shape} and dtype {cu.dtype}")
    if len(cu) < 2:
        raise InputError(f"cu_seqlens holds {len(cu)} offset(s), so no sequence: it needs n_seqs + 1 >= 2 offsets, "
                         f"0 first and the token count last")
    cu = cu.astype(np.int64)
    if cu[0] != 0:
        raise InputError(f"cu_seqlens must start at 0; it starts at {cu[0]}")
    lengths = np.diff(cu)
    if (lengths <= 0).any():
        i = int(np.flatnonzero(lengths <= 0)[0])
        if lengths[i] == 0:
            raise InputError(f"sequence {i} has no token (cu_seqlens[{i}] = cu_seqlens[{i + 1}] = {cu[i]}): "
                             "cu_seqlens must increase strictly")
        raise InputError(f"cu_seqlens must increase strictly, but cu_seqlens[{i + 1}] = {cu[i + 1]} is below "
                         f"cu_seqlens[{i}] = {cu[i]}")
    if cu[-1] != tokens:
        raise InputError(f"cu_seqlens end at {cu[-1]} but q has {tokens} tokens")
    return cu


def _sequence_heads(x, start: int, end: int):
    """Rows start:end of a packed (tokens, heads, d) array as (heads, L, d) (a view)."""
    return x[start:end].transpose(1, 0, 2)


def _seed(dropout_p: float, seed) -> int:
    return (dropout_seed() if seed is None else int(seed)) if dropout_p > 0 else 0


class ReferenceVarlenAttention(Function):
    """Packed attention in plain NumPy/CuPy: one (heads, L, L) softmax per sequence, kept for backward.

    q, k, v: (tokens, heads, head_dim); cu_seqlens: (n_seqs + 1,) offsets. The dropout mask is the fused
    kernel's (varlen_dropout_mask of the seed), so both agree exactly; seed None draws one per call.
    """

    cost = costs.varlen_attention

    def __init__(self, cu_seqlens, dropout_p: float = 0.0, seed: int | None = None):
        self.cu_seqlens = np.ascontiguousarray(to_numpy(cu_seqlens), dtype=np.int64)
        self.dropout_p = float(dropout_p)
        self.given_seed = seed

    def _sequences(self):
        return enumerate(zip(self.cu_seqlens[:-1].tolist(), self.cu_seqlens[1:].tolist()))

    def forward(self, q, k, v):
        xp = get_array_module(q)
        k, v = k.astype(q.dtype, copy=False), v.astype(q.dtype, copy=False)
        seed = _seed(self.dropout_p, self.given_seed)
        self.masks = None
        if self.dropout_p > 0:
            self.masks = varlen_dropout_mask(seed, self.cu_seqlens, q.shape[1], self.dropout_p, q.dtype, xp)
        out = xp.empty(q.shape, dtype=q.dtype)
        self.probs = []
        for s, (start, end) in self._sequences():
            qs, ks, vs = (_sequence_heads(x, start, end) for x in (q, k, v))
            probs = attention_reference.probabilities(qs, ks)
            self.probs.append(probs)
            out[start:end] = ((probs * self.masks[s] if self.masks is not None else probs) @ vs).transpose(1, 0, 2)
        self.q, self.k, self.v = q, k, v
        return out

    def backward(self, gout):
        grads = tuple(get_array_module(gout).empty(self.q.shape, dtype=self.q.dtype) for _ in range(3))
        for s, (start, end) in self._sequences():
            views = (_sequence_heads(x, start, end) for x in (gout, self.q, self.k, self.v))
            drop = self.masks[s] if self.masks is not None else None
            for g, gs in zip(grads, attention_reference.backward(*views, self.probs[s], drop)):
                g[start:end] = gs.transpose(1, 0, 2)
        return tuple(g if need else None for g, need in zip(grads, self.needs_input_grad))


class FusedVarlenAttention(Function):
    """Packed attention over the numba kernel (kernels/attention_varlen_cpu.py), NumPy float32/float64.

    Same interface and dropout mask as ReferenceVarlenAttention; keeps only q, k, v, the output and the
    logsumexp (heads, tokens) for backward, which recomputes the probabilities and the mask.
    """

    cost = costs.varlen_attention

    def __init__(self, cu_seqlens, dropout_p: float = 0.0, seed: int | None = None):
        self.cu_seqlens = np.ascontiguousarray(to_numpy(cu_seqlens), dtype=np.int64)
        self.dropout_p = float(dropout_p)
        self.given_seed = seed

    @classmethod
    def supports(cls, q, k, v) -> bool:
        return numpy_float(q)

    def forward(self, q, k, v):
        k, v = k.astype(q.dtype, copy=False), v.astype(q.dtype, copy=False)
        self.seed = _seed(self.dropout_p, self.given_seed)
        out, lse = attention_varlen_cpu.varlen_attention_forward(q, k, v, self.cu_seqlens, self.dropout_p, self.seed)
        self.q, self.k, self.v, self.out, self.lse = q, k, v, out, lse
        return out

    def backward(self, gout):
        dq, dk, dv = attention_varlen_cpu.varlen_attention_backward(gout.astype(self.q.dtype, copy=False), self.q,
                                                                    self.k, self.v, self.out, self.lse,
                                                                    self.cu_seqlens, self.dropout_p, self.seed)
        return tuple(g if need else None for g, need in zip((dq, dk, dv), self.needs_input_grad))


class CudaVarlenAttention(ReferenceVarlenAttention):
    """The same as one cuBLAS GEMM per sequence into views of one flat score buffer (attention_cuda's packed layout)
    around one fused softmax + dropout launch over every sequence, each way. Keeps the probabilities (that buffer),
    not the dropout mask: backward rebuilds it from the seed."""

    @classmethod
    def supports(cls, q, k, v) -> bool:
        return cupy_float(q, k, v)

    def _blocks(self, flat, *packed):
        """Per sequence s: flat's (heads, L, L) block, then each packed (tokens, heads, d) array's (heads, L, d)."""
        heads = self.q.shape[1]
        for s, (start, end) in self._sequences():
            block = flat[self.offsets[s]:self.offsets[s + 1]].reshape(heads, end - start, end - start)
            yield (start, end, block, *(_sequence_heads(x, start, end) for x in packed))

    def _launch(self, kernel, *arrays):
        return kernel(*arrays, self.device_cu, self.q.shape[0], self.q.shape[1], self.scale, self.dropout_p,
                      self.seed)

    def forward(self, q, k, v):
        xp = get_array_module(q)
        self.q, self.k, self.v = q, k.astype(q.dtype, copy=False), v.astype(q.dtype, copy=False)
        self.seed, self.scale = _seed(self.dropout_p, self.given_seed), 1.0 / math.sqrt(q.shape[-1])
        self.offsets = attention_cuda.varlen_score_offsets(self.cu_seqlens, q.shape[1]).tolist()
        self.device_cu = xp.asarray(self.cu_seqlens)
        scores = xp.empty(self.offsets[-1], q.dtype)
        for _, _, block, qs, ks in self._blocks(scores, q, self.k):
            xp.matmul(qs, xp.swapaxes(ks, -1, -2), out=block)
        self.probs, dropped = self._launch(attention_cuda.varlen_softmax_dropout_forward, scores)
        out = xp.empty(q.shape, q.dtype)
        for start, end, block, vs in self._blocks(dropped, self.v):
            out[start:end] = (block @ vs).transpose(1, 0, 2)
        return out

    def backward(self, gout):
        xp = get_array_module(gout)
        grad_dropped = xp.empty(self.offsets[-1], self.q.dtype)
        for _, _, block, gs, vs in self._blocks(grad_dropped, gout, self.v):
            xp.matmul(gs, xp.swapaxes(vs, -1, -2), out=block)
        grad_scores, dropped = self._launch(attention_cuda.varlen_softmax_dropout_backward, grad_dropped, self.probs)
        dq, dk, dv = (xp.empty(self.q.shape, self.q.dtype) for _ in range(3))
        for start, end, block, qs, ks in self._blocks(grad_scores, self.q, self.k):
            dq[start:end] = (block @ ks).transpose(1, 0, 2)
            dk[start:end] = (xp.swapaxes(block, -1, -2) @ qs).transpose(1, 0, 2)
        for start, end, block, gs in self._blocks(dropped, gout):
            dv[start:end] = (xp.swapaxes(block, -1, -2) @ gs).transpose(1, 0, 2)
        return tuple(g if need else None for g, need in zip((dq, dk, dv), self.needs_input_grad))


def varlen_attention(q: Tensor, k: Tensor, v: Tensor, cu_seqlens, dropout_p: float = 0.0,
                     training: bool = False) -> Tensor:
    """Attention over packed (tokens, heads, head_dim) tensors, each sequence of cu_seqlens to itself.

    cu_seqlens: (n_seqs + 1,) integer offsets, 0 first and tokens last (checked: InputError otherwise).
    Dropout on the probabilities only in training. Returns (tokens, heads, head_dim).
    """
    q = as_tensor(q)
    if q.ndim != 3 or as_tensor(k).shape != q.shape or as_tensor(v).shape != q.shape:
        raise InputError(f"varlen_attention needs q, k, v of one shape (tokens, heads, head_dim); got "
                         f"{q.shape}, {as_tensor(k).shape}, {as_tensor(v).shape}")
    cu = check_cu_seqlens(cu_seqlens, q.shape[0])
    p = dropout_p if training else 0.0
    q, k, v = to_half(q, k, v)
    cuda = [CudaVarlenAttention] if np.diff(cu).max() <= CUDA_MAX_KEYS else []  # its kernel's rows: <= 512 keys
    return pick(ReferenceVarlenAttention, [FusedVarlenAttention, *cuda], q, k, v)(cu, p)(q, k, v)


def varlen_attention_probabilities(q, k, cu_seqlens) -> list:
    """Each sequence's attention probabilities, (heads, L, L) per sequence, no gradient (output_attentions)."""
    q, k = (t.data if isinstance(t, Tensor) else t for t in (q, k))
    cu = check_cu_seqlens(cu_seqlens, q.shape[0])
    return [attention_reference.probabilities(_sequence_heads(q, s, e), _sequence_heads(k, s, e))
            for s, e in zip(cu[:-1].tolist(), cu[1:].tolist())]

"""Variable-length (packed, padding-free) attention on the CPU (numba): forward and backward, dropout inside.

Layout, as FlashAttention-2's varlen API: q, k, v are (tokens, heads, head_dim), the real tokens of several
sequences one after another (any strides: in the models, `x.reshape(tokens, heads, head_dim)` of a Linear's
(tokens, hidden) output), and cu_seqlens (n_seqs + 1,) holds the offsets: sequence s is rows
cu_seqlens[s]:cu_seqlens[s + 1]. Each sequence attends to itself only, with no mask:
    out[t, h] = softmax(q[t, h] . k[seq(t), h]^T / sqrt(head_dim)) (dropout) v[seq(t), h].
Why: a padded (batch, seq) batch costs batch x seq query rows x the real keys; packed, it is sum L_s^2,
and no padded token is loaded, exponentiated or multiplied.

The plan and the math of each block of query rows are attention_cpu.py's (forward_block, backward_block:
register-tiled microkernel, exp and dropout rows, query blocks sized for L2); this file only gathers one
(sequence, head) out of the packed layout and drives it. One task per (sequence, head) (prange, one task
per chunk), longest sequences first, so that a long one does not start last and leave the other cores idle.
Forward keeps the output and the logsumexp, lse (heads, tokens) as FlashAttention-2's varlen (each task writes
one contiguous run); backward recomputes the probabilities from q, k and lse, and the dropout mask from the
seed (never stored). Dropout is dropout_rng.py's mask with row t * heads + h for packed query token t and head h,
and column the key's position inside its own sequence. Reference: ReferenceVarlenAttention
(minitransfer/ops/varlen_attention.py over attention_reference.py), which the tests match.

Per call, T = sum L_s packed tokens, H heads of head_dim D (itemsize bytes each): forward 4 H D sum L_s^2 FLOPs
+ H sum L_s^2 exps, (4 T H D + H T) * itemsize bytes; backward 10 H D sum L_s^2 FLOPs, (8 T H D + H T) * itemsize.

Debugging: NUMBA_DISABLE_JIT=1 runs the kernels as plain Python (simd_cpu's words become NumPy), so a debugger
can step into them; use small shapes, it is slow. numba's cache is keyed on this file only: after editing
attention_cpu.py, gemm_cpu.py or simd_cpu.py, delete kernels/__pycache__/*.nbi so these kernels recompile over
the new building blocks.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange, types
from numba.core.dispatcher import Dispatcher

from .attention_cpu import (
    backward_block,
    backward_buffers,
    block_rows_for,
    compiled,
    dropout_keys,
    forward_block,
    forward_buffers,
    one_head_per_chunk,
)
from .gemm_cpu import JIT, padded_widths, round_up
from .numba_cache import tolerate_cache_failures
from .simd_cpu import VECTOR_BYTES, lanes_of


# ---- Packed-layout loads: one (sequence, head) into attention_cpu's flat, zero-padded buffers ----
@numba.njit(**JIT)
def _gather_sequence(x, h, first, n, width, ld, panels):
    """x[first:first + n, h, :] zero-padded to (width, dims_p), flat: transposed, (dims_p, ld) row-major, or in
    column panels, (dims_p / panel width, width, panel width), as attention_cpu._gather_keys lays them out."""
    dims = x.shape[2]
    tile = 2 * (VECTOR_BYTES // x.itemsize)
    out = np.zeros(round_up(dims, tile) * (width if panels else ld), dtype=x.dtype)
    if panels:
        for start in range(0, dims, tile):  # the panel of columns start .. start + tile begins at start * width
            for jj in range(n):
                row = start * width + jj * tile
                for t in range(min(tile, dims - start)):
                    out[row + t] = x[first + jj, h, start + t]
    else:
        for jj in range(n):
            for d in range(dims):
                out[d * ld + jj] = x[first + jj, h, d]
    return out


@numba.njit(**JIT)
def _load_sequence_rows(x, h, first, count, dst):
    """dst[:count, :dims] = x[first:first + count, h], and zero dst's other rows and columns."""
    dst[:] = 0
    for r in range(count):
        for d in range(x.shape[2]):
            dst[r, d] = x[first + r, h, d]


# ---- One (sequence, head): rows first .. first + n of head h attend to the same rows' keys ----
@numba.njit(**JIT)
def _forward_sequence(q, k, v, h, first, n, columns, scale, key_lo, key_hi, threshold, keep_scale, dropout,
                      block_rows, out, lse):
    dims = q.shape[2]
    width, dims_p, ld = padded_widths(n, dims, q.itemsize)
    kf = _gather_sequence(k, h, first, n, width, ld, False)  # k^T: the scores stream its rows
    vf = _gather_sequence(v, h, first, n, width, ld, True)  # v in column panels for P V
    qb, sb, ob, norms = forward_buffers(q, block_rows, ld, dims_p)
    qf, sf, of = qb.ravel(), sb.ravel(), ob.ravel()
    for start in range(0, n, block_rows):
        rows = min(block_rows, n - start)
        t0 = first + start
        _load_sequence_rows(q, h, t0, rows, qb)
        lo, hi = (key_lo[t0:t0 + rows, h], key_hi[t0:t0 + rows, h]) if dropout else (key_lo[:0, 0], key_hi[:0, 0])
        forward_block(qf, kf, vf, sf, of, norms, lse[h, t0:t0 + rows], lo, hi, columns, n, rows, width, ld, dims_p,
                      scale, threshold, keep_scale, dropout)
        for r in range(rows):
            inv = 1.0 / norms[r]
            for d in range(dims):
                out[first + start + r, h, d] = ob[r, d] * inv


@numba.njit(**JIT)
def _backward_sequence(q, k, v, out, dout, lse, h, first, n, columns, scale, key_lo, key_hi, threshold,
                       keep_scale, dropout, block_rows, dq, dk, dv):
    dims = q.shape[2]
    width, dims_p, ld = padded_widths(n, dims, q.itemsize)
    ktf = _gather_sequence(k, h, first, n, width, ld, False)  # k^T for the scores
    kpf = _gather_sequence(k, h, first, n, width, ld, True)  # k in column panels for dQ = dS k
    vtf = _gather_sequence(v, h, first, n, width, ld, False)  # v^T for dP = dO v^T
    dkc, dvc, qb, dob, dqb, pb, pdb, dsb, delta = backward_buffers(q, block_rows, width, ld, dims_p, dropout)
    qf, dof, dqf, pf, pdf, dsf = qb.ravel(), dob.ravel(), dqb.ravel(), pb.ravel(), pdb.ravel(), dsb.ravel()
    dkf, dvf = dkc.ravel(), dvc.ravel()
    for start in range(0, n, block_rows):
        rows = min(block_rows, n - start)
        t0 = first + start
        _load_sequence_rows(q, h, t0, rows, qb)
        _load_sequence_rows(dout, h, t0, rows, dob)
        for r in range(rows):  # D_i = rowsum(dO * O), FlashAttention-2's shortcut for sum_j P_ij dP_ij
            acc = 0.0
            for d in range(dims):
                acc += dout[t0 + r, h, d] * out[t0 + r, h, d]
            delta[r] = acc
        lo, hi = (key_lo[t0:t0 + rows, h], key_hi[t0:t0 + rows, h]) if dropout else (key_lo[:0, 0], key_hi[:0, 0])
        backward_block(qf, dof, dqf, pf, pdf, dsf, ktf, kpf, vtf, dkf, dvf, delta, lse[h, t0:t0 + rows], lo, hi,
                       columns, n, rows, width, ld, dims_p, scale, threshold, keep_scale, dropout)
        for r in range(rows):
            for d in range(dims):
                dq[t0 + r, h, d] = dqb[r, d]
    for jj in range(n):
        for d in range(dims):
            dk[first + jj, h, d] = dkc[jj, d]
            dv[first + jj, h, d] = dvc[jj, d]


@numba.njit(parallel=True, fastmath=False, cache=True)
def forward_sequences(q, k, v, cu_seqlens, order, block_rows, columns, scale, key_lo, key_hi, threshold, keep_scale,
                      dropout, out, lse):
    heads = q.shape[1]
    for task in prange(order.shape[0] * heads):
        s, h = order[task // heads], task % heads
        first = cu_seqlens[s]
        _forward_sequence(q, k, v, h, first, cu_seqlens[s + 1] - first, columns, scale, key_lo, key_hi, threshold,
                          keep_scale, dropout, block_rows[s], out, lse)


@numba.njit(parallel=True, fastmath=False, cache=True)
def backward_sequences(q, k, v, out, dout, lse, cu_seqlens, order, block_rows, columns, scale, key_lo, key_hi,
                       threshold, keep_scale, dropout, dq, dk, dv):
    heads = q.shape[1]
    for task in prange(order.shape[0] * heads):
        s, h = order[task // heads], task % heads
        first = cu_seqlens[s]
        _backward_sequence(q, k, v, out, dout, lse, h, first, cu_seqlens[s + 1] - first, columns, scale, key_lo,
                           key_hi, threshold, keep_scale, dropout, block_rows[s], dq, dk, dv)


# ---- Python entry points (NumPy arrays in, NumPy arrays out) ----
def _signature(kind: str, dtype):
    """The one signature per dtype: float inputs of any strides, read-only allowed; outputs C-ordered."""
    t = numba.from_dtype(np.dtype(dtype))
    given = [types.Array(t, 3, "A", readonly=True)] * (3 if kind == "forward" else 5)
    if kind == "backward":
        given.append(types.Array(t, 2, "A", readonly=True))  # lse
    layout = [types.int64[::1], types.int64[::1], types.int64[::1], types.int32[::1], types.float64,
              types.int64[:, ::1], types.int64[:, ::1], types.int64, types.float64, types.boolean]
    made = [t[:, :, ::1], t[:, ::1]] if kind == "forward" else [t[:, :, ::1]] * 3
    return types.void(*given, *layout, *made)


# A failed cache save (processes racing on one index) must not fail the call: see numba_cache.py.
tolerate_cache_failures(*[f for f in list(globals().values()) if isinstance(f, Dispatcher)])


def _layout(q, k, v, cu_seqlens, dropout_p: float, seed: int):
    """The per-call arrays: offsets, task order (longest sequence first), query rows per block, dropout
    columns (positions inside a sequence) and the row keys (tokens, heads)."""
    tokens, heads, _ = q.shape
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"q, k, v must have one shape (tokens, heads, head_dim); got {q.shape}, {k.shape}, {v.shape}")
    given = np.asarray(cu_seqlens)
    cu = np.ascontiguousarray(given, dtype=np.int64)
    lengths = np.diff(cu) if cu.ndim == 1 else cu
    if (given.dtype.kind not in "iu" or cu.ndim != 1 or len(cu) < 2 or cu[0] != 0 or cu[-1] != tokens
            or (lengths <= 0).any()):
        raise ValueError(f"cu_seqlens {given} does not split {tokens} tokens into sequences: it needs integer offsets "
                         f"that start at 0, increase strictly and end at {tokens}")
    order = np.argsort(-lengths, kind="stable").astype(np.int64)
    block_rows = np.array([block_rows_for(int(n), q.itemsize) for n in lengths], dtype=np.int64)
    tile = 2 * lanes_of(q.dtype)
    columns = np.arange(-(-int(lengths.max()) // tile) * tile, dtype=np.int32)
    return (cu, order, block_rows, columns, *dropout_keys(seed, (tokens, heads), dropout_p))


def varlen_attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, cu_seqlens: np.ndarray,
                             dropout_p: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Packed attention, each sequence of cu_seqlens to itself, and the per-row logsumexp.

    q, k, v: (tokens, heads, head_dim), float32 or float64 (one dtype, any strides); cu_seqlens: (n_seqs + 1,)
    integer offsets, 0 first and tokens last, no empty sequence; seed: picks the dropout mask. Returns out
    (tokens, heads, head_dim), C-ordered, and lse (heads, tokens) of the scaled scores, all backward needs.
    """
    tokens, heads, dims = q.shape
    cu, order, block_rows, columns, lo, hi, threshold, keep_scale = _layout(q, k, v, cu_seqlens, dropout_p, seed)
    out = np.empty(q.shape, dtype=q.dtype)
    lse = np.empty((heads, tokens), dtype=q.dtype)
    forward = compiled(forward_sequences, _signature, "forward", q.dtype)
    with one_head_per_chunk():
        forward(q, k, v, cu, order, block_rows, columns, 1.0 / math.sqrt(dims), lo, hi, threshold, keep_scale,
                dropout_p > 0, out, lse)
    return out, lse


def varlen_attention_backward(dout: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, out: np.ndarray,
                              lse: np.ndarray, cu_seqlens: np.ndarray, dropout_p: float = 0.0,
                              seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dq, dk, dv), each (tokens, heads, head_dim), of the forward above, given dout = dL/d out and
    forward's out and lse (heads, tokens). Same cu_seqlens, dropout_p and seed as the forward call."""
    tokens, heads, dims = q.shape
    cu, order, block_rows, columns, lo, hi, threshold, keep_scale = _layout(q, k, v, cu_seqlens, dropout_p, seed)
    if dout.shape != q.shape or out.shape != q.shape or lse.shape != (heads, tokens):
        raise ValueError(f"dout and out must be {q.shape} and lse {(heads, tokens)}; got {dout.shape}, {out.shape}, "
                         f"{lse.shape}")
    dq = np.empty(q.shape, dtype=q.dtype)
    dk = np.empty(q.shape, dtype=q.dtype)
    dv = np.empty(q.shape, dtype=q.dtype)
    backward = compiled(backward_sequences, _signature, "backward", q.dtype)
    with one_head_per_chunk():
        backward(q, k, v, out, dout, lse, cu, order, block_rows, columns, 1.0 / math.sqrt(dims), lo, hi, threshold,
                 keep_scale, dropout_p > 0, dq, dk, dv)
    return dq, dk, dv

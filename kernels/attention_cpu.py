"""Fused scaled dot-product attention on the CPU (numba): forward and backward, dropout inside.

FlashAttention's plan on a CPU core: one (batch, head) per task (`prange`), queries in blocks of rows;
each block's scores against all real keys stay in cache (seq <= ~512 needs no blocking over keys), the
exponentials and dropout are applied in place, and the row sums divide the P V product. Only the output
and the per-row logsumexp are kept. Backward recomputes the probabilities from q, k and the logsumexp,
regenerates the dropout mask from its seed (never stored), and uses D_i = rowsum(dO * O) (FlashAttention-2).
Padded keys are left out of every product: their probability is exactly 0, as with a -inf score. A sequence
with no real key at all attends uniformly to every key, as the reference does.

Products are gemm_cpu's register-tiled microkernel, exp and dropout simd_cpu's words (vexp, vdropout); all
buffers are zero-padded to whole tiles. Kernels compile with fastmath=False; the only liberty taken is
llvm.fmuladd (a fused multiply-add where the CPU has one) in the products and the exp. Dropout is dropout_rng.py's
mask with row (b * heads + h) * seq + i and column j. Reference: ReferenceAttention (minitransfer/ops/attention.py
over attention_reference.py), which the tests match.

Per call, B H heads of S queries over n <= S real keys, head_dim D (itemsize bytes each): forward 4 B H S n D
FLOPs (Q K^T, P V) + B H S n exps, (4 B H S D + B H S) * itemsize bytes (q, k, v in; out, lse out); backward
10 B H S n D FLOPs (Q K^T again, dV, dP, dQ, dK) + B H S n exps, (8 B H S D + B H S) * itemsize bytes.

Debugging: NUMBA_DISABLE_JIT=1 runs the kernels as plain Python (the SIMD words become NumPy on small
arrays), so a debugger can step into them; use small shapes, it is slow.
"""
from __future__ import annotations

import contextlib
import math

import numba
import numpy as np
from numba import prange, types
from numba.core.dispatcher import Dispatcher

from .dropout_rng import keep_threshold, row_key_halves
from .gemm_cpu import JIT, TILE_ROWS, gemm, padded_widths, round_up
from .numba_cache import tolerate_cache_failures
from .simd_cpu import (
    VECTOR_BYTES,
    lanes_of,
    vadd,
    vdropout,
    vexp,
    vfma,
    vhmax,
    vhsum,
    vload,
    vmax,
    vmul,
    vsplat,
    vstore,
    vsub,
)

BLOCK_ROWS = 64  # query rows per block at most
BLOCK_BYTES = 128 * 1024  # ... and fewer for long rows, so one block of scores stays in a core's L2


# ---- Building blocks over flat, zero-padded, C-ordered buffers ----
@numba.njit(**JIT)
def _exp_row(s, off, n, width, scale):
    """Row s[off:off + width] of raw scores -> exp(scale * s - row max) over its first n columns, 0 beyond.
    Returns (logsumexp of scale * s, the row sum); the caller divides by the sum after P V, on head_dim columns."""
    w = VECTOR_BYTES // s.itemsize
    for j in range(n, width):
        s[off + j] = -np.inf
    top = vsplat(s, -np.inf)
    for j in range(0, width, w):
        top = vmax(top, vload(s, off + j))
    shift = vhmax(top) * scale
    scales, shifts, total = vsplat(s, scale), vsplat(s, -shift), vsplat(s, 0.0)
    for j in range(0, width, w):
        e = vexp(vfma(vload(s, off + j), scales, shifts))
        vstore(s, off + j, e)
        total = vadd(total, e)
    norm = vhsum(total)
    return shift + math.log(norm), norm


@numba.njit(**JIT)
def _probabilities_row(s, off, n, width, scale, lse):
    """Row of raw scores -> exp(scale * s - lse) over the first n columns, 0 beyond (backward's recompute)."""
    w = VECTOR_BYTES // s.itemsize
    for j in range(n, width):
        s[off + j] = -np.inf
    scales, shifts = vsplat(s, scale), vsplat(s, -lse)
    for j in range(0, width, w):
        vstore(s, off + j, vexp(vfma(vload(s, off + j), scales, shifts)))


@numba.njit(**JIT)
def _dropout_row(p, dst, off, width, columns, key_lo, key_hi, threshold, keep_scale):
    """dst row = p row * (keep_scale where the hash keeps the column, else 0)."""
    w = VECTOR_BYTES // p.itemsize
    for j in range(0, width, w):
        keep = vdropout(vsplat(p, 0.0), columns, j, key_lo, key_hi, threshold, keep_scale)
        vstore(dst, off + j, vmul(vload(p, off + j), keep))


@numba.njit(**JIT)
def _gather_keys(x, b, h, keys, n, width, ld, panels):
    """x[b, h, keys[:n], :] zero-padded to (width, dims_p), flat: transposed, (dims_p, ld) row-major, or in
    column panels, (dims_p / panel width, width, panel width), where a long P V product streams a panel with
    a stride of one panel row (a (width, dims_p) row stride lands in few L1 sets: measured 20-30% slower)."""
    dims = x.shape[3]
    tile = 2 * (VECTOR_BYTES // x.itemsize)
    out = np.zeros(round_up(dims, tile) * (width if panels else ld), dtype=x.dtype)
    if panels:
        for first in range(0, dims, tile):  # the panel of columns first .. first + tile starts at first * width
            for jj in range(n):
                src, row = keys[jj], first * width + jj * tile
                for t in range(min(tile, dims - first)):
                    out[row + t] = x[b, h, src, first + t]
    else:
        for jj in range(n):
            src = keys[jj]
            for d in range(dims):
                out[d * ld + jj] = x[b, h, src, d]
    return out


@numba.njit(**JIT)
def _load_rows(x, b, h, start, count, zero, dst):
    """dst[:count, :dims] = x[b, h, start:start + count] (zeros if `zero`), and zero dst's other rows."""
    dst[:] = 0
    if not zero:
        for r in range(count):
            for d in range(x.shape[3]):
                dst[r, d] = x[b, h, start + r, d]


# ---- One block of query rows in the flat buffers: the math both layouts share (this file's (batch, head)
# drivers and attention_varlen_cpu's (sequence, head) ones differ only in what they load). lse_rows, lo_rows,
# hi_rows: the block's rows of the logsumexp and of the dropout row keys (1-D views).
@numba.njit(**JIT)
def forward_block(qf, kf, vf, sf, of, norms, lse_rows, lo_rows, hi_rows, columns, n, rows, width, ld, dims_p,
                  scale, threshold, keep_scale, dropout):
    """Scores of the block against the n keys, their exponentials (dropped out), and P V into of; the row sums
    in norms (the caller divides the output by them) and each row's logsumexp in lse_rows."""
    tile = 2 * (VECTOR_BYTES // sf.itemsize)
    tiled = round_up(rows, TILE_ROWS)
    gemm(qf, dims_p, 1, kf, ld, tile, sf, ld, tiled, width, dims_p, False)
    for r in range(rows):
        lse_rows[r], norms[r] = _exp_row(sf, r * ld, n, width, scale)
        if dropout:
            _dropout_row(sf, sf, r * ld, width, columns, lo_rows[r], hi_rows[r], threshold, keep_scale)
    sf[rows * ld:tiled * ld] = 0
    gemm(sf, ld, 1, vf, tile, width * tile, of, dims_p, tiled, dims_p, width, False)


@numba.njit(**JIT)
def backward_block(qf, dof, dqf, pf, pdf, dsf, ktf, kpf, vtf, dkf, dvf, delta, lse_rows, lo_rows, hi_rows, columns,
                   n, rows, width, ld, dims_p, scale, threshold, keep_scale, dropout):
    """Given the block's q and dO rows and D_i = rowsum(dO * O) in delta: recompute P (and its dropped-out
    P_drop), add the block's share of dK and dV, and leave its dQ in dqf."""
    tile = 2 * (VECTOR_BYTES // qf.itemsize)
    tiled = round_up(rows, TILE_ROWS)
    gemm(qf, dims_p, 1, ktf, ld, tile, pf, ld, tiled, width, dims_p, False)
    for r in range(rows):
        _probabilities_row(pf, r * ld, n, width, scale, lse_rows[r])
        if dropout:
            _dropout_row(pf, pdf, r * ld, width, columns, lo_rows[r], hi_rows[r], threshold, keep_scale)
    pf[rows * ld:tiled * ld] = 0
    pdf[rows * ld:tiled * ld] = 0
    # dV += P_drop^T dO
    gemm(pdf, 1, ld, dof, dims_p, tile, dvf, dims_p, width, dims_p, tiled, True)
    # dP_drop = dO V^T; dS = (P_drop * dP_drop - P * D_i) * scale  (= P * (dP - D_i) * scale)
    gemm(dof, dims_p, 1, vtf, ld, tile, dsf, ld, tiled, width, dims_p, False)
    w = VECTOR_BYTES // qf.itemsize
    scales = vsplat(dsf, scale)
    for r in range(tiled):
        off = r * ld
        deltas = vsplat(dsf, delta[r] if r < rows else 0.0)
        for j in range(0, width, w):
            g = vsub(vmul(vload(pdf, off + j), vload(dsf, off + j)), vmul(vload(pf, off + j), deltas))
            vstore(dsf, off + j, vmul(g, scales))
    # dQ = dS K; dK += dS^T Q
    gemm(dsf, ld, 1, kpf, tile, width * tile, dqf, dims_p, tiled, dims_p, width, False)
    gemm(dsf, 1, ld, qf, dims_p, tile, dkf, dims_p, width, dims_p, tiled, True)


@numba.njit(**JIT)
def forward_buffers(like, block_rows, ld, dims_p):
    """One task's forward scratch in like's dtype: a block's q rows, scores and P V rows, and row sums (float64)."""
    t = like.dtype
    return (np.empty((block_rows, dims_p), t), np.empty((block_rows, ld), t), np.empty((block_rows, dims_p), t),
            np.empty(block_rows))


@numba.njit(**JIT)
def backward_buffers(like, block_rows, width, ld, dims_p, dropout):
    """One task's backward scratch in like's dtype: dK, dV accumulators (width, dims_p), a block's q, dO, dQ rows
    (block_rows, dims_p) and P, P_drop, dS rows (block_rows, ld; P_drop is P without dropout), D_i (float64)."""
    t = like.dtype
    pb = np.empty((block_rows, ld), dtype=t)
    return (np.zeros((width, dims_p), dtype=t), np.zeros((width, dims_p), dtype=t), np.empty((block_rows, dims_p), t),
            np.empty((block_rows, dims_p), t), np.empty((block_rows, dims_p), t), pb,
            np.empty((block_rows, ld), t) if dropout else pb, np.empty((block_rows, ld), t), np.empty(block_rows))


# ---- One (batch, head) at a time; the parallel drivers below give each task its own buffers ----
@numba.njit(**JIT)
def _forward_head(q, k, v, b, h, keys, n, zero_q, scale, key_lo, key_hi, threshold, keep_scale, dropout,
                  block_rows, out, lse):
    seq, dims = q.shape[2], q.shape[3]
    width, dims_p, ld = padded_widths(n, dims, q.itemsize)
    kf = _gather_keys(k, b, h, keys, n, width, ld, False)  # k^T: the scores stream its rows
    vf = _gather_keys(v, b, h, keys, n, width, ld, True)  # v in column panels for P V
    qb, sb, ob, norms = forward_buffers(q, block_rows, ld, dims_p)
    qf, sf, of = qb.ravel(), sb.ravel(), ob.ravel()
    for start in range(0, seq, block_rows):
        rows = min(block_rows, seq - start)
        _load_rows(q, b, h, start, rows, zero_q, qb)
        lo, hi = (key_lo[b, h, start:start + rows], key_hi[b, h, start:start + rows]) if dropout else (
            key_lo[0, 0, :0], key_hi[0, 0, :0])
        forward_block(qf, kf, vf, sf, of, norms, lse[b, h, start:start + rows], lo, hi, keys, n, rows, width, ld,
                      dims_p, scale, threshold, keep_scale, dropout)
        for r in range(rows):
            inv = 1.0 / norms[r]
            for d in range(dims):
                out[b, h, start + r, d] = ob[r, d] * inv


@numba.njit(**JIT)
def _backward_head(q, k, v, out, dout, lse, b, h, keys, n, zero_q, scale, key_lo, key_hi, threshold, keep_scale,
                   dropout, block_rows, dq, dk, dv):
    seq, dims = q.shape[2], q.shape[3]
    width, dims_p, ld = padded_widths(n, dims, q.itemsize)
    ktf = _gather_keys(k, b, h, keys, n, width, ld, False)  # k^T for the scores
    kpf = _gather_keys(k, b, h, keys, n, width, ld, True)  # k in column panels for dQ = dS k
    vtf = _gather_keys(v, b, h, keys, n, width, ld, False)  # v^T for dP = dO v^T
    dkc, dvc, qb, dob, dqb, pb, pdb, dsb, delta = backward_buffers(q, block_rows, width, ld, dims_p, dropout)
    qf, dof, dqf, pf, pdf, dsf = qb.ravel(), dob.ravel(), dqb.ravel(), pb.ravel(), pdb.ravel(), dsb.ravel()
    dkf, dvf = dkc.ravel(), dvc.ravel()
    for start in range(0, seq, block_rows):
        rows = min(block_rows, seq - start)
        _load_rows(q, b, h, start, rows, zero_q, qb)
        _load_rows(dout, b, h, start, rows, False, dob)
        for r in range(rows):  # D_i = rowsum(dO * O), FlashAttention-2's shortcut for sum_j P_ij dP_ij
            acc = 0.0
            for d in range(dims):
                acc += dout[b, h, start + r, d] * out[b, h, start + r, d]
            delta[r] = acc
        lo, hi = (key_lo[b, h, start:start + rows], key_hi[b, h, start:start + rows]) if dropout else (
            key_lo[0, 0, :0], key_hi[0, 0, :0])
        backward_block(qf, dof, dqf, pf, pdf, dsf, ktf, kpf, vtf, dkf, dvf, delta, lse[b, h, start:start + rows],
                       lo, hi, keys, n, rows, width, ld, dims_p, scale, threshold, keep_scale, dropout)
        for r in range(rows):
            for d in range(dims):
                dq[b, h, start + r, d] = 0.0 if zero_q else dqb[r, d]
    for jj in range(n):
        for d in range(dims):
            dk[b, h, keys[jj], d] = dkc[jj, d]
            dv[b, h, keys[jj], d] = dvc[jj, d]


@numba.njit(parallel=True, fastmath=False, cache=True)
def forward_heads(q, k, v, keys, counts, zero_q, scale, key_lo, key_hi, threshold, keep_scale, dropout, block_rows,
                  out, lse):
    heads = q.shape[1]
    for task in prange(q.shape[0] * heads):
        b, h = task // heads, task % heads
        _forward_head(q, k, v, b, h, keys[b], counts[b], zero_q[b] != 0, scale, key_lo, key_hi, threshold,
                      keep_scale, dropout, block_rows, out, lse)


@numba.njit(parallel=True, fastmath=False, cache=True)
def backward_heads(q, k, v, out, dout, lse, keys, counts, zero_q, scale, key_lo, key_hi, threshold, keep_scale,
                   dropout, block_rows, dq, dk, dv):
    heads = q.shape[1]
    for task in prange(q.shape[0] * heads):
        b, h = task // heads, task % heads
        _backward_head(q, k, v, out, dout, lse, b, h, keys[b], counts[b], zero_q[b] != 0, scale, key_lo, key_hi,
                       threshold, keep_scale, dropout, block_rows, dq, dk, dv)


# ---- Python entry points (NumPy arrays in, NumPy arrays out) ----
def _key_layout(key_padding_mask, batch: int, seq: int, tile: int):
    """Per batch row: the real key positions (int32, padded to whole tiles), their count, and whether the row
    has no real key at all (then, as the reference, every key gets the same probability)."""
    width = -(-seq // tile) * tile
    keys = np.zeros((batch, width), dtype=np.int32)
    counts = np.full(batch, seq, dtype=np.int32)
    no_keys = np.zeros(batch, dtype=np.uint8)
    if key_padding_mask is None:
        keys[:, :seq] = np.arange(seq, dtype=np.int32)
        return keys, counts, no_keys
    real = np.asarray(key_padding_mask) != 0
    if real.shape != (batch, seq):
        raise ValueError(f"key_padding_mask has shape {real.shape}; attention over q of batch {batch} and seq {seq} "
                         f"needs ({batch}, {seq}), 1 for real tokens and 0 for padding")
    for b in range(batch):
        where = np.flatnonzero(real[b]) if real[b].any() else np.arange(seq)
        keys[b, :len(where)] = where
        counts[b] = len(where)
        no_keys[b] = not real[b].any()
    return keys, counts, no_keys


def dropout_keys(seed: int, shape, dropout_p: float):
    """The dropout row keys' halves shaped `shape` (int64, dropout_rng.py), the threshold and the keep scale;
    one-element placeholders without dropout."""
    if dropout_p <= 0:
        empty = np.zeros((1,) * len(shape), dtype=np.int64)
        return empty, empty, 0, 1.0
    lo, hi = (half.reshape(shape) for half in row_key_halves(seed, math.prod(shape)))
    return lo, hi, keep_threshold(dropout_p), 1.0 / (1.0 - dropout_p)


def _signature(kind: str, dtype):
    """The one signature per dtype: float inputs of any strides, read-only allowed; outputs C-ordered."""
    t = numba.from_dtype(np.dtype(dtype))
    given = [types.Array(t, 4, "A", readonly=True)] * (3 if kind == "forward" else 5)
    if kind == "backward":
        given.append(types.Array(t, 3, "A", readonly=True))  # lse
    layout = [types.int32[:, ::1], types.int32[::1], types.uint8[::1], types.float64, types.int64[:, :, ::1],
              types.int64[:, :, ::1], types.int64, types.float64, types.boolean, types.int64]
    made = [t[:, :, :, ::1], t[:, :, ::1]] if kind == "forward" else [t[:, :, :, ::1]] * 3
    return types.void(*given, *layout, *made)


# A failed cache save (processes racing on one index) must not fail the call: see numba_cache.py.
tolerate_cache_failures(*[f for f in list(globals().values()) if isinstance(f, Dispatcher)])

_ready: set = set()


def compiled(kernel, signature, kind: str, dtype):
    """The kernel, compiled (or loaded from the cache) once per (kind, dtype) for signature(kind, dtype), whose
    arrays take any strides: contiguous and transposed inputs share one machine-code version instead of one each."""
    if not numba.config.DISABLE_JIT and (kernel, kind, dtype) not in _ready:
        kernel.disable_compile(False)
        kernel.compile(signature(kind, dtype))
        kernel.disable_compile(True)
        _ready.add((kernel, kind, dtype))
    return kernel


@contextlib.contextmanager
def one_head_per_chunk():
    """prange hands out one (batch, head) at a time instead of equal halves up front, so heads with more real
    keys, or a core busy with another process, do not leave the other threads idle at the end. (Set from
    Python: calling it inside the kernel would stop numba from caching it.)"""
    previous = numba.set_parallel_chunksize(1)
    try:
        yield
    finally:
        numba.set_parallel_chunksize(previous)


def block_rows_for(seq: int, itemsize: int) -> int:
    fit = BLOCK_BYTES // (seq * itemsize) // TILE_ROWS * TILE_ROWS
    return max(TILE_ROWS, min(BLOCK_ROWS, fit, -(-seq // TILE_ROWS) * TILE_ROWS))


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, key_padding_mask=None, dropout_p: float = 0.0,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """softmax(q k^T / sqrt(d), padded keys left out) (dropout) v, and the per-row logsumexp.

    q, k, v: (batch, heads, seq, head_dim), float32 or float64 (any strides); key_padding_mask: (batch, seq),
    nonzero for real tokens, or None; seed: picks the dropout mask. Returns out (batch, heads, seq, head_dim)
    and lse (batch, heads, seq) of the scaled scores, which is all backward needs.
    """
    batch, heads, seq, dims = q.shape
    keys, counts, no_keys = _key_layout(key_padding_mask, batch, seq, 2 * lanes_of(q.dtype))
    lo, hi, threshold, keep_scale = dropout_keys(seed, (batch, heads, seq), dropout_p)
    out = np.empty(q.shape, dtype=q.dtype)
    lse = np.empty((batch, heads, seq), dtype=q.dtype)
    forward = compiled(forward_heads, _signature, "forward", q.dtype)
    with one_head_per_chunk():
        forward(q, k, v, keys, counts, no_keys, 1.0 / math.sqrt(dims), lo, hi, threshold, keep_scale, dropout_p > 0,
                block_rows_for(seq, q.itemsize), out, lse)
    return out, lse


def attention_backward(dout: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, out: np.ndarray,
                       lse: np.ndarray, key_padding_mask=None, dropout_p: float = 0.0,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dq, dk, dv) of the forward above, given dout = dL/d out and forward's out and lse.

    Same mask, dropout_p and seed as the forward call; padded keys get zero dk and dv.
    """
    batch, heads, seq, dims = q.shape
    keys, counts, no_keys = _key_layout(key_padding_mask, batch, seq, 2 * lanes_of(q.dtype))
    lo, hi, threshold, keep_scale = dropout_keys(seed, (batch, heads, seq), dropout_p)
    dq = np.empty(q.shape, dtype=q.dtype)
    dk = np.zeros(q.shape, dtype=q.dtype)
    dv = np.zeros(q.shape, dtype=q.dtype)
    backward = compiled(backward_heads, _signature, "backward", q.dtype)
    with one_head_per_chunk():
        backward(q, k, v, out, dout, lse, keys, counts, no_keys, 1.0 / math.sqrt(dims), lo, hi, threshold,
                 keep_scale, dropout_p > 0, block_rows_for(seq, q.itemsize), dq, dk, dv)
    return dq, dk, dv

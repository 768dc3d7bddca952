"""Attention's softmax on the GPU (numba-cuda), between the two batched GEMMs the caller runs with xp.matmul
(cuBLAS on a GPU, tensor cores in fp16): Megatron's fused scaled_masked_softmax, with the dropout inside.

    forward    scores  = q @ k^T                                           caller, batched GEMM
               probs   = softmax(scale * scores, padded keys at -inf)      softmax_dropout_forward
               dropped = probs * keep / (1 - p)                            same kernel, same pass
               out     = dropped @ v                                       caller
    backward   g_dropped = gout @ v^T                                      caller
               g_scores  = scale * probs * (dP - rowsum(dP * probs)),  dP = g_dropped * keep / (1 - p)
               dropped   (rebuilt, for g_v = dropped^T @ gout)             softmax_dropout_backward, one pass
               g_q = g_scores @ k,  g_k = g_scores^T @ q                   caller

One warp per row of scores: a lane holds its columns (lane, lane + 32, ...) in registers, 16 of them, so rows of
up to 512 keys; the row's max and sum are fp32 warp shuffles (reduce_cuda). Only probs is kept for backward: the
dropout mask is dropout_rng.py's hash of (seed, row, column) (dropout_cuda), rebuilt there, with dropout_rng's
rows, so a seed drops what the reference and the CPU kernels drop: padded row (b, h, i) is row
(b * heads + h) * seq + i, column j its key; packed row (t, h) is row t * heads + h, column j the key's position
in its sequence. A row whose keys are all padding attends uniformly to every key and passes no gradient to its
scores, as attention_reference.py defines it. The ops' CudaAttention and CudaVarlenAttention
(minitransfer/ops/attention.py, varlen_attention.py) run the GEMMs around these launchers.

Packed ("varlen") scores: sequence s of cu_seqlens (lengths L_s) has its (heads, L_s, L_s) scores at offset
heads * sum_{s' < s} L_s'^2 of one flat buffer (`varlen_score_offsets`), so the caller runs one batched GEMM per
sequence into views of it and the kernel covers them all in one launch.

Inputs float32 or float16 (computed in fp32; probs and dropped stored in the scores' dtype). Per element:
forward reads 2-4 bytes and writes 2-4 (probs) + 2-4 (dropped, when p > 0), ~6 FLOPs and one exp; backward reads
two and writes two. (32, 12, 384, 384) in fp16 is 57 M elements: ~340 MB forward and ~450 MB back, ~0.1 ms each
at 3-4 TB/s, against 14.5 GFLOP of GEMMs. Debugging: NUMBA_ENABLE_CUDASIM=1 runs the kernels as Python threads.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32, int64

from .arrays_cuda import WARPS_PER_BLOCK, contiguous, empty, per_row
from .dropout_cuda import dropout_words, keeps, row_key
from .reduce_cuda import warp_max, warp_sum

COLUMNS_PER_LANE = 16
MAX_KEYS = 32 * COLUMNS_PER_LANE  # 512, BERT's longest sequence
_ALL_REAL = (1 << COLUMNS_PER_LANE) - 1
_NEG_INF = float32(-math.inf)


@cuda.jit(device=True)
def _real_columns(mask, mask_row, n, lane):
    """Bit t set when key lane + 32 t is real (mask nonzero); mask None: every key is real."""
    if mask is None:
        return _ALL_REAL
    bits = 0
    for t in range(COLUMNS_PER_LANE):
        j = lane + 32 * t
        if j < n and mask[mask_row, j] != 0:
            bits |= 1 << t
    return bits


@cuda.jit(device=True)
def _softmax_row(scores, probs, dropped, base, n, real, scale, key, threshold, keep_scale):
    """probs[base:base + n] = softmax of scale * scores there (keys not in `real` at -inf), and dropped = probs
    with the dropout of row `key` (dropped None: no dropout). n = 0: a warp past the last row, which only joins
    the shuffles."""
    lane = cuda.threadIdx.x % 32
    uniform = warp_max(real) == 0  # no real key in the row: every key gets the same probability
    values = cuda.local.array(COLUMNS_PER_LANE, float32)
    top = _NEG_INF
    for t in range(COLUMNS_PER_LANE):
        j = lane + 32 * t
        v = _NEG_INF
        if j < n:
            if uniform:
                v = float32(0.0)
            elif real & (1 << t):
                v = float32(scores[base + j]) * scale
        values[t] = v
        top = max(top, v)
    top = warp_max(top)
    total = float32(0.0)
    for t in range(COLUMNS_PER_LANE):
        e = float32(0.0)
        if lane + 32 * t < n and values[t] > _NEG_INF:
            e = float32(math.exp(values[t] - top))
        values[t] = e
        total += e
    total = warp_sum(total)
    inv = float32(1.0) / total if total > 0 else float32(0.0)
    for t in range(COLUMNS_PER_LANE):
        j = lane + 32 * t
        if j < n:
            p = values[t] * inv
            probs[base + j] = p
            if dropped is not None:
                dropped[base + j] = p * keep_scale if keeps(j, key, threshold) else float32(0.0)


@cuda.jit(device=True)
def _softmax_row_backward(grad, probs, grad_scores, dropped, base, n, real, scale, key, threshold, keep_scale):
    """grad_scores[base:base + n] from grad (d loss / d dropped) and probs; dropped rebuilt from probs (None: no
    dropout)."""
    lane = cuda.threadIdx.x % 32
    uniform = warp_max(real) == 0  # constant scores: nothing flows back to q or k
    gp = cuda.local.array(COLUMNS_PER_LANE, float32)
    pp = cuda.local.array(COLUMNS_PER_LANE, float32)
    dot = float32(0.0)
    for t in range(COLUMNS_PER_LANE):
        j = lane + 32 * t
        g = float32(0.0)
        p = float32(0.0)
        if j < n:
            p = float32(probs[base + j])
            g = float32(grad[base + j])
            if dropped is not None:
                kept = keeps(j, key, threshold)
                g = g * keep_scale if kept else float32(0.0)
                dropped[base + j] = p * keep_scale if kept else float32(0.0)
        gp[t] = g
        pp[t] = p
        dot += g * p
    dot = warp_sum(dot)
    for t in range(COLUMNS_PER_LANE):
        j = lane + 32 * t
        if j < n:
            grad_scores[base + j] = float32(0.0) if uniform else scale * pp[t] * (gp[t] - dot)


@cuda.jit(device=True)
def _packed_row(cu_seqlens, row, heads):
    """(where packed row (t, h) = (row // heads, row % heads) starts in the flat scores, its sequence's length);
    (0, 0) for a row past the last token."""
    t, h = row // heads, row % heads
    offset = 0
    for s in range(cu_seqlens.shape[0] - 1):
        start, end = int64(cu_seqlens[s]), int64(cu_seqlens[s + 1])
        length = end - start
        if t < end:
            return offset + (h * length + t - start) * length, length
        offset += heads * length * length
    return 0, 0


@cuda.jit
def _padded_forward(scores, mask, rows_per_batch, rows, seq_k, scale, seed, threshold, keep_scale, probs, dropped):
    row = cuda.blockIdx.x * WARPS_PER_BLOCK + cuda.threadIdx.x // 32
    n = seq_k if row < rows else 0
    real = _real_columns(mask, row // rows_per_batch, n, cuda.threadIdx.x % 32)
    _softmax_row(scores, probs, dropped, row * seq_k, n, real, scale, row_key(seed, row), threshold, keep_scale)


@cuda.jit
def _padded_backward(grad, probs, mask, rows_per_batch, rows, seq_k, scale, seed, threshold, keep_scale, grad_scores,
                     dropped):
    row = cuda.blockIdx.x * WARPS_PER_BLOCK + cuda.threadIdx.x // 32
    n = seq_k if row < rows else 0
    real = _real_columns(mask, row // rows_per_batch, n, cuda.threadIdx.x % 32)
    _softmax_row_backward(grad, probs, grad_scores, dropped, row * seq_k, n, real, scale, row_key(seed, row),
                          threshold, keep_scale)


@cuda.jit
def _packed_forward(scores, cu_seqlens, heads, scale, seed, threshold, keep_scale, probs, dropped):
    row = cuda.blockIdx.x * WARPS_PER_BLOCK + cuda.threadIdx.x // 32
    base, n = _packed_row(cu_seqlens, row, heads)
    _softmax_row(scores, probs, dropped, base, n, _ALL_REAL, scale, row_key(seed, row), threshold, keep_scale)


@cuda.jit
def _packed_backward(grad, probs, cu_seqlens, heads, scale, seed, threshold, keep_scale, grad_scores, dropped):
    row = cuda.blockIdx.x * WARPS_PER_BLOCK + cuda.threadIdx.x // 32
    base, n = _packed_row(cu_seqlens, row, heads)
    _softmax_row_backward(grad, probs, grad_scores, dropped, base, n, _ALL_REAL, scale, row_key(seed, row),
                          threshold, keep_scale)


def _check_keys(seq_k: int) -> None:
    if seq_k > MAX_KEYS:
        raise ValueError(f"the fused softmax takes rows of at most {MAX_KEYS} keys; got {seq_k}")


def softmax_dropout_forward(scores, scale: float, key_padding_mask=None, dropout_p: float = 0.0, seed: int = 0):
    """(probs, dropped) of scores (batch, heads, seq, seq_k), both of scores' shape and dtype.

    key_padding_mask: (batch, seq_k), nonzero for real keys, or None. dropped is probs itself when dropout_p is 0.
    Keep probs for softmax_dropout_backward; dropped is only for the P V product.
    """
    batch, heads, seq, seq_k = scores.shape
    _check_keys(seq_k)
    flat = contiguous(scores).reshape(-1)
    probs = empty(scores, flat.shape, scores.dtype)
    dropped = empty(scores, flat.shape, scores.dtype) if dropout_p > 0 else None
    mask = None if key_padding_mask is None else contiguous(key_padding_mask)
    rows = batch * heads * seq
    _padded_forward[per_row(rows, scores)](flat, mask, heads * seq, rows, seq_k, np.float32(scale),
                                           *dropout_words(seed, dropout_p), probs, dropped)
    probs = probs.reshape(scores.shape)
    return probs, probs if dropped is None else dropped.reshape(scores.shape)


def softmax_dropout_backward(grad_dropped, probs, scale: float, key_padding_mask=None, dropout_p: float = 0.0,
                             seed: int = 0):
    """(grad_scores, dropped) from d loss / d dropped and forward's probs (same mask, dropout_p, seed).

    grad_scores is d loss / d scores (scale included); dropped is forward's, rebuilt (probs itself when p is 0).
    """
    batch, heads, seq, seq_k = probs.shape
    grad = contiguous(grad_dropped).reshape(-1)
    flat = contiguous(probs).reshape(-1)
    grad_scores = empty(probs, flat.shape, probs.dtype)
    dropped = empty(probs, flat.shape, probs.dtype) if dropout_p > 0 else None
    mask = None if key_padding_mask is None else contiguous(key_padding_mask)
    rows = batch * heads * seq
    _padded_backward[per_row(rows, probs)](grad, flat, mask, heads * seq, rows, seq_k, np.float32(scale),
                                           *dropout_words(seed, dropout_p), grad_scores, dropped)
    return grad_scores.reshape(probs.shape), probs if dropped is None else dropped.reshape(probs.shape)


def varlen_score_offsets(cu_seqlens, heads: int) -> np.ndarray:
    """(n_seqs + 1,) int64: where each sequence's (heads, L, L) scores start in the flat buffer; the last entry
    is the buffer's length. cu_seqlens: host offsets (NumPy), as ops.varlen_attention checks them."""
    lengths = np.diff(np.asarray(cu_seqlens, dtype=np.int64))
    return np.concatenate([[0], np.cumsum(heads * lengths * lengths)])


def varlen_softmax_dropout_forward(scores, cu_seqlens, tokens: int, heads: int, scale: float,
                                   dropout_p: float = 0.0, seed: int = 0):
    """(probs, dropped) for packed scores: flat (offsets[-1],) as `varlen_score_offsets` lays them out.

    cu_seqlens: (n_seqs + 1,) int offsets on the device (or NumPy under the simulator), ending at `tokens` (passed
    on its own so the launcher never reads device memory back). No padding mask: each sequence attends to itself.
    Sequences of at most 512 tokens (the caller checks: the lengths are on the device here). dropped is probs itself
    when dropout_p is 0.
    """
    probs = empty(scores, scores.shape, scores.dtype)
    dropped = empty(scores, scores.shape, scores.dtype) if dropout_p > 0 else None
    _packed_forward[per_row(tokens * heads, scores)](scores, cu_seqlens, heads, np.float32(scale),
                                                     *dropout_words(seed, dropout_p), probs, dropped)
    return probs, probs if dropped is None else dropped


def varlen_softmax_dropout_backward(grad_dropped, probs, cu_seqlens, tokens: int, heads: int, scale: float,
                                    dropout_p: float = 0.0, seed: int = 0):
    """(grad_scores, dropped) for packed scores, as softmax_dropout_backward."""
    grad_scores = empty(probs, probs.shape, probs.dtype)
    dropped = empty(probs, probs.shape, probs.dtype) if dropout_p > 0 else None
    _packed_backward[per_row(tokens * heads, probs)](grad_dropped, probs, cu_seqlens, heads, np.float32(scale),
                                                     *dropout_words(seed, dropout_p), grad_scores, dropped)
    return grad_scores, probs if dropped is None else dropped


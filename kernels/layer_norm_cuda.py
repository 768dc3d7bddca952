"""LayerNorm on the GPU (numba-cuda), forward and backward with the weight and bias gradients summed inside; its
kernels also make the end of every BERT sub-block (residual_layer_norm_cuda.py: bias + dropout + residual first).

    out = (x - mean(x)) * rstd * weight + bias,   rstd = 1 / sqrt(var(x) + eps)   (biased variance, as torch)
    backward, from g = d loss / d out, with xhat = (x - mean) * rstd:
    g_x = rstd * (g w - mean(g w) - xhat * mean(g w xhat)),  g_weight = sum_rows(g * xhat),  g_bias = sum_rows(g)

Forward is one warp per row (row statistics by warp shuffles, fp32, two passes over the row for the variance);
it writes out and the per-row mean and rstd (float32). Backward is two launches and a sum: the row kernel (one
warp per row) writes g_x (and, for the residual block, its dropout); the column kernel (one thread per column
and block of 32 rows) writes partial rows of the gradient sums, which reduce_cuda.column_sums adds up (no
atomics: the same sums on every run). The interface and math are layer_norm_reference.py's (the reference, which
the tests compare with; ops CudaLayerNorm runs these). float32 or float16 storage, fp32 arithmetic.

FLOPs/bytes per element: forward ~8 FLOPs, reads x twice and writes out; backward ~15 FLOPs, reads g and x
twice and writes g_x. BERT-base, (32 * 384, 768) in fp16: ~28 MB forward, ~47 MB back.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from .arrays_cuda import WARPS_PER_BLOCK, contiguous, empty, per_column, per_row
from .dropout_cuda import dropout_words, keeps, row_key
from .reduce_cuda import ROWS_PER_CHUNK, chunks_of, column_sums, warp_sum


@cuda.jit(device=True)
def _normalized_input(x, s, row, j):
    """The row LayerNorm normalizes: s when the kernel made it, else the input x itself."""
    if s is None:
        return float32(x[row, j])
    return float32(s[row, j])


@cuda.jit
def normalize_rows(y, bias, residual, weight, ln_bias, eps, seed, threshold, keep_scale, dropout, s, out, mean, rstd):
    rows, n = y.shape
    row = cuda.blockIdx.x * WARPS_PER_BLOCK + cuda.threadIdx.x // 32
    lane = cuda.threadIdx.x % 32
    width = n if row < rows else 0  # a warp past the last row only joins the shuffles
    key = row_key(seed, row)
    total = float32(0.0)
    for j in range(lane, width, 32):
        if s is not None:
            z = float32(y[row, j])
            if bias is not None:
                z += float32(bias[j])
            if dropout:
                z = z * keep_scale if keeps(j, key, threshold) else float32(0.0)
            if residual is not None:
                z += float32(residual[row, j])
            s[row, j] = z
        total += _normalized_input(y, s, row, j)  # as stored: the statistics of the row backward will read
    m = warp_sum(total) / float32(n)
    squares = float32(0.0)
    for j in range(lane, width, 32):
        d = _normalized_input(y, s, row, j) - m
        squares += d * d
    r = float32(1.0) / float32(math.sqrt(warp_sum(squares) / float32(n) + eps))
    for j in range(lane, width, 32):
        out[row, j] = (_normalized_input(y, s, row, j) - m) * r * float32(weight[j]) + float32(ln_bias[j])
    if lane == 0 and row < rows:
        mean[row] = m
        rstd[row] = r


@cuda.jit
def backward_rows(g, x, weight, mean, rstd, seed, threshold, keep_scale, g_x, g_dropped):
    """g_x = d loss / d x (x: s, or the plain LayerNorm's input); g_dropped = dropout(g_x), or None."""
    rows, n = x.shape
    row = cuda.blockIdx.x * WARPS_PER_BLOCK + cuda.threadIdx.x // 32
    lane = cuda.threadIdx.x % 32
    width = n if row < rows else 0
    m = float32(mean[row]) if row < rows else float32(0.0)
    r = float32(rstd[row]) if row < rows else float32(0.0)
    sum_g = float32(0.0)
    sum_gx = float32(0.0)
    for j in range(lane, width, 32):
        gw = float32(g[row, j]) * float32(weight[j])
        sum_g += gw
        sum_gx += gw * (float32(x[row, j]) - m) * r
    mean_g = warp_sum(sum_g) / float32(n)
    mean_gx = warp_sum(sum_gx) / float32(n)
    key = row_key(seed, row)
    for j in range(lane, width, 32):
        xhat = (float32(x[row, j]) - m) * r
        v = r * (float32(g[row, j]) * float32(weight[j]) - mean_g - xhat * mean_gx)
        g_x[row, j] = v
        if g_dropped is not None:
            g_dropped[row, j] = v * keep_scale if keeps(j, key, threshold) else float32(0.0)


@cuda.jit
def backward_columns(g, x, mean, rstd, g_input, partials):
    """partials[c] = block c's sums of g * xhat, g and (unless None) g_input, side by side: (chunks, 2n or 3n)."""
    rows, n = x.shape
    j = cuda.grid(1)
    chunk = cuda.blockIdx.y
    if j < n:
        sum_gx = float32(0.0)
        sum_g = float32(0.0)
        sum_input = float32(0.0)
        for r in range(chunk * ROWS_PER_CHUNK, min(rows, (chunk + 1) * ROWS_PER_CHUNK)):
            gr = float32(g[r, j])
            sum_gx += gr * (float32(x[r, j]) - float32(mean[r])) * float32(rstd[r])
            sum_g += gr
            if g_input is not None:
                sum_input += float32(g_input[r, j])
        partials[chunk, j] = sum_gx
        partials[chunk, n + j] = sum_g
        if g_input is not None:
            partials[chunk, 2 * n + j] = sum_input


def _rows(x):
    return contiguous(x).reshape(-1, x.shape[-1])


def normalize(y, bias, residual, weight, ln_bias, eps, p, seed, fused):
    """(out, s or None, mean, rstd): LayerNorm of y (fused=False; bias and residual None, p 0) or of
    s = dropout(y + bias, p, seed) + residual (fused=True), which is returned for backward."""
    y2 = _rows(y)
    rows, n = y2.shape
    out = empty(y, y2.shape, y.dtype)
    s = empty(y, y2.shape, y.dtype) if fused else None
    mean, rstd = empty(y, (rows,), np.float32), empty(y, (rows,), np.float32)
    normalize_rows[per_row(rows, y)](
        y2, bias, None if residual is None else _rows(residual), weight, ln_bias, np.float32(eps),
        *dropout_words(seed, p), p > 0, s, out, mean, rstd)
    return out.reshape(y.shape), (s.reshape(y.shape) if fused else None), mean, rstd


def gradients(g, x, weight, mean, rstd, p, seed, fused):
    """(g_x, g_dropped or None, sums (2 or 3, n)) for a LayerNorm whose normalized input was x; sums are
    (g_weight, g_bias) and, when fused, the sum of g_dropped (or g_x at p = 0): the residual block's g_bias."""
    x2 = _rows(x)
    g2 = _rows(g)
    rows, n = x2.shape
    g_x = empty(x, x2.shape, x.dtype)
    g_dropped = empty(x, x2.shape, x.dtype) if p > 0 else None
    seed_word, threshold, keep_scale = dropout_words(seed, p)
    backward_rows[per_row(rows, x)](g2, x2, weight, mean, rstd, seed_word, threshold, keep_scale, g_x, g_dropped)
    g_input = (g_x if g_dropped is None else g_dropped) if fused else None
    partials = empty(x, (chunks_of(rows), (3 if fused else 2) * n), np.float32)
    backward_columns[per_column(n, partials.shape[0], x)](g2, x2, mean, rstd, g_input, partials)
    return g_x, g_dropped, column_sums(partials, weight.dtype).reshape(-1, n)


def layer_norm_forward(x, weight, bias, eps: float):
    """x: (..., n); weight, bias: (n,). Returns (y of x's shape and dtype, mean (rows,), rstd (rows,) float32)."""
    out, _, mean, rstd = normalize(x, None, None, weight, bias, eps, 0.0, 0, fused=False)
    return out, mean, rstd


def layer_norm_backward(x, gy, weight, mean, rstd):
    """Gradients (gx of x's shape, gweight (n,), gbias (n,)) from forward's saved mean and rstd."""
    gx, _, sums = gradients(gy, x, weight, mean, rstd, 0.0, 0, fused=False)
    return gx.reshape(x.shape), sums[0], sums[1]

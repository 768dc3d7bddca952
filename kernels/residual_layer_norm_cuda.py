"""The end of every BERT sub-block on the GPU (numba-cuda): bias + dropout + residual + LayerNorm, and plain
LayerNorm, forward and backward with the bias, weight and ln-bias gradients summed inside.

    s   = dropout(y + bias) + residual          y: the Linear's GEMM output (rows, n), bias: that Linear's bias
    out = (s - mean(s)) * rstd * weight + ln_bias,   rstd = 1 / sqrt(var(s) + eps)   (biased variance, as torch)
    backward, from g = d loss / d out, with xhat = (s - mean) * rstd:
    g_s = rstd * (g w - mean(g w) - xhat * mean(g w xhat)),  g_residual = g_s,  g_y = dropout(g_s) (same mask),
    g_bias = sum_rows(g_y),  g_weight = sum_rows(g * xhat),  g_ln_bias = sum_rows(g)

Forward is one warp per row (row statistics by warp shuffles, fp32, two passes over the row for the variance);
it writes s (kept for backward, as the CPU kernel does) and the per-row mean and rstd. Backward is two launches
and a sum: the row kernel (one warp per row) writes g_s and g_y; the column kernel (one thread per column and
block of 32 rows) writes partial rows of the three gradient sums, which reduce_cuda.column_sums adds up. Dropout
is the project's hash (dropout_cuda) over the (rows, n) view, row = token row, column = hidden index: rebuilt in
backward, never stored. Plain LayerNorm is the same kernels without bias, dropout, residual and s.
As kernels/residual_layer_norm_cpu.py and layer_norm_cpu.py; `reference_forward` / `reference_backward` are
the NumPy compositions the tests compare with. float32 or float16 storage, fp32 arithmetic.

FLOPs/bytes per element: forward ~10 FLOPs, reads y, residual (+ s once more) and writes s and out: 5 x 2-4 bytes;
backward ~15 FLOPs, reads g and s twice and writes g_s and g_y: 6 x 2-4 bytes. BERT-base, (32 * 384, 768) in fp16:
~47 MB forward, ~57 MB back.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from .arrays_cuda import WARPS_PER_BLOCK, contiguous, empty, per_column, per_row
from .dropout_cuda import dropout_words, keeps, reference_keep_mask, row_key
from .layer_norm_cpu import layer_norm_reference_backward, layer_norm_reference_forward
from .reduce_cuda import ROWS_PER_CHUNK, chunks_of, column_sums, warp_sum


@cuda.jit(device=True)
def _normalized_input(x, s, row, j):
    """The row LayerNorm normalizes: s when the kernel made it, else the input x itself."""
    if s is None:
        return float32(x[row, j])
    return float32(s[row, j])


@cuda.jit
def _forward(y, bias, residual, weight, ln_bias, eps, seed, threshold, keep_scale, dropout, s, out, mean, rstd):
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
def _backward_rows(g, x, weight, mean, rstd, seed, threshold, keep_scale, g_x, g_dropped):
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
def _backward_columns(g, x, mean, rstd, g_input, partials):
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


def _normalize(y, bias, residual, weight, ln_bias, eps, p, seed, fused):
    y2 = _rows(y)
    rows, n = y2.shape
    out = empty(y, y2.shape, y.dtype)
    s = empty(y, y2.shape, y.dtype) if fused else None
    mean, rstd = empty(y, (rows,), np.float32), empty(y, (rows,), np.float32)
    _forward[per_row(rows, y)](
        y2, bias, None if residual is None else _rows(residual), weight, ln_bias, np.float32(eps),
        *dropout_words(seed, p), p > 0, s, out, mean, rstd)
    return out.reshape(y.shape), (s.reshape(y.shape) if fused else None), mean, rstd


def _gradients(g, x, weight, mean, rstd, p, seed, fused):
    """(g_x, g_dropped or None, sums (2 or 3, n)) for a LayerNorm whose normalized input was x."""
    x2 = _rows(x)
    g2 = _rows(g)
    rows, n = x2.shape
    g_x = empty(x, x2.shape, x.dtype)
    g_dropped = empty(x, x2.shape, x.dtype) if p > 0 else None
    seed_word, threshold, keep_scale = dropout_words(seed, p)
    _backward_rows[per_row(rows, x)](g2, x2, weight, mean, rstd, seed_word, threshold, keep_scale, g_x, g_dropped)
    g_input = (g_x if g_dropped is None else g_dropped) if fused else None
    partials = empty(x, (chunks_of(rows), (3 if fused else 2) * n), np.float32)
    _backward_columns[per_column(n, partials.shape[0], x)](g2, x2, mean, rstd, g_input, partials)
    return g_x, g_dropped, column_sums(partials, weight.dtype).reshape(-1, n)


def residual_layer_norm_forward(y, bias, residual, weight, ln_bias, eps: float, p: float = 0.0, seed: int = 0):
    """y, residual: (..., n); bias, weight, ln_bias: (n,). Returns (out, s, mean, rstd): out and s of y's shape and
    dtype, mean and rstd float32 (rows,), which the backward takes. p: dropout rate on y + bias (0: none)."""
    return _normalize(y, bias, residual, weight, ln_bias, eps, p, seed, fused=True)


def residual_layer_norm_backward(g, s, weight, mean, rstd, p: float = 0.0, seed: int = 0):
    """Gradients (g_y, g_bias, g_residual, g_weight, g_ln_bias) from forward's s, mean, rstd and seed.
    g_y is g_residual itself when p == 0 (the same values; one array fewer)."""
    g_s, g_dropped, sums = _gradients(g, s, weight, mean, rstd, p, seed, fused=True)
    g_y = g_s if g_dropped is None else g_dropped
    return g_y.reshape(s.shape), sums[2], g_s.reshape(s.shape), sums[0], sums[1]


def layer_norm_forward(x, weight, bias, eps: float):
    """x: (..., n); weight, bias: (n,). Returns (y of x's shape and dtype, mean (rows,), rstd (rows,))."""
    out, _, mean, rstd = _normalize(x, None, None, weight, bias, eps, 0.0, 0, fused=False)
    return out, mean, rstd


def layer_norm_backward(x, gy, weight, mean, rstd):
    """Gradients (gx of x's shape, gweight (n,), gbias (n,)) from forward's saved mean and rstd."""
    gx, _, sums = _gradients(gy, x, weight, mean, rstd, 0.0, 0, fused=False)
    return gx.reshape(x.shape), sums[0], sums[1]


# ---- NumPy references (tests) ----
def _dropout_reference(z, p, seed):
    n = z.shape[-1]
    keep = reference_keep_mask(seed, z.size // n, n, p).reshape(z.shape)
    return np.where(keep, z * (1.0 / (1.0 - p)), 0.0)


def reference_forward(y, bias, residual, weight, ln_bias, eps, p=0.0, seed=0):
    """(out, s) in float64: LayerNorm(dropout(y + bias) + residual), with the kernels' dropout mask."""
    z = y.astype(np.float64) + bias
    s = (_dropout_reference(z, p, seed) if p > 0 else z) + residual
    return layer_norm_reference_forward(s, weight.astype(np.float64), ln_bias.astype(np.float64), eps), s


def reference_backward(g, s, weight, eps, p=0.0, seed=0):
    """(g_y, g_bias, g_residual, g_weight, g_ln_bias) in float64 from g and the pre-norm sum s."""
    g_s, g_weight, g_ln_bias = layer_norm_reference_backward(s.astype(np.float64), g.astype(np.float64),
                                                            weight.astype(np.float64), eps)
    g_y = _dropout_reference(g_s, p, seed) if p > 0 else g_s
    return g_y, g_y.reshape(-1, s.shape[-1]).sum(axis=0), g_s, g_weight, g_ln_bias

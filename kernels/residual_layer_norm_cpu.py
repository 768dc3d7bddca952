"""The end of every BERT sub-block in one pass each way (numba, two threads over blocks of rows):

    s   = dropout(y + bias) + residual          y: the Linear's GEMM output, bias: that Linear's bias
    out = (s - mean(s)) * rstd * weight + ln_bias,   rstd = 1 / sqrt(var(s) + eps)

backward, from g = d loss / d out (layer_norm_cpu.py's own row steps compute out and gs = d loss / d s):

    g_residual = gs,  g_y = dropout(gs) (same mask, same scale),  g_bias = sum_rows(g_y),
    g_weight = sum_rows(g * shat),  g_ln_bias = sum_rows(g)

The composition it replaces (bias add, dropout, residual add, LayerNorm) makes four passes forward and four back
over (rows, hidden) and allocates an array at each; here forward reads y and the residual and writes s and out,
and backward reads g and s and writes g_residual and g_y. Saved for backward: s and the per-row mean and rstd (the
composition keeps s too, as LayerNorm's input), and the dropout seed: the mask is dropout_rng.py's over (rows,
hidden), regenerated in backward. Reference: residual_layer_norm_reference.py (same interface, same mask).

Per call on R rows of N: forward ~11 R N FLOPs (+ the hash with dropout), 4 R N * itemsize bytes (y, residual in;
s, out written); backward ~18 R N FLOPs, 4 R N * itemsize bytes (g, s in; g_residual, g_y out; 3 R N without
dropout, where g_y is g_residual). Row statistics in float64; gradient sums over rows go to one partial row per
block, added by NumPy afterwards. float32 and float64; NUMBA_DISABLE_JIT=1 runs it as Python.
"""
from __future__ import annotations

import numba
import numpy as np

from .dropout_rng import keep_threshold, row_key_halves
from .layer_norm_cpu import backward_row, normalize_row
from .numba_cache import tolerate_cache_failures
from .simd_cpu import keep32

ROWS_PER_BLOCK = 32  # rows per parallel task and per partial gradient row: 128 tasks for MiniLM's 4096 rows
_FAST = {"parallel": True, "fastmath": {"contract", "reassoc"}, "error_model": "numpy", "cache": True}


@numba.njit(**_FAST)
def residual_layer_norm_rows(y, bias, residual, weight, ln_bias, eps, drop, key_lo, key_hi, threshold, scale, s, out,
                             mean_out, rstd_out, block):
    rows, n = y.shape
    for b in numba.prange((rows + block - 1) // block):
        for r in range(b * block, min(rows, (b + 1) * block)):
            if drop:
                lo, hi = key_lo[r], key_hi[r]
                for j in range(n):
                    z = y[r, j] + bias[j]
                    z = z * scale if keep32(j, lo, hi, threshold) else z * 0
                    s[r, j] = z + residual[r, j]
            else:
                for j in range(n):
                    s[r, j] = y[r, j] + bias[j] + residual[r, j]
            normalize_row(s, r, weight, ln_bias, eps, out, mean_out, rstd_out)  # row r is still in L1


@numba.njit(**_FAST)
def residual_layer_norm_rows_backward(g, s, weight, mean, rstd, drop, key_lo, key_hi, threshold, scale, gs, gy,
                                      gw_parts, gb_parts, gbias_parts, block):
    rows, n = s.shape
    for b in numba.prange(gw_parts.shape[0]):
        for r in range(b * block, min(rows, (b + 1) * block)):
            backward_row(s, r, g, weight, mean[r], rstd[r], gs, gw_parts[b], gb_parts[b])
            if drop:
                lo, hi = key_lo[r], key_hi[r]
                for j in range(n):
                    v = gs[r, j] * scale if keep32(j, lo, hi, threshold) else gs[r, j] * 0
                    gy[r, j] = v
                    gbias_parts[b, j] += v
            else:
                for j in range(n):
                    gbias_parts[b, j] += gs[r, j]


tolerate_cache_failures(residual_layer_norm_rows, residual_layer_norm_rows_backward)  # a failed save must not fail


def _dropout_words(seed: int, p: float, rows: int, dtype):
    return (p > 0, *row_key_halves(seed, rows if p > 0 else 0), keep_threshold(p), dtype.type(1.0 / (1.0 - p)))


def forward(y: np.ndarray, bias: np.ndarray, residual: np.ndarray, weight: np.ndarray, ln_bias: np.ndarray,
            eps: float, p: float = 0.0, seed: int = 0):
    """y, residual: (..., hidden); bias, weight, ln_bias: (hidden,). Returns (out, s, mean, rstd): out and s of
    y's shape, mean and rstd (rows,), which `backward` takes. p: dropout rate on y + bias (0: none)."""
    n = y.shape[-1]
    y2 = np.ascontiguousarray(y).reshape(-1, n)
    r2 = np.ascontiguousarray(residual).reshape(-1, n)
    s, out = np.empty_like(y2), np.empty_like(y2)
    mean, rstd = np.empty(y2.shape[0], y.dtype), np.empty(y2.shape[0], y.dtype)
    residual_layer_norm_rows(y2, bias, r2, weight, ln_bias, float(eps), *_dropout_words(seed, p, len(y2), y.dtype), s,
                             out, mean, rstd, ROWS_PER_BLOCK)
    return out.reshape(y.shape), s.reshape(y.shape), mean, rstd


def backward(g: np.ndarray, s: np.ndarray, weight: np.ndarray, mean: np.ndarray, rstd: np.ndarray, p: float = 0.0,
             seed: int = 0):
    """Gradients (g_y, g_bias, g_residual, g_weight, g_ln_bias) from forward's s, mean, rstd and seed.
    g_y is g_residual itself when p == 0 (the same values; one array fewer)."""
    n = s.shape[-1]
    s2 = s.reshape(-1, n)
    g2 = np.ascontiguousarray(g, dtype=s.dtype).reshape(-1, n)
    blocks = max(1, -(-s2.shape[0] // ROWS_PER_BLOCK))
    gs = np.empty_like(s2)
    gy = np.empty_like(s2) if p > 0 else gs
    parts = np.zeros((3, blocks, n), s.dtype)
    residual_layer_norm_rows_backward(g2, s2, weight, mean, rstd, *_dropout_words(seed, p, len(s2), s.dtype), gs, gy,
                                      parts[0], parts[1], parts[2], ROWS_PER_BLOCK)
    gw, gb, gbias = parts.sum(axis=1)
    return gy.reshape(s.shape), gbias, gs.reshape(s.shape), gw, gb

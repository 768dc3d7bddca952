"""The end of every BERT sub-block in one pass each way (numba, two threads over blocks of rows):

    s   = dropout(y + bias) + residual          y: the Linear's GEMM output, bias: that Linear's bias
    out = (s - mean(s)) * rstd * weight + ln_bias,   rstd = 1 / sqrt(var(s) + eps)

backward, from g = d loss / d out (kernels/layer_norm_cpu.py's own row steps compute out and gs = d loss / d s):

    g_residual = gs,  g_y = dropout(gs) (same mask, same scale),  g_bias = sum_rows(g_y),
    g_weight = sum_rows(g * shat),  g_ln_bias = sum_rows(g)

The composition it replaces (bias add, dropout, residual add, LayerNorm) makes four passes forward and
four back over (rows, hidden) and allocates an array at each; here forward reads y and the residual and
writes s and out, and backward reads g and s and writes g_residual and g_y. Saved for backward: s and the
per-row mean and rstd (the composition keeps s too, as LayerNorm's input), and the dropout seed -- the mask
is the counter-based hash of kernels/dropout_cpu.py over the flat element index, regenerated in backward,
so `dropout_cpu.dropout_apply(y + bias, seed, p)` is bit for bit the dropout this kernel applies.

Row statistics are accumulated in float64. Gradient sums over rows go to one partial row per block, added
by NumPy afterwards. float32 and float64 (numba compiles one version per dtype); NUMBA_DISABLE_JIT=1 runs it
as Python. `reference_forward` is the NumPy composition the tests compare with.
"""
from __future__ import annotations

import numpy as np

from . import dropout_cpu, layer_norm_cpu

_kernels = None
ROWS_PER_BLOCK = 32  # rows per parallel task and per partial gradient row: 128 tasks for MiniLM's 4096 rows


def _build():
    global _kernels
    if _kernels is None:
        from minitransfer.kernels.numba_cache import tolerate_cache_failures  # noqa: PLC0415
        from numba import njit, prange  # noqa: PLC0415 (imported on first use)

        keep = dropout_cpu._build()[1]
        normalize_row, backward_row = layer_norm_cpu._build()[2:]

        @njit(parallel=True, fastmath={"contract", "reassoc"}, error_model="numpy", cache=True)
        def forward(y, bias, residual, weight, ln_bias, eps, drop, seed_lo, seed_hi, threshold, scale, s, out,
                    mean_out, rstd_out, block):
            rows, n = y.shape
            for b in prange((rows + block - 1) // block):
                for r in range(b * block, min(rows, (b + 1) * block)):
                    if drop:
                        base = np.uint64(r) * np.uint64(n)
                        for j in range(n):
                            z = y[r, j] + bias[j]
                            z = z * scale if keep(base + np.uint64(j), seed_lo, seed_hi, threshold) else z * 0
                            s[r, j] = z + residual[r, j]
                    else:
                        for j in range(n):
                            s[r, j] = y[r, j] + bias[j] + residual[r, j]
                    normalize_row(s, r, weight, ln_bias, eps, out, mean_out, rstd_out)  # row r is still in L1

        @njit(parallel=True, fastmath={"contract", "reassoc"}, error_model="numpy", cache=True)
        def backward(g, s, weight, mean, rstd, drop, seed_lo, seed_hi, threshold, scale, gs, gy, gw_parts,
                     gb_parts, gbias_parts, block):
            rows, n = s.shape
            for b in prange(gw_parts.shape[0]):
                for r in range(b * block, min(rows, (b + 1) * block)):
                    backward_row(s, r, g, weight, mean[r], rstd[r], gs, gw_parts[b], gb_parts[b])
                    if drop:
                        base = np.uint64(r) * np.uint64(n)
                        for j in range(n):
                            kept = keep(base + np.uint64(j), seed_lo, seed_hi, threshold)
                            v = gs[r, j] * scale if kept else gs[r, j] * 0
                            gy[r, j] = v
                            gbias_parts[b, j] += v
                    else:
                        for j in range(n):
                            gbias_parts[b, j] += gs[r, j]

        tolerate_cache_failures(forward, backward)  # a failed cache save must not fail the call
        _kernels = forward, backward
    return _kernels


def supports(*arrays) -> bool:
    """True when every array is a NumPy float32/float64 array of the first one's dtype."""
    return (isinstance(arrays[0], np.ndarray) and arrays[0].dtype in (np.float32, np.float64)
            and all(isinstance(a, np.ndarray) and a.dtype == arrays[0].dtype for a in arrays))


def _dropout_words(seed: int, p: float, dtype):
    seed_lo, seed_hi, threshold = dropout_cpu.dropout_params(seed, p)
    return p > 0, seed_lo, seed_hi, threshold, dtype.type(1.0 / (1.0 - p))


def forward(y: np.ndarray, bias: np.ndarray, residual: np.ndarray, weight: np.ndarray, ln_bias: np.ndarray,
            eps: float, p: float = 0.0, seed: int = 0):
    """y, residual: (..., hidden); bias, weight, ln_bias: (hidden,). Returns (out, s, mean, rstd): out and s of
    y's shape, mean and rstd (rows,), which `backward` takes. p: dropout rate on y + bias (0: none)."""
    n = y.shape[-1]
    y2 = np.ascontiguousarray(y).reshape(-1, n)
    r2 = np.ascontiguousarray(residual).reshape(-1, n)
    s, out = np.empty_like(y2), np.empty_like(y2)
    mean, rstd = np.empty(y2.shape[0], y.dtype), np.empty(y2.shape[0], y.dtype)
    _build()[0](y2, bias, r2, weight, ln_bias, float(eps), *_dropout_words(seed, p, y.dtype), s, out, mean, rstd,
                ROWS_PER_BLOCK)
    return out.reshape(y.shape), s.reshape(y.shape), mean, rstd


def backward(g: np.ndarray, s: np.ndarray, weight: np.ndarray, mean: np.ndarray, rstd: np.ndarray, p: float = 0.0,
             seed: int = 0):
    """Gradients (g_y, g_bias, g_residual, g_weight, g_ln_bias) from forward's s, mean, rstd and seed.
    g_y is g_residual itself when p == 0 (the same values; one array fewer)."""
    n = s.shape[-1]
    s2 = s.reshape(-1, n)
    g2 = np.ascontiguousarray(g, dtype=s.dtype).reshape(-1, n)
    rows = s2.shape[0]
    blocks = max(1, -(-rows // ROWS_PER_BLOCK))
    gs = np.empty_like(s2)
    gy = np.empty_like(s2) if p > 0 else gs
    parts = np.zeros((3, blocks, n), s.dtype)
    _build()[1](g2, s2, weight, mean, rstd, *_dropout_words(seed, p, s.dtype), gs, gy, parts[0], parts[1], parts[2],
                ROWS_PER_BLOCK)
    gw, gb, gbias = parts.sum(axis=1)
    return gy.reshape(s.shape), gbias, gs.reshape(s.shape), gw, gb


def reference_forward(y, bias, residual, weight, ln_bias, eps, p=0.0, seed=0):
    """The NumPy composition (tests only): LayerNorm(dropout(y + bias) + residual)."""
    z = y + bias
    if p > 0:
        z = dropout_cpu.dropout_apply(z, seed, p)
    s = z + residual
    mean = s.mean(axis=-1, keepdims=True)
    var = ((s - mean) ** 2).mean(axis=-1, keepdims=True)
    return (s - mean) / np.sqrt(var + eps) * weight + ln_bias

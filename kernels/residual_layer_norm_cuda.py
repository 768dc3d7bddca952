"""The end of every BERT sub-block on the GPU (numba-cuda): bias + dropout + residual + LayerNorm, forward and
backward, with the bias, weight and ln-bias gradients summed inside (layer_norm_cuda.py's kernels).

    s   = dropout(y + bias) + residual          y: the Linear's GEMM output (rows, n), bias: that Linear's bias
    out = LayerNorm(s) * weight + ln_bias
    backward: g_residual = g_s (LayerNorm's input gradient),  g_y = dropout(g_s) (same mask),
              g_bias = sum_rows(g_y),  g_weight, g_ln_bias as LayerNorm's

Forward is one warp per row: it writes s (kept for backward, as the CPU kernel does) and out; backward is
LayerNorm's two launches, the row kernel also writing g_y and the column kernel also summing g_bias. Dropout is
dropout_rng.py's hash over the (rows, n) view (row = token row, column = hidden index), as the reference and the
CPU kernel, rebuilt in backward, never stored. Interface and math: residual_layer_norm_reference.py's (the
reference; ops CudaBiasDropoutResidualLayerNorm runs these). float32 or float16 storage, fp32 arithmetic.

FLOPs/bytes per element: forward ~10 FLOPs, reads y, residual (+ s once more) and writes s and out: 5 x 2-4 bytes;
backward ~15 FLOPs, reads g and s twice and writes g_s and g_y: 6 x 2-4 bytes. BERT-base, (32 * 384, 768) in fp16:
~47 MB forward, ~57 MB back.
"""
from __future__ import annotations

from .layer_norm_cuda import gradients, normalize


def forward(y, bias, residual, weight, ln_bias, eps: float, p: float = 0.0, seed: int = 0):
    """y, residual: (..., n); bias, weight, ln_bias: (n,). Returns (out, s, mean, rstd): out and s of y's shape and
    dtype, mean and rstd float32 (rows,), which `backward` takes. p: dropout rate on y + bias (0: none)."""
    return normalize(y, bias, residual, weight, ln_bias, eps, p, seed, fused=True)


def backward(g, s, weight, mean, rstd, p: float = 0.0, seed: int = 0):
    """Gradients (g_y, g_bias, g_residual, g_weight, g_ln_bias) from forward's s, mean, rstd and seed.
    g_y is g_residual itself when p == 0 (the same values; one array fewer)."""
    g_s, g_dropped, sums = gradients(g, s, weight, mean, rstd, p, seed, fused=True)
    g_y = g_s if g_dropped is None else g_dropped
    return g_y.reshape(s.shape), sums[2], g_s.reshape(s.shape), sums[0], sums[1]

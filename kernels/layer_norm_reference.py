"""LayerNorm over the last axis in NumPy or CuPy: the reference of layer_norm_cpu.py, with its interface.

    y = (x - mean) * rstd * weight + bias,   rstd = 1 / sqrt(var + eps)   (biased variance, as torch)
    backward, with xhat = (x - mean) * rstd and g = gy * weight:
    gx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  gweight = sum_rows(gy * xhat),  gbias = sum_rows(gy)

Forward saves the per-row mean and rstd (rows,); backward recomputes xhat from x, which the graph holds anyway.
ops.LayerNorm's reference and residual_layer_norm_reference.py call these; the tests compare the kernels with them.
"""
from __future__ import annotations

from minitransfer.backend import get_array_module


def layer_norm_forward(x, weight, bias, eps: float):
    """x: (..., hidden); weight, bias: (hidden,). Returns (y of x's shape, mean (rows,), rstd (rows,))."""
    x2 = x.reshape(-1, x.shape[-1])
    mean = x2.mean(axis=-1)
    centered = x2 - mean[:, None]
    rstd = 1.0 / get_array_module(x).sqrt((centered * centered).mean(axis=-1) + eps)
    return (centered * rstd[:, None] * weight + bias).reshape(x.shape), mean, rstd


def layer_norm_backward(x, gy, weight, mean, rstd):
    """Gradients (gx of x's shape, gweight (hidden,), gbias (hidden,)) from forward's mean and rstd."""
    n = x.shape[-1]
    xhat = (x.reshape(-1, n) - mean[:, None]) * rstd[:, None]
    gy2 = gy.reshape(-1, n)
    g = gy2 * weight
    gx = rstd[:, None] * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return gx.reshape(x.shape), (gy2 * xhat).sum(axis=0), gy2.sum(axis=0)

"""The end of a BERT sub-block in NumPy or CuPy: the reference of residual_layer_norm_cpu.py, with its interface.

    s = dropout(y + bias) + residual,   out = LayerNorm(s) * weight + ln_bias      (dropout: dropout_rng.py)

composed of layer_norm_reference.py and dropout_rng.dropout_apply, so it drops exactly what the kernel drops.
"""
from __future__ import annotations

from . import layer_norm_reference
from .dropout_rng import dropout_apply


def forward(y, bias, residual, weight, ln_bias, eps: float, p: float = 0.0, seed: int = 0):
    """y, residual: (..., hidden); bias, weight, ln_bias: (hidden,). Returns (out, s, mean, rstd): out and s of
    y's shape, mean and rstd (rows,), which `backward` takes. p: dropout rate on y + bias (0: none)."""
    z = y + bias
    s = (dropout_apply(z, seed, p) if p > 0 else z) + residual
    out, mean, rstd = layer_norm_reference.layer_norm_forward(s, weight, ln_bias, eps)
    return out, s, mean, rstd


def backward(g, s, weight, mean, rstd, p: float = 0.0, seed: int = 0):
    """Gradients (g_y, g_bias, g_residual, g_weight, g_ln_bias) from forward's s, mean, rstd and seed."""
    gs, gw, gb = layer_norm_reference.layer_norm_backward(s, g, weight, mean, rstd)
    gy = dropout_apply(gs, seed, p) if p > 0 else gs
    return gy, gy.reshape(-1, gy.shape[-1]).sum(axis=0), gs, gw, gb

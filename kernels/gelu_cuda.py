"""bias + GELU and GELU (exact erf form) on the GPU (numba-cuda), forward and backward, the bias gradient summed
inside.

    forward    out = gelu(y + bias)                      y: (rows, n) the Linear's GEMM output, bias: (n,)
    backward   g_y = gy * gelu'(y + bias),  g_bias = sum_rows(g_y)
    gelu(x) = x * Phi(x),  gelu'(x) = Phi(x) + x * phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2,
    phi(x) = exp(-x^2 / 2) / sqrt(2 pi)

Interface and math: gelu_reference.py's (the reference the tests compare with; ops CudaGELU and CudaBiasGELU run
these); plain GELU is the same kernels with bias None. Forward is one elementwise pass (grid-stride). Backward:
one thread per column and block row of 32 rows writes g_y and that block's partial bias-gradient row, which
reduce_cuda.column_sums adds up (two launches, no atomics, the same sums on every run). float32 or float16
storage, fp32 arithmetic (libdevice erff, expf).
FLOPs/bytes per element: forward ~20 FLOPs (erf counted as ~10), reads 2-4 bytes and writes 2-4; backward ~30
FLOPs, reads 4-8 bytes and writes 2-4. BERT-base's FFN, (32 * 384, 3072) in fp16: 75 MB forward, 113 MB back.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from .arrays_cuda import contiguous, empty, per_column, per_element
from .reduce_cuda import ROWS_PER_CHUNK, chunks_of, column_sums

_SQRT1_2 = float32(1.0 / math.sqrt(2.0))
_INV_SQRT_2PI = float32(1.0 / math.sqrt(2.0 * math.pi))


@cuda.jit(device=True)
def gelu(v):
    return v * float32(0.5) * (float32(1.0) + float32(math.erf(v * _SQRT1_2)))


@cuda.jit(device=True)
def gelu_slope(v):
    cdf = float32(0.5) * (float32(1.0) + float32(math.erf(v * _SQRT1_2)))
    return cdf + v * float32(math.exp(float32(-0.5) * v * v)) * _INV_SQRT_2PI


@cuda.jit
def _forward(y, bias, out):
    rows, n = y.shape
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, rows * n, stride):
        r, j = i // n, i % n
        v = float32(y[r, j])
        if bias is not None:
            v += float32(bias[j])
        out[r, j] = gelu(v)


@cuda.jit
def _backward(y, bias, gy, g_y, partials):
    rows, n = y.shape
    j = cuda.grid(1)
    chunk = cuda.blockIdx.y
    if j < n:
        b = float32(0.0) if bias is None else float32(bias[j])
        total = float32(0.0)
        for r in range(chunk * ROWS_PER_CHUNK, min(rows, (chunk + 1) * ROWS_PER_CHUNK)):
            g = float32(gy[r, j]) * gelu_slope(float32(y[r, j]) + b)
            g_y[r, j] = g
            total += g
        if partials is not None:
            partials[chunk, j] = total


def _rows(x):
    return contiguous(x).reshape(-1, x.shape[-1] if x.ndim else 1)


def bias_gelu_forward(y, bias):
    """gelu(y + bias); y: (..., n) float32/float16, bias: (n,) or None. Returns an array of y's shape and dtype."""
    y2 = _rows(y)
    out = empty(y, y2.shape, y.dtype)
    _forward[per_element(y2.size, y)](y2, bias, out)
    return out.reshape(y.shape)


def _backward_launch(y, bias, gy, with_bias_grad: bool):
    y2 = _rows(y)
    rows, n = y2.shape
    g_y = empty(y, y2.shape, y.dtype)
    partials = empty(y, (chunks_of(rows), n), np.float32) if with_bias_grad else None
    _backward[per_column(n, chunks_of(rows), y)](y2, bias, _rows(gy), g_y, partials)
    return g_y.reshape(y.shape), partials


def bias_gelu_backward(y, bias, gy):
    """(g_y of y's shape and dtype, g_bias (n,) of bias' dtype) for out = gelu(y + bias), from forward's
    inputs and the upstream gradient gy."""
    g_y, partials = _backward_launch(y, bias, gy, True)
    return g_y, column_sums(partials, bias.dtype)


def gelu_forward(x):
    """gelu(x) elementwise; x: any shape, float32 or float16."""
    return bias_gelu_forward(x, None)


def gelu_backward(x, gy):
    """gy * gelu'(x) elementwise."""
    return _backward_launch(x, None, gy, False)[0]

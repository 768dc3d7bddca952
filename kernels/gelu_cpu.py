"""GELU (exact erf form) for float32 NumPy arrays: one vectorized (AVX2) pass each way (numba).

    gelu(x)  = x * Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2
    gelu'(x) = Phi(x) + x * phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)

Same formula and interface as gelu_reference.py (its reference), but erf and exp are plain arithmetic LLVM can
vectorize instead of libm's scalar calls (numba has no SVML here), which made the reference over 10x slower on
MiniLM's (4096, 1536). erf32 is Eigen's / XLA's rational minimax approximation on [-4, 4] (erf is ±1 to float32
precision outside), max abs error ~4e-7; exp32 is simd_cpu's expf. The error (< 1e-6 absolute) is at float32
rounding level, like PyTorch's own vectorized CPU erf; float64 arrays keep the exact reference.

`bias_gelu_forward/backward` take the Linear's GEMM output and its bias: gelu(y + bias) without the separate
bias pass, and the bias gradient summed in the same loop as the input gradient (partial rows per block of rows),
on two threads (prange over blocks of rows). The plain gelu_forward/backward stay single-threaded: written when
OpenBLAS's idle threads still spun on the second core between GEMMs (before OPENBLAS_THREAD_TIMEOUT was set),
when a 2-thread loop was no faster.

Per call on N = rows * n elements: forward ~27 N FLOPs (erf's polynomials ~23), 2 N * 4 bytes; backward ~50 N FLOPs
(erf and exp), 3 N * 4 bytes (+ n * 4 per block of rows for the bias gradient). NUMBA_DISABLE_JIT=1 runs the loops
as plain Python.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from .numba_cache import tolerate_cache_failures
from .simd_cpu import exp32

f32 = np.float32
_SQRT1_2, _INV_SQRT_2PI = f32(1.0 / math.sqrt(2.0)), f32(1.0 / math.sqrt(2.0 * math.pi))
_FAST = {"fastmath": {"contract"}, "error_model": "numpy", "cache": True}  # numpy errors: no branch, so SIMD
ROWS_PER_BLOCK = 32  # rows per parallel task and per partial bias-gradient row


@numba.njit(inline="always", **_FAST)
def erf32(x):
    x = x if x < f32(4.0) else f32(4.0)  # a ternary, not min/max: numba's min/max blocks vectorizing
    x = x if x > f32(-4.0) else f32(-4.0)
    x2 = x * x
    p = x2 * f32(-2.72614225801306e-10) + f32(2.77068142495902e-08)
    p = x2 * p + f32(-2.10102402082508e-06)
    p = x2 * p + f32(-5.69250639462346e-05)
    p = x2 * p + f32(-7.34990630326855e-04)
    p = x2 * p + f32(-2.95459980854025e-03)
    p = x2 * p + f32(-1.60960333262415e-02)
    q = x2 * f32(-1.45660718464996e-05) + f32(-2.13374055278905e-04)
    q = x2 * q + f32(-1.68282697438203e-03)
    q = x2 * q + f32(-7.37332916720468e-03)
    q = x2 * q + f32(-1.42647390514189e-02)
    return x * p / q


@numba.njit(inline="always", **_FAST)
def gelu(v):
    return v * f32(0.5) * (f32(1.0) + erf32(v * _SQRT1_2))


@numba.njit(inline="always", **_FAST)
def gelu_slope(v):
    return f32(0.5) * (f32(1.0) + erf32(v * _SQRT1_2)) + v * exp32(f32(-0.5) * v * v) * _INV_SQRT_2PI


@numba.njit(**_FAST)
def gelu_flat(x, out):
    for i in range(x.shape[0]):
        out[i] = gelu(x[i])


@numba.njit(**_FAST)
def gelu_flat_backward(x, gy, out):
    for i in range(x.shape[0]):
        out[i] = gy[i] * gelu_slope(x[i])


@numba.njit(parallel=True, **_FAST)
def bias_gelu_rows(y, bias, out, block):
    rows, n = y.shape
    for b in numba.prange((rows + block - 1) // block):
        for r in range(b * block, min(rows, (b + 1) * block)):
            for j in range(n):
                out[r, j] = gelu(y[r, j] + bias[j])


@numba.njit(parallel=True, **_FAST)
def bias_gelu_rows_backward(y, bias, gy, out, gbias_parts, block):
    rows, n = y.shape
    for b in numba.prange(gbias_parts.shape[0]):
        for r in range(b * block, min(rows, (b + 1) * block)):
            for j in range(n):
                g = gy[r, j] * gelu_slope(y[r, j] + bias[j])
                out[r, j] = g
                gbias_parts[b, j] += g


tolerate_cache_failures(gelu_flat, gelu_flat_backward, bias_gelu_rows, bias_gelu_rows_backward)  # saves may fail


def gelu_forward(x: np.ndarray) -> np.ndarray:
    """gelu(x) elementwise; x: float32, any shape. Returns a new C-contiguous array of x's shape."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    gelu_flat(flat, out)
    return out.reshape(x.shape)


def gelu_backward(x: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """gy * gelu'(x) elementwise; x and gy float32 of one shape."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    gelu_flat_backward(flat, np.ascontiguousarray(gy, dtype=np.float32).reshape(-1), out)
    return out.reshape(x.shape)


def bias_gelu_forward(y: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """gelu(y + bias); y: float32 (..., n), bias: float32 (n,). Returns a new array of y's shape."""
    y2 = np.ascontiguousarray(y).reshape(-1, y.shape[-1])
    out = np.empty_like(y2)
    bias_gelu_rows(y2, bias, out, ROWS_PER_BLOCK)
    return out.reshape(y.shape)


def bias_gelu_backward(y: np.ndarray, bias: np.ndarray, gy: np.ndarray):
    """(g_y, g_bias) for out = gelu(y + bias), from forward's inputs and the upstream gradient gy."""
    y2 = np.ascontiguousarray(y).reshape(-1, y.shape[-1])
    out = np.empty_like(y2)
    parts = np.zeros((max(1, -(-y2.shape[0] // ROWS_PER_BLOCK)), y2.shape[1]), np.float32)
    bias_gelu_rows_backward(y2, bias, np.ascontiguousarray(gy, dtype=np.float32).reshape(y2.shape), out, parts,
                            ROWS_PER_BLOCK)
    return out.reshape(y.shape), parts.sum(axis=0)

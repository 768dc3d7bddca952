"""GELU (exact erf form) for float32 NumPy arrays: one vectorized (AVX2) pass each way.

    gelu(x)  = x * Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2
    gelu'(x) = Phi(x) + x * phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)

Same formula as kernels/gelu.py, but erf and exp come from fast_math_cpu (vectorizable) instead of libm's
scalar calls, which is what made that kernel slow on the CPU. The approximation error (< 1e-6 absolute)
is at float32 rounding level, like PyTorch's own vectorized CPU erf. float64 arrays keep using
kernels/gelu.py (exact math.erf), so gradient checks are unaffected. Reference: gelu.gelu_reference.

`bias_gelu_forward/backward` take the Linear's GEMM output and its bias: gelu(y + bias) without the separate
bias pass, and the bias gradient summed in the same loop as the input gradient (partial rows per block of
rows). They run on two threads (prange over blocks of rows). The plain gelu_forward/backward stay
single-threaded: written when OpenBLAS's idle threads still spun on the second core between GEMMs
(before minitransfer set OPENBLAS_THREAD_TIMEOUT), when a 2-thread loop was no faster.

Debugging: NUMBA_DISABLE_JIT=1 runs the loops as plain Python.
"""
from __future__ import annotations

import math

import numpy as np

_kernels = None


def _build():
    global _kernels
    if _kernels is None:
        from minitransfer.kernels.fast_math_cpu import build  # noqa: PLC0415
        from minitransfer.kernels.numba_cache import tolerate_cache_failures  # noqa: PLC0415
        from numba import njit, prange  # noqa: PLC0415 (imported on first use)

        erf32, exp32 = build()
        f32 = np.float32
        sqrt1_2, inv_sqrt_2pi = f32(1.0 / math.sqrt(2.0)), f32(1.0 / math.sqrt(2.0 * math.pi))

        @njit(inline="always", fastmath={"contract"}, error_model="numpy", cache=True)
        def gelu(v):
            return v * f32(0.5) * (f32(1.0) + erf32(v * sqrt1_2))

        @njit(inline="always", fastmath={"contract"}, error_model="numpy", cache=True)
        def gelu_slope(v):
            return f32(0.5) * (f32(1.0) + erf32(v * sqrt1_2)) + v * exp32(f32(-0.5) * v * v) * inv_sqrt_2pi

        @njit(fastmath={"contract"}, error_model="numpy", cache=True)  # numpy errors: no branch, so SIMD
        def forward(x, out):
            for i in range(x.shape[0]):
                out[i] = gelu(x[i])

        @njit(fastmath={"contract"}, error_model="numpy", cache=True)  # numpy errors: no branch, so SIMD
        def backward(x, gy, out):
            for i in range(x.shape[0]):
                out[i] = gy[i] * gelu_slope(x[i])

        @njit(parallel=True, fastmath={"contract"}, error_model="numpy", cache=True)
        def bias_forward(y, bias, out, block):
            rows, n = y.shape
            for b in prange((rows + block - 1) // block):
                for r in range(b * block, min(rows, (b + 1) * block)):
                    for j in range(n):
                        out[r, j] = gelu(y[r, j] + bias[j])

        @njit(parallel=True, fastmath={"contract"}, error_model="numpy", cache=True)
        def bias_backward(y, bias, gy, out, gbias_parts, block):
            rows, n = y.shape
            for b in prange(gbias_parts.shape[0]):
                for r in range(b * block, min(rows, (b + 1) * block)):
                    for j in range(n):
                        g = gy[r, j] * gelu_slope(y[r, j] + bias[j])
                        out[r, j] = g
                        gbias_parts[b, j] += g

        tolerate_cache_failures(forward, backward, bias_forward, bias_backward)  # a failed save must not fail
        _kernels = forward, backward, bias_forward, bias_backward
    return _kernels


def supports(x) -> bool:
    """True for the arrays these kernels take: float32 NumPy arrays."""
    return isinstance(x, np.ndarray) and x.dtype == np.float32


def gelu_forward(x: np.ndarray) -> np.ndarray:
    """gelu(x) elementwise; x: float32, any shape. Returns a new C-contiguous array of x's shape."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    _build()[0](flat, out)
    return out.reshape(x.shape)


def gelu_backward(x: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """gy * gelu'(x) elementwise; x and gy float32 of one shape."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    _build()[1](flat, np.ascontiguousarray(gy, dtype=np.float32).reshape(-1), out)
    return out.reshape(x.shape)


ROWS_PER_BLOCK = 32  # rows per parallel task and per partial bias-gradient row


def bias_gelu_forward(y: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """gelu(y + bias); y: float32 (..., n), bias: float32 (n,). Returns a new array of y's shape."""
    y2 = np.ascontiguousarray(y).reshape(-1, y.shape[-1])
    out = np.empty_like(y2)
    _build()[2](y2, bias, out, ROWS_PER_BLOCK)
    return out.reshape(y.shape)


def bias_gelu_backward(y: np.ndarray, bias: np.ndarray, gy: np.ndarray):
    """(g_y, g_bias) for out = gelu(y + bias), from forward's inputs and the upstream gradient gy."""
    y2 = np.ascontiguousarray(y).reshape(-1, y.shape[-1])
    out = np.empty_like(y2)
    parts = np.zeros((max(1, -(-y2.shape[0] // ROWS_PER_BLOCK)), y2.shape[1]), np.float32)
    _build()[3](y2, bias, np.ascontiguousarray(gy, dtype=np.float32).reshape(y2.shape), out, parts, ROWS_PER_BLOCK)
    return out.reshape(y.shape), parts.sum(axis=0)

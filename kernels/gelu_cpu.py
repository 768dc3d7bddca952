"""GELU (exact erf form) for float32 NumPy arrays: one vectorized (AVX2) pass each way.

    gelu(x)  = x * Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2
    gelu'(x) = Phi(x) + x * phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)

Same formula as kernels/gelu.py, but erf and exp come from fast_math_cpu (vectorizable) instead of libm's
scalar calls, which is what made that kernel slow on the CPU. The approximation error (< 1e-6 absolute)
is at float32 rounding level, like PyTorch's own vectorized CPU erf. float64 arrays keep using
kernels/gelu.py (exact math.erf), so gradient checks are unaffected. Reference: gelu.gelu_reference.

Single-threaded on purpose: on this 2-core machine, with other processes running, numba's 2-thread version
was no faster (10-12 ms vs 10 ms forward on (4096, 1536)); the second core is rarely free, and OpenBLAS's
threads spin on it between GEMMs. On an idle many-core machine a parallel loop would likely win.

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
        from numba import njit  # noqa: PLC0415 (imported on first use)

        erf32, exp32 = build()
        f32 = np.float32
        sqrt1_2, inv_sqrt_2pi = f32(1.0 / math.sqrt(2.0)), f32(1.0 / math.sqrt(2.0 * math.pi))

        @njit(fastmath={"contract"}, error_model="numpy", cache=True)  # numpy errors: no branch, so SIMD
        def forward(x, out):
            for i in range(x.shape[0]):
                v = x[i]
                out[i] = v * f32(0.5) * (f32(1.0) + erf32(v * sqrt1_2))

        @njit(fastmath={"contract"}, error_model="numpy", cache=True)  # numpy errors: no branch, so SIMD
        def backward(x, gy, out):
            for i in range(x.shape[0]):
                v = x[i]
                cdf = f32(0.5) * (f32(1.0) + erf32(v * sqrt1_2))
                out[i] = gy[i] * (cdf + v * exp32(f32(-0.5) * v * v) * inv_sqrt_2pi)

        tolerate_cache_failures(forward, backward)  # a failed cache save must not fail the call
        _kernels = forward, backward
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

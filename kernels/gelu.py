"""GELU in BERT's exact erf form, forward and backward, as elementwise kernels.

NumPy has no erf, so the CPU path is a numba ufunc (parallel over elements, compiled on first use and
cached); the GPU path is a CuPy ElementwiseKernel. `gelu_reference` is the plain-Python reference the
tests check both against.

    gelu(x)  = x * Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2
    gelu'(x) = Phi(x) + x * phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)

Debugging: NUMBA_DISABLE_JIT=1 runs the numba kernels as plain Python, so a debugger can step into them.
"""
from __future__ import annotations

import math

import numpy as np

_cpu = None
_gpu = None
_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _cpu_kernels():
    global _cpu
    if _cpu is None:
        import numba  # noqa: PLC0415 (imported on first use so `import minitransfer` stays light)

        sigs = ["float32(float32)", "float64(float64)"]
        grad_sigs = ["float32(float32, float32)", "float64(float64, float64)"]

        @numba.vectorize(sigs, target="parallel", cache=True)
        def forward(x):
            return x * 0.5 * (1.0 + math.erf(x * _SQRT1_2))

        @numba.vectorize(grad_sigs, target="parallel", cache=True)
        def backward(x, gy):
            cdf = 0.5 * (1.0 + math.erf(x * _SQRT1_2))
            pdf = math.exp(-0.5 * x * x) * _INV_SQRT_2PI
            return gy * (cdf + x * pdf)

        _cpu = forward, backward
    return _cpu


def _gpu_kernels():
    global _gpu
    if _gpu is None:
        import cupy as cp  # noqa: PLC0415

        forward = cp.ElementwiseKernel("T x", "T y", "y = x * (T)0.5 * ((T)1 + erf(x * (T)0.7071067811865476))",
                                       "mt_gelu_forward")
        backward = cp.ElementwiseKernel(
            "T x, T gy", "T gx",
            "T cdf = (T)0.5 * ((T)1 + erf(x * (T)0.7071067811865476));"
            "T pdf = exp((T)-0.5 * x * x) * (T)0.3989422804014327;"
            "gx = gy * (cdf + x * pdf)",
            "mt_gelu_backward")
        _gpu = forward, backward
    return _gpu


def _kernels(x):
    return _cpu_kernels() if isinstance(x, np.ndarray) else _gpu_kernels()


def gelu_forward(x):
    """gelu(x) elementwise; x: any shape, float32 or float64, NumPy or CuPy."""
    return _kernels(x)[0](x)


def gelu_backward(x, gy):
    """d gelu(x) * gy elementwise."""
    return _kernels(x)[1](x, gy)


def gelu_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gelu(x), gelu'(x)) in float64 with math.erf, one element at a time (tests only)."""
    erf = np.vectorize(math.erf)
    x64 = x.astype(np.float64)
    cdf = 0.5 * (1.0 + erf(x64 * _SQRT1_2))
    return x64 * cdf, cdf + x64 * np.exp(-0.5 * x64 * x64) * _INV_SQRT_2PI

"""GELU in BERT's exact erf form, elementwise, for any float dtype on NumPy or CuPy: the reference GELU.

    gelu(x)  = x * Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2
    gelu'(x) = Phi(x) + x * phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)

NumPy has no erf, so on NumPy arrays this is a numba ufunc over libm's erf (parallel over elements, compiled on
first use and cached); on CuPy arrays a CuPy ElementwiseKernel over CUDA's erf. It is what ops.gelu runs for
float64 (gradient checks stay exact) and CuPy arrays, and the reference of gelu_cpu.py's float32 kernels (same
interface). Per call on N elements: ~25 N FLOPs forward, ~40 N backward; 2 N (3 N backward) * itemsize bytes.
NUMBA_DISABLE_JIT=1 runs the numba ufuncs as plain Python.
"""
from __future__ import annotations

import functools
import math

import numpy as np

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@functools.cache
def _numpy_ufuncs():
    import numba  # noqa: PLC0415 (imported on first use so `import minitransfer` stays light)

    @numba.vectorize(["float32(float32)", "float64(float64)"], target="parallel", cache=True)
    def forward(x):
        return x * 0.5 * (1.0 + math.erf(x * _SQRT1_2))

    @numba.vectorize(["float32(float32, float32)", "float64(float64, float64)"], target="parallel", cache=True)
    def backward(x, gy):
        cdf = 0.5 * (1.0 + math.erf(x * _SQRT1_2))
        pdf = math.exp(-0.5 * x * x) * _INV_SQRT_2PI
        return gy * (cdf + x * pdf)

    return forward, backward


@functools.cache
def _cupy_kernels():
    import cupy as cp  # noqa: PLC0415

    forward = cp.ElementwiseKernel("T x", "T y", "y = x * (T)0.5 * ((T)1 + erf(x * (T)0.7071067811865476))",
                                   "mt_gelu_forward")
    backward = cp.ElementwiseKernel(
        "T x, T gy", "T gx",
        "T cdf = (T)0.5 * ((T)1 + erf(x * (T)0.7071067811865476));"
        "T pdf = exp((T)-0.5 * x * x) * (T)0.3989422804014327;"
        "gx = gy * (cdf + x * pdf)",
        "mt_gelu_backward")
    return forward, backward


def _kernels(x):
    return _numpy_ufuncs() if isinstance(x, np.ndarray) else _cupy_kernels()


def gelu_forward(x):
    """gelu(x) elementwise; x: any shape, float32 or float64, NumPy or CuPy."""
    forward, _ = _kernels(x)
    return forward(x)


def gelu_backward(x, gy):
    """gy * gelu'(x) elementwise."""
    _, backward = _kernels(x)
    return backward(x, gy)


def bias_gelu_forward(y, bias):
    """gelu(y + bias); y: (..., n), bias: (n,)."""
    return gelu_forward(y + bias)


def bias_gelu_backward(y, bias, gy):
    """(g_y, g_bias) for out = gelu(y + bias), from forward's inputs and the upstream gradient gy."""
    g = gelu_backward(y + bias, gy)
    return g, g.reshape(-1, g.shape[-1]).sum(axis=0)

"""float32 erf and exp that numba can vectorize (AVX2), for the fused CPU kernels.

numba calls libm's scalar erff/expf one element at a time (no SVML here), which made the elementwise GELU
of kernels/gelu.py over 10x slower than a vectorized loop (measured on MiniLM's (4096, 1536)). These are
plain arithmetic, so LLVM turns the loops that inline them into SIMD code:

- erf32: Eigen's / XLA's rational minimax approximation on [-4, 4] (erf is ±1 to float32 precision
  outside), max abs error ~4e-7 against math.erf (a few float32 ulps near ±1).
- exp32: Cephes' expf, e^x = 2^n · e^r with |r| <= ln2/2 and a degree-6 polynomial, 2^n built from its
  IEEE bits; max rel error ~1e-7 on [-87, 88] (clamped outside, like a float32 overflow/underflow).

`build()` compiles them on first use (numba imported lazily); `erf_reference`/`exp_reference` are the
NumPy float64 references the tests compare with. numba's cache keys a kernel on its own file only: after
editing this file, delete kernels/__pycache__/*.nbi so the kernels that inline these recompile.
NUMBA_DISABLE_JIT=1 runs the kernels as Python for debugging, except exp32's bit cast, which needs the JIT.
"""
from __future__ import annotations

import math

import numpy as np

_built = None


def build():
    """(erf32, exp32): numba functions of one float32 scalar, inlined into the kernels that call them."""
    global _built
    if _built is None:
        _built = _compile()
    return _built


def _compile():
    from llvmlite import ir  # noqa: PLC0415 (numba and llvmlite are imported on first use only)
    from numba import njit, types  # noqa: PLC0415
    from numba.extending import intrinsic  # noqa: PLC0415

    f32 = np.float32

    @intrinsic
    def int32_bits_as_float32(typingctx, bits):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.FloatType())

        return types.float32(types.int32), codegen

    @njit(inline="always", fastmath={"contract"}, error_model="numpy", cache=True)
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

    @njit(inline="always", fastmath={"contract"}, error_model="numpy", cache=True)
    def exp32(x):
        x = x if x < f32(88.3) else f32(88.3)
        x = x if x > f32(-87.3) else f32(-87.3)
        n = np.floor(x * f32(1.44269504088896341) + f32(0.5))  # a float: math.floor's int64 does not vectorize
        r = x - n * f32(0.693359375) + n * f32(2.12194440e-4)  # ln 2 split in two for an exact n·ln2
        p = f32(1.9875691500e-4)
        p = p * r + f32(1.3981999507e-3)
        p = p * r + f32(8.3334519073e-3)
        p = p * r + f32(4.1665795894e-2)
        p = p * r + f32(1.6666665459e-1)
        p = p * r + f32(5.0000001201e-1)
        p = p * (r * r) + r + f32(1.0)
        return p * int32_bits_as_float32((np.int32(n) + np.int32(127)) << np.int32(23))

    return erf32, exp32


def erf_reference(x: np.ndarray) -> np.ndarray:
    """erf in float64 with math.erf (tests only)."""
    return np.vectorize(math.erf)(x.astype(np.float64))


def exp_reference(x: np.ndarray) -> np.ndarray:
    return np.exp(x.astype(np.float64))

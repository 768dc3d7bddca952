"""The vectorized float32 GELU kernel and its erf/exp against float64 math, and the GELU op's dispatch.

Tolerances: the rational erf (4e-7 absolute) and Cephes exp (1e-7 relative) are at float32 rounding level; GELU's values
here reach |x| = 12, so 2e-6 absolute on gelu and 1e-6 on gelu' leave room for rounding and nothing else.
"""
import math

import numpy as np
import pytest
from minitransfer.kernels import gelu_cpu, simd_cpu

from minitransfer import Tensor, ops

_erf = np.vectorize(math.erf)


def exact_gelu(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gelu(x), gelu'(x)) in float64 with math.erf, one element at a time."""
    x64 = x.astype(np.float64)
    cdf = 0.5 * (1.0 + _erf(x64 / math.sqrt(2.0)))
    return x64 * cdf, cdf + x64 * np.exp(-0.5 * x64 * x64) / math.sqrt(2.0 * math.pi)


X = np.concatenate([np.linspace(-12, 12, 20001), [0.0, -0.0, 1e-30, -1e-30, 40.0, -40.0]]).astype(np.float32)


def test_gelu_forward_and_backward_match_float64_reference():
    want, want_grad = exact_gelu(X)
    np.testing.assert_allclose(gelu_cpu.gelu_forward(X), want, rtol=1e-6, atol=2e-6)
    gy = np.linspace(-2, 2, X.size).astype(np.float32)
    np.testing.assert_allclose(gelu_cpu.gelu_backward(X, gy), want_grad * gy, rtol=1e-6, atol=1e-6)


def test_keeps_shape_and_dtype_of_noncontiguous_input():
    x = np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32).T
    y = gelu_cpu.gelu_forward(x)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, exact_gelu(x)[0], atol=2e-6)


def _loop(fn):
    from numba import njit

    @njit
    def run(x, out):
        for i in range(x.shape[0]):
            out[i] = fn(x[i])

    def call(x):
        out = np.empty_like(x)
        run(x, out)
        return out

    return call


def test_erf32_and_exp32_match_math():
    erf32, exp32 = gelu_cpu.erf32, simd_cpu.exp32
    x = np.linspace(-6, 6, 5001).astype(np.float32)
    np.testing.assert_allclose(_loop(erf32)(x), _erf(x.astype(np.float64)), rtol=0, atol=5e-7)
    e = np.linspace(-87, 88, 5001).astype(np.float32)
    np.testing.assert_allclose(_loop(exp32)(e), np.exp(e.astype(np.float64)), rtol=3e-7)
    assert _loop(exp32)(np.array([-200.0], np.float32))[0] < 1e-37  # underflow clamps to ~0, not garbage
    assert math.isfinite(_loop(exp32)(np.array([200.0], np.float32))[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_op_dispatch_agrees_with_exact_kernel(dtype):
    x = Tensor(X.astype(dtype)[::7], requires_grad=True)
    y = ops.gelu(x)
    y.sum().backward()
    want, want_grad = exact_gelu(X[::7])
    assert y.dtype == dtype and x.grad.dtype == dtype
    np.testing.assert_allclose(y.numpy(), want, atol=2e-6 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(x.grad.numpy(), want_grad, atol=1e-6 if dtype == np.float32 else 1e-12)

"""The fused LayerNorm kernel against its NumPy reference (forward and backward), in float32 and float64,
and the LayerNorm op (which dispatches to it for NumPy arrays) against finite differences.

Tolerances: float64 matches the reference to ~1e-15 (same formula, other summation order), so 1e-12 catches
any wrong term. float32 rounds each of ~384 products: ~1e-6 relative to the largest value, so 1e-5.
"""
import numpy as np
import pytest
from minitransfer.kernels import layer_norm_cpu, layer_norm_reference

from minitransfer import Tensor, ops
from tests.gradcheck import check_gradients

TOL = {np.float64: 1e-12, np.float32: 1e-5}


def data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 1.5).astype(dtype)  # a mean far from 0 tests the centering
    w, b = (rng.standard_normal(shape[-1]).astype(dtype) for _ in range(2))
    return x, w, b, rng.standard_normal(shape).astype(dtype)


def close(actual, expected, dtype):
    scale = max(np.abs(expected).max(), 1.0)  # hidden=1 has all-zero gradients: compare on the scale of 1
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOL[dtype] * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 5, 384), (130, 7), (1, 1)])
def test_forward_and_backward_match_reference(dtype, shape):
    x, w, b, gy = data(shape, dtype)
    y, mean, rstd = layer_norm_cpu.layer_norm_forward(x, w, b, 1e-5)
    assert y.dtype == dtype and mean.dtype == dtype and y.shape == shape
    x64, w64, b64, gy64 = (a.astype(np.float64) for a in (x, w, b, gy))
    want_y, want_mean, want_rstd = layer_norm_reference.layer_norm_forward(x64, w64, b64, 1e-5)
    close(y, want_y, dtype)
    grads = layer_norm_cpu.layer_norm_backward(x, gy, w, mean, rstd)
    for got, want in zip(grads, layer_norm_reference.layer_norm_backward(x64, gy64, w64, want_mean, want_rstd)):
        assert got.dtype == dtype
        close(got, want, dtype)


def test_op_uses_kernel_and_matches_finite_differences():
    x, w, b, _ = data((3, 4, 6), np.float64, seed=1)
    check_gradients(lambda x, w, b: ops.layer_norm(x, w, b, eps=1e-5), [x, w, b])


def test_op_skips_gradients_nobody_needs():
    x, w, b, _ = data((2, 3, 8), np.float32)
    xt = Tensor(x, requires_grad=True)
    out = ops.layer_norm(xt, Tensor(w), Tensor(b))  # frozen weight and bias
    out.sum().backward()
    assert xt.grad is not None and xt.grad.dtype == np.float32
    np.testing.assert_allclose(xt.grad.numpy().sum(axis=-1), 0, atol=1e-4)  # LN's output is shift invariant

"""The fused ops that follow a Linear (ops.bias_gelu, ops.bias_dropout_residual_layer_norm) against the
compositions they replace, forward and backward, and against finite differences in float64.

Tolerances: float64 kernels match the composition to ~1e-15 (same formulas, other summation order), so 1e-12
catches any wrong term; float32 rounds each of ~384-term row sums: 1e-5 relative to the largest value.
"""
import numpy as np
import pytest
from minitransfer.kernels import dropout_rng, gelu_cpu, residual_layer_norm_cpu, residual_layer_norm_reference

import minitransfer as mt
from minitransfer import Tensor, ops
from tests.gradcheck import check_gradients
from tests.kernels.test_gelu_cpu import exact_gelu

TOL = {np.float64: 1e-12, np.float32: 1e-5}
EPS = 1e-5


def close(actual, expected, dtype):
    scale = max(np.abs(expected).max(), 1.0)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOL[dtype] * scale)


def block_inputs(rows, hidden, dtype, seed=0):
    rng = np.random.default_rng(seed)
    y, residual = ((rng.standard_normal((rows, hidden)) * 2 + 0.5).astype(dtype) for _ in range(2))
    bias, weight, ln_bias = (rng.standard_normal(hidden).astype(dtype) for _ in range(3))
    return y, bias, residual, weight, ln_bias


def composed_grads(arrays, gout, p, seed):
    """Gradients of sum(gout * LayerNorm(dropout(y + bias) + residual)) through the unfused ops, with the
    kernel's own dropout mask (kernels/dropout_rng.py's hash of (row, column))."""
    y, bias, residual, weight, ln_bias = (Tensor(a.astype(np.float64), requires_grad=True) for a in arrays)
    z = y + bias
    if p > 0:
        z = z * Tensor(dropout_rng.dropout_apply(np.ones(z.shape), seed, p))  # the scaled keep mask
    out = ops.layer_norm(z + residual, weight, ln_bias, eps=EPS)
    out.backward(gout.astype(np.float64))
    return out.numpy(), [t.grad.numpy() for t in (y, bias, residual, weight, ln_bias)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.0, 0.1])
@pytest.mark.parametrize("shape", [(70, 384), (33, 5), (1, 1)])  # 70 and 33 rows: a last block cut short
def test_residual_layer_norm_kernel_matches_composition(dtype, p, shape):
    arrays = block_inputs(*shape, dtype)
    gout = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    out, s, mean, rstd = residual_layer_norm_cpu.forward(*arrays, EPS, p, seed=1234)
    want_out, want_grads = composed_grads(arrays, gout, p, 1234)
    assert out.dtype == dtype and out.shape == shape
    close(out, want_out, dtype)
    grads = residual_layer_norm_cpu.backward(gout, s, arrays[3], mean, rstd, p, seed=1234)
    for name, got, want in zip(["y", "bias", "residual", "weight", "ln_bias"], grads, want_grads):
        assert got.dtype == dtype, name
        close(got, want, dtype)


def test_dropout_in_the_kernel_is_the_references_mask():
    arrays = block_inputs(64, 96, np.float64)
    out = residual_layer_norm_cpu.forward(*arrays, EPS, 0.25, seed=99)[0]
    close(out, residual_layer_norm_reference.forward(*arrays, EPS, 0.25, seed=99)[0], np.float64)
    other_seed = residual_layer_norm_cpu.forward(*arrays, EPS, 0.25, seed=100)[0]
    assert not np.allclose(out, other_seed)  # the seed matters


@pytest.mark.parametrize("training", [False, True])
def test_residual_layer_norm_op_matches_finite_differences(training):
    arrays = block_inputs(6, 7, np.float64, seed=2)

    def fn(*tensors):
        mt.manual_seed(5)  # the same dropout mask at every evaluation
        return ops.bias_dropout_residual_layer_norm(*tensors, eps=EPS, p=0.3, training=training)

    check_gradients(fn, list(arrays))


def test_residual_layer_norm_op_in_eval_mode_has_no_dropout():
    arrays = block_inputs(8, 16, np.float32)
    out = ops.bias_dropout_residual_layer_norm(*arrays, eps=EPS, p=0.5, training=False).numpy()
    close(out, residual_layer_norm_reference.forward(*arrays, EPS)[0], np.float32)


def test_residual_layer_norm_op_gives_no_gradient_to_frozen_inputs():
    y, bias, residual, weight, ln_bias = block_inputs(4, 8, np.float32)
    yt, rt = Tensor(y, requires_grad=True), Tensor(residual, requires_grad=True)
    frozen = [Tensor(bias), Tensor(weight), Tensor(ln_bias)]
    out = ops.bias_dropout_residual_layer_norm(yt, frozen[0], rt, *frozen[1:], eps=EPS, p=0.1, training=True)
    out.backward(np.random.default_rng(0).standard_normal(out.shape).astype(np.float32))
    assert yt.grad is not None and rt.grad is not None
    assert all(t.grad is None for t in frozen)


def test_bias_gelu_kernel_matches_float64_gelu_of_the_sum():
    rng = np.random.default_rng(3)
    y = (rng.standard_normal((70, 48)) * 3).astype(np.float32)
    bias = rng.standard_normal(48).astype(np.float32)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    want, want_slope = exact_gelu(y.astype(np.float64) + bias)
    np.testing.assert_allclose(gelu_cpu.bias_gelu_forward(y, bias), want, rtol=1e-6, atol=2e-6)
    g_y, g_bias = gelu_cpu.bias_gelu_backward(y, bias, gy)
    np.testing.assert_allclose(g_y, want_slope * gy, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(g_bias, (want_slope * gy).sum(axis=0), rtol=1e-5, atol=1e-5)


def test_bias_gelu_op_uses_the_kernel_for_float32_and_matches_the_composition():
    rng = np.random.default_rng(4)
    y, bias = rng.standard_normal((3, 5, 16)).astype(np.float32), rng.standard_normal(16).astype(np.float32)
    fused_in = [Tensor(a, requires_grad=True) for a in (y, bias)]
    fused = ops.bias_gelu(*fused_in)
    assert type(fused.creator).__name__ == "FusedBiasGELU"
    plain_in = [Tensor(a, requires_grad=True) for a in (y, bias)]
    plain = ops.gelu(plain_in[0] + plain_in[1])
    gout = rng.standard_normal(fused.shape).astype(np.float32)
    fused.backward(gout)
    plain.backward(gout)
    np.testing.assert_allclose(fused.numpy(), plain.numpy(), atol=1e-6)
    for a, b in zip(fused_in, plain_in):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_bias_gelu_op_matches_finite_differences_in_float64():
    rng = np.random.default_rng(5)
    check_gradients(ops.bias_gelu, [rng.standard_normal((4, 6)), rng.standard_normal(6)])

"""kernels/residual_layer_norm_cuda.py (bias + dropout + residual + LayerNorm) and layer_norm_cuda.py (LayerNorm)
against their references (kernels/residual_layer_norm_reference.py, layer_norm_reference.py, in float64), under
the CUDA simulator or on a GPU. The kernels compute row statistics in float32 by warp shuffles: ~1e-6 on
normalized values of order 1, gradient sums over 40 rows ~1e-5."""
import numpy as np
import pytest

pytest.importorskip("numba_cuda")

from minitransfer.kernels import layer_norm_cuda, layer_norm_reference, residual_layer_norm_reference  # noqa: E402
from minitransfer.kernels import residual_layer_norm_cuda as kernel  # noqa: E402
from minitransfer.kernels.dropout_rng import dropout_apply  # noqa: E402

EPS = 1e-12
SEED = 2**64 - 3
TOL = {"atol": 2e-5, "rtol": 1e-5}


def inputs(rows=6, n=40, seed=0):
    """(y, residual, g) (rows, n) and (bias, weight, ln_bias) (n,): n = 40 leaves lanes with 1 and 2 columns."""
    rng = np.random.default_rng(seed)
    big = [(rng.standard_normal((rows, n)) + 1.0).astype(np.float32) for _ in range(3)]
    small = [rng.standard_normal(n).astype(np.float32) for _ in range(3)]
    return big, small


def f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


@pytest.mark.parametrize("p", [0.0, 0.2])
def test_fused_forward_and_backward_match_the_reference(device, p):
    (y, residual, g), (bias, weight, ln_bias) = inputs()
    out, s, mean, rstd = kernel.forward(*(device.put(a) for a in (y.reshape(2, 3, 40), bias,
                                                                residual.reshape(2, 3, 40), weight, ln_bias)),
                                        EPS, p, SEED)
    ref_out, ref_s, ref_mean, ref_rstd = residual_layer_norm_reference.forward(*f64(y, bias, residual, weight,
                                                                                    ln_bias), EPS, p, SEED)
    assert device.get(out).shape == (2, 3, 40)
    np.testing.assert_allclose(device.get(out).reshape(6, 40), ref_out, **TOL)
    np.testing.assert_allclose(device.get(s).reshape(6, 40), ref_s, **TOL)
    np.testing.assert_allclose(device.get(mean), ref_s.mean(axis=1), **TOL)
    grads = kernel.backward(device.put(g), s, device.put(weight), mean, rstd, p, SEED)
    reference = residual_layer_norm_reference.backward(*f64(g, ref_s, weight), ref_mean, ref_rstd, p, SEED)
    for ours, ref in zip(grads, reference):
        np.testing.assert_allclose(device.get(ours).reshape(ref.shape), ref, **TOL)


def test_dropout_is_dropout_rngs_mask_over_rows_and_hidden_bit_for_bit_and_backward_rebuilds_it(device):
    (y, _, g), (_, weight, ln_bias) = inputs()
    zeros = np.zeros_like(y)
    _, s, mean, rstd = kernel.forward(*(device.put(a) for a in (y, np.zeros(40, np.float32), zeros, weight,
                                                                ln_bias)), EPS, 0.5, SEED)
    np.testing.assert_array_equal(device.get(s), dropout_apply(y, SEED, 0.5))  # ops.dropout's (rows, hidden) view
    g_y, _, g_residual, _, _ = (device.get(a) for a in kernel.backward(device.put(g), s, device.put(weight), mean,
                                                                       rstd, 0.5, SEED))
    np.testing.assert_array_equal(g_y, dropout_apply(g_residual, SEED, 0.5))


def test_plain_layer_norm_matches_the_reference(device):
    (x, _, gy), (_, weight, bias) = inputs(rows=5, n=32)
    out, mean, rstd = layer_norm_cuda.layer_norm_forward(device.put(x), device.put(weight), device.put(bias), 1e-5)
    ref_out, ref_mean, ref_rstd = layer_norm_reference.layer_norm_forward(*f64(x, weight, bias), 1e-5)
    np.testing.assert_allclose(device.get(out), ref_out, **TOL)
    grads = layer_norm_cuda.layer_norm_backward(device.put(x), device.put(gy), device.put(weight), mean, rstd)
    for ours, ref in zip(grads, layer_norm_reference.layer_norm_backward(*f64(x, gy, weight), ref_mean, ref_rstd)):
        np.testing.assert_allclose(device.get(ours), ref, **TOL)


def test_float16_storage_is_computed_in_float32(device):
    (y, residual, g), (bias, weight, ln_bias) = inputs(rows=4)
    half = [a.astype(np.float16) for a in (y, residual, g)]
    out, s, mean, rstd = kernel.forward(device.put(half[0]), device.put(bias), device.put(half[1]),
                                        device.put(weight), device.put(ln_bias), EPS)
    assert device.get(out).dtype == device.get(s).dtype == np.float16
    ref_out, ref_s, _, _ = residual_layer_norm_reference.forward(*f64(half[0], bias, half[1], weight, ln_bias), EPS)
    np.testing.assert_allclose(device.get(out), ref_out, atol=1e-2, rtol=1e-2)  # out rounded to float16 once
    g_y = device.get(kernel.backward(device.put(half[2]), s, device.put(weight), mean, rstd)[0])
    stored_s = device.get(s).astype(np.float64)  # backward normalizes the float16 s it is given
    mean64, rstd64 = stored_s.mean(axis=1), 1 / np.sqrt(stored_s.var(axis=1) + EPS)
    ref = residual_layer_norm_reference.backward(*f64(half[2], stored_s, weight), mean64, rstd64)[0]
    np.testing.assert_allclose(g_y, ref, atol=1e-2, rtol=1e-2)

"""kernels/gelu_cuda.py (bias + GELU, GELU) against kernels/gelu_reference.py in float64, under the CUDA simulator
or on a GPU. float32 arithmetic with libdevice's erff and expf: ~1e-7 relative, so 1e-6 absolute on values of
order 1."""
import numpy as np
import pytest

pytest.importorskip("numba_cuda")

from minitransfer.kernels import gelu_cuda, gelu_reference  # noqa: E402


def value_and_slope(x):
    """gelu(x) and gelu'(x) in float64, from the reference."""
    x = x.astype(np.float64)
    return gelu_reference.gelu_forward(x), gelu_reference.gelu_backward(x, np.ones_like(x))


def inputs(rows=40, n=32, dtype=np.float32):
    rng = np.random.default_rng(0)
    y = (2 * rng.standard_normal((rows, n))).astype(dtype)
    return y, rng.standard_normal(n).astype(dtype), rng.standard_normal((rows, n)).astype(dtype)


def test_forward_and_backward_match_the_reference(device):
    y, bias, gy = inputs()  # 40 rows: two partial bias-gradient rows, the second one short
    out = device.get(gelu_cuda.bias_gelu_forward(device.put(y.reshape(4, 10, 32)), device.put(bias)))
    value, slope = value_and_slope(y + bias)
    assert out.shape == (4, 10, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out.reshape(y.shape), value, atol=1e-6, rtol=1e-6)
    g_y, g_bias = gelu_cuda.bias_gelu_backward(device.put(y), device.put(bias), device.put(gy))
    np.testing.assert_allclose(device.get(g_y), gy * slope, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(device.get(g_bias), (gy * slope).sum(axis=0), atol=1e-5, rtol=1e-5)


def test_float16_storage_is_computed_in_float32(device):
    y, bias, gy = inputs(rows=8, dtype=np.float16)
    out = device.get(gelu_cuda.bias_gelu_forward(device.put(y), device.put(bias)))
    value, slope = value_and_slope(y.astype(np.float32) + bias.astype(np.float32))
    assert out.dtype == np.float16
    np.testing.assert_allclose(out, value, atol=2e-3, rtol=1e-3)  # one float16 rounding of the result
    g_y, g_bias = (device.get(a) for a in gelu_cuda.bias_gelu_backward(device.put(y), device.put(bias),
                                                                         device.put(gy)))
    assert g_y.dtype == g_bias.dtype == np.float16
    np.testing.assert_allclose(g_y, gy * slope, atol=2e-3, rtol=1e-3)
    np.testing.assert_allclose(g_bias, (gy.astype(np.float64) * slope).sum(axis=0), atol=1e-2, rtol=1e-2)


def test_plain_gelu_is_bias_gelu_without_the_bias(device):
    x, _, gy = inputs(rows=3)
    value, slope = value_and_slope(x)
    np.testing.assert_allclose(device.get(gelu_cuda.gelu_forward(device.put(x))), value, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(device.get(gelu_cuda.gelu_backward(device.put(x), device.put(gy))), gy * slope,
                               atol=1e-6, rtol=1e-6)

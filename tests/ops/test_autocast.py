"""autocast: GEMM-like ops compute in float16, normalizations, softmax and losses in float32, and float32
parameters get float32 gradients through the casts; outside a block nothing changes."""
import numpy as np
import pytest

import minitransfer as mt
from minitransfer import Tensor, ops
from minitransfer.errors import ConfigError


def tensor(*shape, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32), requires_grad=True)


def test_linear_runs_in_half_and_its_weight_gets_a_float32_grad():
    x, w, b = tensor(4, 8), tensor(3, 8, seed=1), tensor(3, seed=2)
    with mt.autocast(np.float16):
        y = ops.linear(x, w, b)
    assert y.dtype == np.float16
    expected = x.data.astype(np.float16) @ w.data.astype(np.float16).T + b.data.astype(np.float16)
    np.testing.assert_array_equal(y.data, expected)
    y.sum().backward()
    assert w.grad.dtype == b.grad.dtype == x.grad.dtype == np.float32
    # dW = sum over rows of x: float16 rounding only (~1e-3 relative)
    np.testing.assert_allclose(w.grad.data, np.tile(x.data.sum(0), (3, 1)), rtol=2e-3, atol=2e-3)


def test_matmul_and_attention_run_in_half():
    a, b = tensor(2, 3, 4), tensor(2, 4, 5, seed=1)
    q, k, v = (tensor(2, 2, 5, 4, seed=s) for s in range(3))
    with mt.autocast(np.float16):
        assert (a @ b).dtype == np.float16
        out = ops.attention(q, k, v, np.ones((2, 5), np.int64))
        packed = ops.varlen_attention(tensor(6, 2, 4), tensor(6, 2, 4, seed=1), tensor(6, 2, 4, seed=2), [0, 2, 6])
    assert out.dtype == packed.dtype == np.float16
    out.sum().backward()
    assert q.grad.dtype == np.float32


@pytest.mark.parametrize("op", ["layer_norm", "residual_layer_norm", "softmax", "log_softmax", "cross_entropy"])
def test_normalizations_softmax_and_loss_run_in_float32(op):
    half = Tensor(np.random.default_rng(0).standard_normal((4, 6)).astype(np.float16), requires_grad=True)
    w, b = Tensor(np.ones(6, np.float32)), Tensor(np.zeros(6, np.float32))
    calls = {"layer_norm": lambda: ops.layer_norm(half, w, b, 1e-5),
             "residual_layer_norm": lambda: ops.bias_dropout_residual_layer_norm(half, b, half, w, b, 1e-5, 0.0,
                                                                                 False),
             "softmax": lambda: ops.softmax(half), "log_softmax": lambda: ops.log_softmax(half),
             "cross_entropy": lambda: ops.cross_entropy(half, np.array([0, 1, 2, 3]))}
    with mt.autocast(np.float16):
        y = calls[op]()
    assert y.dtype == np.float32
    y.sum().backward()
    assert half.grad.dtype == np.float16  # the gradient goes back in the input's dtype
    half = Tensor(half.data.astype(np.float32))
    np.testing.assert_array_equal(y.data, calls[op]().data)  # the same as the float32 op on the upcast input


def test_off_by_default_and_restored_after_the_block():
    x, w = tensor(2, 3), tensor(4, 3)
    with mt.autocast(np.float16):
        with mt.autocast(enabled=False):
            assert ops.linear(x, w).dtype == np.float32
        assert ops.linear(x, w).dtype == np.float16
    assert ops.linear(x, w).dtype == np.float32


def test_bfloat16_is_refused():
    with pytest.raises(ConfigError, match="bfloat16"):
        with mt.autocast("bfloat16"):
            pass

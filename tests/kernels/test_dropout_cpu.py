"""The counter-based dropout kernel: bit-exact against its NumPy reference, the right keep rate, the same
mask in backward, and seeded through minitransfer.manual_seed."""
import numpy as np
import pytest
from minitransfer.kernels import dropout_cpu

import minitransfer
from minitransfer import Tensor, ops


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_reference_mask_and_scale(dtype):
    x = np.random.default_rng(0).standard_normal((4, 33, 17)).astype(dtype)
    y = dropout_cpu.dropout_apply(x, seed=2**40 + 7, p=0.25)
    keep = dropout_cpu.keep_mask_reference(x.size, 2**40 + 7, 0.25).reshape(x.shape)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, np.where(keep, x * dtype(1 / 0.75), 0))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_rate_and_independence_of_seeds(p):
    n = 200_000
    a = dropout_cpu.keep_mask_reference(n, 1, p)
    b = dropout_cpu.keep_mask_reference(n, 2, p)
    assert abs(a.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)  # within 5 standard errors
    both = (a & b).mean()  # independent masks overlap at (1-p)^2
    assert abs(both - (1 - p) ** 2) < 5 * np.sqrt(both * (1 - both) / n)
    assert abs(dropout_cpu.keep_mask_reference(n, 2**32, p).mean() - (1 - p)) < 0.01  # high seed bits matter


def test_op_backward_reuses_forward_mask_and_is_seeded():
    x = Tensor(np.ones((8, 64), np.float32), requires_grad=True)
    minitransfer.manual_seed(3)
    y = ops.dropout(x, 0.5, training=True)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())  # d(sum y)/dx = the scaled keep mask itself
    assert set(np.unique(y.numpy())) == {0.0, 2.0}
    minitransfer.manual_seed(3)
    np.testing.assert_array_equal(ops.dropout(x, 0.5, training=True).numpy(), y.numpy())
    assert not np.array_equal(ops.dropout(x, 0.5, training=True).numpy(), y.numpy())

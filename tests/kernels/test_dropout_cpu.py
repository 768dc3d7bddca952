"""The counter-based dropout kernel: bit-exact against its NumPy reference (kernels/dropout_rng.py), the right
keep rate, independent rows and columns, the same mask in backward, and seeded through minitransfer.manual_seed."""
import numpy as np
import pytest
from minitransfer.kernels import dropout_cpu, dropout_rng

import minitransfer
from minitransfer import Tensor, ops


def keep_mask(seed, rows, columns, p):
    """The reference's boolean mask of a (rows, columns) array."""
    return dropout_rng.scaled_keep(*dropout_rng.row_key_halves(seed, rows), columns, p, np.float64) != 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_reference_mask_and_scale(dtype):
    x = np.random.default_rng(0).standard_normal((4, 33, 17)).astype(dtype)
    y = dropout_cpu.dropout_apply(x, seed=2**40 + 7, p=0.25)
    keep = keep_mask(2**40 + 7, 4 * 33, 17, 0.25).reshape(x.shape)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, np.where(keep, x * dtype(1 / 0.75), 0))
    np.testing.assert_array_equal(y, dropout_rng.dropout_apply(x, 2**40 + 7, 0.25))


def test_the_mask_is_the_documented_scheme():
    """dropout_rng.py's docstring in plain Python integers: the code computes what the documentation says."""
    golden, m64, m32 = 0x9E3779B97F4A7C15, 2**64 - 1, 2**32 - 1

    def mix64(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m64
        return z ^ (z >> 31)

    def mix32(x):
        x = ((x ^ (x >> 16)) * 0x7FEB352D) & m32
        x = ((x ^ (x >> 15)) * 0x846CA68B) & m32
        return x ^ (x >> 16)

    seed, p = 2**63 + 12345, 0.3
    kept = keep_mask(seed, 5, 40, p)
    for row in range(5):
        key = mix64((seed + (row + 1) * golden) & m64)
        for column in range(40):
            h = mix32(mix32((column * 0x9E3779B9 + (key & m32)) & m32) ^ (key >> 32))
            assert kept[row, column] == (h >= round(p * 2**32)), (row, column)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_rate_and_independence_of_seeds(p):
    n = 200_000
    a = keep_mask(1, 200, 1000, p)
    b = keep_mask(2, 200, 1000, p)
    assert abs(a.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)  # within 5 standard errors
    both = (a & b).mean()  # independent masks overlap at (1-p)^2
    assert abs(both - (1 - p) ** 2) < 5 * np.sqrt(both * (1 - both) / n)
    assert abs(keep_mask(2**32, 200, 1000, p).mean() - (1 - p)) < 0.01  # high seed bits matter
    for axis in (0, 1):  # neighbouring rows and columns are dropped independently
        pairs = (np.take(a, range(1, a.shape[axis]), axis) & np.take(a, range(a.shape[axis] - 1), axis)).mean()
        assert abs(pairs - (1 - p) ** 2) < 5 * np.sqrt(pairs * (1 - pairs) / n)


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

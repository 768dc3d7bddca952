"""Linear's weight gradient takes one of two GEMM layouts by shape; both must give x-transpose-times-gy."""
import numpy as np
import pytest

from minitransfer import Tensor, ops


@pytest.mark.parametrize("in_features,out_features", [(3, 7), (7, 3), (5, 5)])
def test_weight_gradient_in_both_layouts(in_features, out_features):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, in_features)).astype(np.float32)
    w = Tensor(rng.standard_normal((out_features, in_features)).astype(np.float32), requires_grad=True)
    gy = rng.standard_normal((2, 4, out_features)).astype(np.float32)
    ops.linear(Tensor(x), w).backward(gy)
    want = gy.reshape(-1, out_features).T.astype(np.float64) @ x.reshape(-1, in_features)
    np.testing.assert_allclose(w.grad.numpy(), want, rtol=1e-5, atol=1e-5)
    assert w.grad.numpy().flags.c_contiguous  # optimizers get a C-ordered gradient whichever layout ran

"""kernels/cross_entropy_cuda.py against its reference, ops CrossEntropy (the NumPy composition) in float64, under
the CUDA simulator or on a GPU. float32 log-sum-exp against float64: ~1e-6 relative."""
import numpy as np
import pytest

pytest.importorskip("numba_cuda")

from minitransfer import Tensor, ops  # noqa: E402
from minitransfer.kernels import cross_entropy_cuda as kernel  # noqa: E402


def reference_cross_entropy(logits, targets):
    """(loss, d loss / d logits) in float64 from ops.cross_entropy (CrossEntropy on NumPy arrays)."""
    x = Tensor(logits.astype(np.float64), requires_grad=True)
    loss = ops.cross_entropy(x, targets)
    loss.backward()
    return float(loss.data), x.grad.data


def logits_and_targets(rows=6, classes=40, dtype=np.float32):
    rng = np.random.default_rng(0)
    logits = (3 * rng.standard_normal((rows, classes))).astype(dtype)
    targets = rng.integers(0, classes, rows)
    targets[1::3] = -100  # ignored rows
    return logits, targets


def test_forward_and_backward_match_the_reference_and_ops_cross_entropy(device):
    logits, targets = logits_and_targets()
    loss, lse, count = kernel.cross_entropy_forward(device.put(logits), device.put(targets))
    ref_loss, ref_grad = reference_cross_entropy(logits, targets)
    assert float(device.get(count)) == 4
    np.testing.assert_allclose(float(device.get(loss)), ref_loss, rtol=1e-6)
    np.testing.assert_allclose(device.get(lse), np.log(np.exp(logits.astype(np.float64)).sum(axis=1)), rtol=1e-6)
    grad = device.get(kernel.cross_entropy_backward(device.put(logits), device.put(targets), lse, count,
                                                    device.put(np.array(2.0, np.float32))))
    np.testing.assert_allclose(grad, 2.0 * ref_grad, atol=1e-7, rtol=1e-5)
    assert (grad[[1, 4]] == 0).all()
    x = Tensor(logits, requires_grad=True)  # the op this kernel stands in for, in float32
    out = ops.cross_entropy(x, targets)
    out.backward()
    np.testing.assert_allclose(float(device.get(loss)), float(out.data), rtol=1e-6)
    np.testing.assert_allclose(grad / 2.0, x.grad.data, atol=1e-7, rtol=1e-5)


def test_every_row_ignored_gives_zero_loss_and_gradient(device):
    logits, _ = logits_and_targets(rows=3)
    targets = np.full(3, -100)
    loss, lse, count = kernel.cross_entropy_forward(device.put(logits), device.put(targets))
    assert float(device.get(loss)) == 0.0
    grad = kernel.cross_entropy_backward(device.put(logits), device.put(targets), lse, count,
                                         device.put(np.ones(1, np.float32)))
    assert (device.get(grad) == 0).all()


def test_float16_logits_give_a_float32_loss(device):
    logits, targets = logits_and_targets(dtype=np.float16)
    loss, lse, count = kernel.cross_entropy_forward(device.put(logits), device.put(targets))
    assert device.get(loss).dtype == np.float32
    ref_loss, ref_grad = reference_cross_entropy(logits, targets)
    np.testing.assert_allclose(float(device.get(loss)), ref_loss, rtol=1e-6)  # same float16 inputs, fp32 math
    grad = device.get(kernel.cross_entropy_backward(device.put(logits), device.put(targets), lse, count,
                                                    device.put(np.ones(1, np.float32))))
    assert grad.dtype == np.float16
    np.testing.assert_allclose(grad, ref_grad, atol=1e-4, rtol=1e-3)

"""kernels/grad_norm_cuda.py (the global gradient norm and clipping coefficient) against
minitransfer.optim.clip_grad_norm_ (its reference on NumPy arrays), under the CUDA simulator or on a GPU."""
import math

import numpy as np
import pytest

pytest.importorskip("numba_cuda")

from minitransfer import Tensor  # noqa: E402
from minitransfer.kernels import grad_norm_cuda as kernel  # noqa: E402
from minitransfer.optim import clip_grad_norm_  # noqa: E402


def gradients():
    rng = np.random.default_rng(0)
    return [rng.standard_normal(size).astype(np.float32) for size in (1, 7, 300, 1000)]


@pytest.mark.parametrize("max_norm", [1.0, 1e6, math.inf])
def test_norm_and_clip_coefficient_match_numpy_and_clip_grad_norm(device, max_norm):
    grads = gradients()
    norm, clip_coef = (device.get(a) for a in kernel.grad_norm([device.put(g) for g in grads], max_norm))
    params = [Tensor(np.zeros_like(g), requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = Tensor(g.copy())
    np.testing.assert_allclose(norm[0], clip_grad_norm_(params, max_norm), rtol=1e-6)
    clipped = max_norm / (norm[0] + 1e-6) < 1
    np.testing.assert_allclose(clip_coef[0], max_norm / (norm[0] + 1e-6) if clipped else 1.0, rtol=1e-6)
    for p, g in zip(params, grads):  # what clip_grad_norm_ did to each gradient
        np.testing.assert_allclose(p.grad.data, g * clip_coef[0], rtol=1e-6)


def test_a_non_finite_gradient_gives_a_non_finite_norm(device):
    grads = gradients()
    grads[2][5] = np.inf
    norm, clip_coef = (device.get(a) for a in kernel.grad_norm([device.put(g) for g in grads], 1.0))
    assert norm[0] == np.inf and clip_coef[0] == 0.0  # as torch: the caller skips such a step

"""kernels/grad_norm_cuda.py (the global gradient norm and clipping coefficient) against NumPy and
minitransfer.optim.clip_grad_norm_, under the CUDA simulator or on a GPU."""
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
    norm, clip_coef = (device.get(a) for a in kernel.grad_norm(device.put(np.concatenate(grads)), max_norm))
    ref_norm, ref_coef = kernel.reference_grad_norm(grads, max_norm)
    np.testing.assert_allclose(norm[0], ref_norm, rtol=1e-6)
    np.testing.assert_allclose(clip_coef[0], ref_coef, rtol=1e-6)
    params = [Tensor(np.zeros_like(g), requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = Tensor(g.copy())
    np.testing.assert_allclose(norm[0], clip_grad_norm_(params, max_norm), rtol=1e-6)
    np.testing.assert_allclose(params[2].grad.data, grads[2] * clip_coef[0], rtol=1e-6)


def test_a_non_finite_gradient_gives_a_non_finite_norm(device):
    grads = np.concatenate(gradients())
    grads[5] = np.inf
    norm, clip_coef = (device.get(a) for a in kernel.grad_norm(device.put(grads), 1.0))
    assert norm[0] == np.inf and clip_coef[0] == 0.0  # as torch: the caller skips such a step

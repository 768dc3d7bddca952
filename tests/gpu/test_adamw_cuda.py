"""kernels/adamw_cuda.py (one launch over every parameter) against kernels/adamw_reference.py in float64, under the
CUDA simulator or on a GPU. float32 arithmetic against float64: ~1e-7 relative per step."""
import numpy as np
import pytest

pytest.importorskip("numba_cuda")

from minitransfer.kernels import adamw_cuda as kernel  # noqa: E402
from minitransfer.kernels.adamw_reference import adamw_update  # noqa: E402

SIZES = [1, 7, 33, 2 * kernel.CHUNK + 5, 300]  # odd sizes; one tensor spans three chunks
BETAS = (0.9, 0.999)


def test_one_launch_updates_every_tensor_as_the_reference(device):
    rng = np.random.default_rng(0)
    offsets, chunks = kernel.multi_tensor_layout(SIZES)
    total = offsets[-1]
    param, grad = rng.standard_normal(total).astype(np.float32), rng.standard_normal(total).astype(np.float32)
    exp_avg = (0.1 * rng.standard_normal(total)).astype(np.float32)
    exp_avg_sq = (0.01 * rng.random(total)).astype(np.float32)
    lrs, wds, steps = [1e-3, 1e-3, 2e-3, 1e-3, 5e-4], [0.01, 0.0, 0.01, 0.1, 0.0], [1, 5, 2, 100, 3]
    active = [1, 1, 0, 1, 1]  # tensor 2 has no gradient this step
    scalars = kernel.adamw_scalars(lrs, wds, steps, *BETAS, active)
    buffers = [device.put(a) for a in (param, grad, exp_avg, exp_avg_sq)]
    kernel.adamw_multi_tensor(*buffers, device.put(chunks), device.put(scalars), *BETAS, 1e-8,
                              device.put(np.array([0.5], np.float32)))
    new_param, _, new_m, new_v = (device.get(b) for b in buffers)
    for t, (start, end) in enumerate(zip(offsets[:-1], offsets[1:])):
        part = slice(start, end)
        if not active[t]:
            for new, old in ((new_param, param), (new_m, exp_avg), (new_v, exp_avg_sq)):
                np.testing.assert_array_equal(new[part], old[part])
            continue
        ref = [a[part].astype(np.float64) for a in (param, exp_avg, exp_avg_sq)]
        adamw_update(ref[0], 0.5 * grad[part].astype(np.float64), *ref[1:], steps[t], lrs[t], *BETAS, 1e-8, wds[t])
        for ours, expected in zip((new_param, new_m, new_v), ref):
            np.testing.assert_allclose(ours[part], expected, rtol=2e-6, atol=1e-7, err_msg=f"tensor {t}")


def test_the_layout_cuts_each_tensor_into_chunks_of_its_own():
    offsets, chunks = kernel.multi_tensor_layout(SIZES)
    assert offsets.tolist() == np.concatenate([[0], np.cumsum(SIZES)]).tolist()
    covered = np.zeros(offsets[-1], int)
    for tensor, start, end in chunks:
        assert offsets[tensor] <= start < end <= offsets[tensor + 1] and end - start <= kernel.CHUNK
        covered[start:end] += 1
    assert (covered == 1).all()

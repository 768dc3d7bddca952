"""clip_grad_norm_ against torch.nn.utils.clip_grad_norm_ on the same gradients."""
import numpy as np
import pytest

from minitransfer.autograd import Tensor
from minitransfer.nn import Parameter
from minitransfer.optim import clip_grad_norm_

SHAPES = [(30, 20), (20,), (5, 4, 3), ()]


@pytest.mark.parametrize("scale, max_norm", [(1.0, 1.0), (1.0, 1e3), (100.0, 0.5)])
def test_matches_torch(scale, max_norm):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    grads = [np.asarray(scale * rng.standard_normal(s), dtype=np.float32) for s in SHAPES]
    params = [Parameter(np.zeros(s, np.float32)) for s in SHAPES] + [Parameter(np.zeros(3, np.float32))]
    for p, g in zip(params, grads):
        p.grad = Tensor(g.copy())  # the last parameter has no gradient and is ignored
    tparams = [torch.zeros(s, requires_grad=True) for s in SHAPES]
    for p, g in zip(tparams, grads):
        p.grad = torch.from_numpy(g.copy())

    norm = clip_grad_norm_(params, max_norm)
    tnorm = float(torch.nn.utils.clip_grad_norm_(tparams, max_norm))

    assert isinstance(norm, float)
    assert norm == pytest.approx(tnorm, rel=1e-6)
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.grad.data, t.grad.numpy(), rtol=1e-6, atol=1e-9)
    clipped = np.sqrt(sum(float((p.grad.data.astype(np.float64) ** 2).sum()) for p in params[:-1]))
    assert clipped == pytest.approx(min(norm, max_norm), rel=1e-5)


def test_no_gradients_gives_zero_norm():
    assert clip_grad_norm_([Parameter(np.ones(3, np.float32))], 1.0) == 0.0

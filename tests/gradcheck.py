"""Central finite-difference gradient checks in float64, shared by the op and layer tests."""
from __future__ import annotations

import numpy as np

from minitransfer import Tensor


def numerical_grad(f, arrays, index, eps=1e-6, weights=None):
    """d(sum(f(arrays) * weights)) / d arrays[index] by central differences."""
    x = arrays[index]
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        plus = (f(*arrays) * weights).sum()
        x[i] = old - eps
        minus = (f(*arrays) * weights).sum()
        x[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def check_gradients(fn, arrays, wrt=None, atol=1e-6, rtol=1e-5, seed=0):
    """Assert that fn's analytic gradients match finite differences.

    fn: callable taking Tensors, returning a Tensor; arrays: float64 inputs; wrt: indices to check
    (default: every floating-point input). A random upstream gradient makes every output element count.
    """
    arrays = [np.array(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else np.asarray(a) for a in arrays]
    wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"] if wrt is None else wrt
    tensors = [Tensor(a.copy(), requires_grad=i in wrt) for i, a in enumerate(arrays)]
    out = fn(*tensors)
    weights = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(weights)

    def f(*xs):
        return fn(*[Tensor(x) for x in xs]).numpy()

    for i in wrt:
        expected = numerical_grad(f, arrays, i, weights=weights)
        assert tensors[i].grad is not None, f"input {i} got no gradient"
        np.testing.assert_allclose(tensors[i].grad.numpy(), expected, atol=atol, rtol=rtol,
                                   err_msg=f"gradient of input {i}")

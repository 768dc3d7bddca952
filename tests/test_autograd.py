"""The engine's contracts: correct repeated backward, leaf-only grads, no graph under no_grad, freed graphs."""
import ast
import gc
import weakref
from pathlib import Path

import numpy as np
import pytest

from minitransfer import Tensor, autograd, no_grad, ops


def test_backward_twice_on_fresh_graphs_gives_the_same_gradient():
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    for _ in range(2):
        x.zero_grad()
        y = (x * x + x).sum()
        y.backward()
        np.testing.assert_allclose(x.grad.numpy(), 2 * x.data + 1)


def test_gradients_accumulate_across_backward_calls_like_torch():
    x = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])


def test_retain_graph_allows_a_second_backward_and_without_it_a_clear_error():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)
    with pytest.raises(RuntimeError, match="already freed"):
        y.backward()


def test_diamond_graph_sums_both_paths():
    x = Tensor(np.array([2.0]), requires_grad=True)
    a = x * 3.0
    y = (a * a + a).sum()  # y = 9x^2 + 3x
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [18 * 2.0 + 3])


def test_only_leaves_keep_gradients():
    x = Tensor(np.ones(3), requires_grad=True)
    hidden = x * 2.0
    hidden.sum().backward()
    assert hidden.grad is None and x.grad is not None


def test_no_grad_records_no_graph():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = x * 2.0 + 1.0
    assert y.creator is None and not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_frozen_inputs_get_no_gradient_and_no_graph():
    frozen = Tensor(np.ones((2, 2)))
    y = ops.matmul(frozen, frozen)
    assert y.creator is None


def test_graph_is_freed_after_backward():
    x = Tensor(np.ones((4, 4)), requires_grad=True)
    y = ops.softmax(x * 2.0)
    fn = weakref.ref(y.creator)
    loss = y.sum()
    loss.backward()
    del y, loss
    gc.collect()
    assert fn() is None or getattr(fn(), "released", False)


def test_shared_upstream_gradient_is_not_aliased_between_leaves():
    a = Tensor(np.zeros(3), requires_grad=True)
    b = Tensor(np.zeros(3), requires_grad=True)
    (a + b).sum().backward()
    a.grad.data *= 5  # an optimizer clipping in place must not touch b's gradient
    np.testing.assert_allclose(b.grad.numpy(), 1.0)


def test_numpy_on_the_left_dispatches_to_tensor():
    x = Tensor(np.ones(2), requires_grad=True)
    y = np.array([1.0, 2.0]) * x
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 2.0])


def test_fresh_leaf_gradients_are_kept_without_a_copy_but_shared_ones_are_copied():
    """A parameter's first gradient is adopted when backward made it for that parameter alone (no copy of every
    weight per step); an array backward handed to two leaves (the fused LayerNorm's g_y and g_residual are
    one array when p = 0) still becomes two gradients."""
    rng = np.random.default_rng(0)
    x, w = Tensor(rng.standard_normal((4, 3))), Tensor(rng.standard_normal((5, 3)), requires_grad=True)
    y = ops.linear(x, w)
    y.backward(np.ones(y.shape))
    assert w.grad.data.base is None and w.grad.data.flags.c_contiguous
    np.testing.assert_allclose(w.grad.numpy(), np.ones((4, 5)).T @ x.numpy())
    y2, res = (Tensor(rng.standard_normal((4, 6)), requires_grad=True) for _ in range(2))
    out = ops.bias_dropout_residual_layer_norm(y2, np.zeros(6), res, np.ones(6), np.zeros(6), 1e-5, 0.0, False)
    out.backward(rng.standard_normal(out.shape))
    np.testing.assert_array_equal(y2.grad.numpy(), res.grad.numpy())
    y2.grad.data += 1  # an optimizer's in-place edit of one must not reach the other
    assert not np.array_equal(y2.grad.numpy(), res.grad.numpy())


def test_autograd_imports_nothing_above_the_backend():
    """Tensor's operators are installed by minitransfer.ops (ops/tensor_operators.py), so autograd needs no op."""
    tree = ast.parse(Path(autograd.__file__).read_text())
    imported = {f"{node.module}.{alias.name}" if node.module == "minitransfer" else node.module
                for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert {name for name in imported if name.startswith("minitransfer")} == {"minitransfer.backend"}
    x = Tensor(np.array([[1.0, 2.0]]), requires_grad=True)
    assert type((2.0 * x @ x.T).creator).__name__ == "MatMul"  # the operators are there all the same

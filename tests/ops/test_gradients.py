"""Every op's forward against NumPy and backward against central finite differences, in float64.

Adding an op = adding one row to CASES: (name, function of Tensors, input arrays).
"""
import numpy as np
import pytest

from minitransfer import Tensor, ops
from minitransfer.ops.attention import ReferenceAttention
from tests.gradcheck import check_gradients

rng = np.random.default_rng(0)


def r(*shape):
    return rng.standard_normal(shape)


def positive(*shape):
    return rng.uniform(0.5, 2.0, shape)


IDS = np.array([[1, 3, 3], [0, 4, 1]])
TARGETS = np.array([2, -100, 0, 1, 2])
PADDING = np.array([[1, 1, 1, 0], [1, 1, 1, 1]])

CASES = [
    ("add", lambda a, b: a + b, [r(3, 4), r(3, 4)]),
    ("add_broadcast", lambda a, b: a + b, [r(2, 3, 4), r(4)]),
    ("add_broadcast_keepdim", lambda a, b: a + b, [r(2, 3, 4), r(2, 1, 4)]),
    ("add_scalar", lambda a: 2.5 + a, [r(3)]),
    ("sub", lambda a, b: a - b, [r(3, 4), r(1, 4)]),
    ("rsub_scalar", lambda a: 1.0 - a, [r(3)]),
    ("mul", lambda a, b: a * b, [r(3, 4), r(3, 1)]),
    ("div", lambda a, b: a / b, [r(3, 4), positive(4)]),
    ("rdiv_scalar", lambda a: 2.0 / a, [positive(5)]),
    ("neg", lambda a: -a, [r(3, 2)]),
    ("pow", lambda a: a**3, [r(3, 2)]),
    ("pow_fraction", lambda a: a**0.5, [positive(3, 2)]),
    ("exp", ops.exp, [r(3, 4)]),
    ("log", ops.log, [positive(3, 4)]),
    ("sqrt", ops.sqrt, [positive(3, 4)]),
    ("tanh", ops.tanh, [r(3, 4)]),
    ("gelu", ops.gelu, [r(4, 5) * 2]),
    ("relu", ops.relu, [r(4, 5)]),
    ("matmul_2d", ops.matmul, [r(3, 4), r(4, 5)]),
    ("matmul_batched", ops.matmul, [r(2, 3, 4), r(2, 4, 5)]),
    ("matmul_broadcast_weight", ops.matmul, [r(2, 3, 4), r(4, 5)]),
    ("matmul_broadcast_batch", ops.matmul, [r(2, 1, 3, 4), r(3, 4, 2)]),
    ("matmul_vector", ops.matmul, [r(2, 3, 4), r(4)]),
    ("linear", ops.linear, [r(2, 3, 4), r(5, 4), r(5)]),
    ("linear_no_bias", ops.linear, [r(3, 4), r(5, 4)]),
    ("reshape", lambda a: a.reshape(4, 3), [r(2, 6)]),
    ("transpose", lambda a: a.transpose(0, 2, 1), [r(2, 3, 4)]),
    ("transpose_T", lambda a: a.T, [r(2, 3)]),
    ("slice", lambda a: a[:, 1:3], [r(3, 4)]),
    ("int_index", lambda a: a[:, 0], [r(2, 3, 4)]),
    ("gather_repeated", lambda a: a[np.array([0, 2, 0])], [r(3, 4)]),
    ("advanced_pair", lambda a: a[np.array([0, 1, 1]), np.array([2, 0, 2])], [r(2, 3)]),
    ("embedding", lambda w: ops.embedding(IDS, w), [r(5, 3)]),
    ("embedding_padding_idx",
     lambda w: ops.embedding(IDS, w) * 1.0 + ops.embedding(IDS, w, padding_idx=4).sum() * 0.0, [r(5, 3)]),
    ("concat", lambda a, b: ops.concat([a, b], axis=1), [r(2, 3), r(2, 2)]),
    ("where", lambda a, b: ops.where(np.array([[True, False, True]]), a, b), [r(2, 3), r(2, 3)]),
    ("masked_fill", lambda a: ops.masked_fill(a, np.array([True, False, False, True]), -5.0), [r(3, 4)]),
    ("sum_all", lambda a: a.sum(), [r(3, 4)]),
    ("sum_axis", lambda a: a.sum(axis=1), [r(2, 3, 4)]),
    ("sum_axes_keepdims", lambda a: a.sum(axis=(0, 2), keepdims=True), [r(2, 3, 4)]),
    ("mean_axis", lambda a: a.mean(axis=-1), [r(2, 3, 4)]),
    ("max_axis", lambda a: a.max(axis=1), [r(2, 5, 3)]),
    ("max_all", lambda a: a.max(), [r(3, 4)]),
    ("max_axes_keepdims", lambda a: a.max(axis=(0, 2), keepdims=True), [r(2, 3, 4)]),
    ("softmax", lambda a: ops.softmax(a, axis=-1), [r(3, 5)]),
    ("softmax_axis0", lambda a: ops.softmax(a, axis=0), [r(3, 5)]),
    ("log_softmax", lambda a: ops.log_softmax(a, axis=-1), [r(3, 5)]),
    ("layer_norm", lambda x, w, b: ops.layer_norm(x, w, b, eps=1e-5), [r(2, 3, 6), r(6), r(6)]),
    ("cross_entropy", lambda x: ops.cross_entropy(x, TARGETS), [r(5, 3)]),
    ("attention", lambda q, k, v: ops.attention(q, k, v), [r(2, 2, 4, 3), r(2, 2, 4, 3), r(2, 2, 4, 3)]),
    ("attention_masked", lambda q, k, v: ops.attention(q, k, v, PADDING),
     [r(2, 2, 4, 3), r(2, 2, 4, 3), r(2, 2, 4, 3)]),
]


@pytest.mark.parametrize("name,fn,arrays", CASES, ids=[c[0] for c in CASES])
def test_gradient_matches_finite_differences(name, fn, arrays):
    check_gradients(fn, arrays)


def test_dropout_gradient_uses_the_forward_mask():
    # Dropout is random, so finite differences cannot see it: the gradient must be exactly the mask.
    x = Tensor(np.ones((200, 50)), requires_grad=True)
    y = ops.dropout(x, p=0.25, training=True)
    y.backward(np.ones_like(y.data))
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())
    kept = y.numpy() != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.75)
    assert ops.dropout(x, p=0.25, training=False) is x


def test_attention_dropout_gradient_matches_finite_differences_with_a_fixed_mask():
    q, k, v = (r(1, 2, 4, 3) for _ in range(3))

    class FixedMask(ReferenceAttention):
        drop = (rng.random((1, 2, 4, 4)) > 0.3) / 0.7

        def forward(self, q, k, v):
            super().forward(q, k, v)
            self.drop_mask = self.drop
            return (self.probs * self.drop) @ v

    check_gradients(lambda q, k, v: FixedMask(None, 0.3)(q, k, v), [q, k, v])


def test_forward_values_match_numpy():
    x = r(3, 5)
    np.testing.assert_allclose(ops.softmax(Tensor(x)).numpy(), np.exp(x) / np.exp(x).sum(-1, keepdims=True))
    w, b = r(5), r(5)
    ln = ops.layer_norm(Tensor(x), Tensor(w), Tensor(b), eps=1e-5).numpy()
    expected = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * w + b
    np.testing.assert_allclose(ln, expected, rtol=1e-10)
    logits, targets = r(4, 3), np.array([0, 2, -100, 1])
    lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected_ce = -np.mean([lp[0, 0], lp[1, 2], lp[3, 1]])
    np.testing.assert_allclose(ops.cross_entropy(Tensor(logits), targets).numpy(), expected_ce)


def test_cross_entropy_with_every_target_ignored_is_zero_with_zero_gradient():
    x = Tensor(r(2, 3), requires_grad=True)
    loss = ops.cross_entropy(x, np.array([-100, -100]))
    loss.backward()
    assert loss.item() == 0.0
    np.testing.assert_array_equal(x.grad.numpy(), 0)


def test_float32_stays_float32():
    a = Tensor(r(2, 3).astype(np.float32), requires_grad=True)
    ones, zeros = Tensor(np.ones(3, np.float32)), Tensor(np.zeros(3, np.float32))
    for y in [a * 2.0, 1.0 - a, ops.gelu(a), ops.softmax(a), a / 3, ops.layer_norm(a, ones, zeros)]:
        assert y.dtype == np.float32

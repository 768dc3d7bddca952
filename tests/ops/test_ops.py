"""Every op, one row each in CASES, run through every check of tests/ops/op_case.py: gradients against finite
differences (float64), output and gradients against torch (float64, where installed), transposed and strided
inputs, C-ordered gradients, no input modified in place, float32 in float32 out.

Adding an op is adding one row: Case(name, function of Tensors, input arrays, the same math in torch or SAME).
"""
import math
from dataclasses import replace

import numpy as np
import pytest

from minitransfer import Tensor, ops
from tests.ops.op_case import (
    SAME,
    Case,
    check_c_ordered_gradients,
    check_finite_differences,
    check_float32,
    check_layouts,
    check_no_input_modified,
    check_torch,
    params,
)

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the torch check skips (every row's torch function is None then)

    class _NoTorch:
        def __getattr__(self, name):
            return None

    torch = F = _NoTorch()

rng = np.random.default_rng(0)


def r(*shape):
    return rng.standard_normal(shape)


def positive(*shape):
    return rng.uniform(0.5, 2.0, shape)


def torch_attention(q, k, v, key_padding_mask=None):
    """transformers' eager attention: padded keys at the dtype's lowest score (a row of padding only: uniform)."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if key_padding_mask is not None:
        scores = scores.masked_fill((key_padding_mask == 0)[:, None, None, :], torch.finfo(q.dtype).min)
    return torch.softmax(scores, dim=-1) @ v


def torch_varlen_attention(q, k, v, cu_seqlens):
    """Each packed sequence cu_seqlens[s]:cu_seqlens[s + 1] attending to itself: (tokens, heads, head_dim)."""
    bounds = cu_seqlens.tolist()
    return torch.cat([torch_attention(*(x[s:e].transpose(0, 1) for x in (q, k, v))).transpose(0, 1)
                      for s, e in zip(bounds[:-1], bounds[1:])])


def qkv(*shape):
    return [r(*shape), r(*shape), r(*shape)]


IDS = np.array([[1, 3, 3], [0, 4, 1]])
TARGETS = np.array([2, -100, 0, 1, 2])
PADDING = np.array([[1, 1, 1, 0], [1, 1, 1, 1]])
# A row with one real token and a row of padding only (uniform probabilities, no gradient to q or k).
PADDING_EDGES = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
CU_SEQLENS = np.array([0, 3, 4, 7])  # sequences of 3, 1 and 3 tokens
ROWS = np.array([3, 0, 2])


def and_reference(case: Case) -> list:
    """The case as it runs (fused kernels where they apply) and again with the kernels switched off, the plain
    NumPy reference. Dropout masks of the reference may be drawn per dtype, so its float32 output is not compared."""
    reference = replace(case, name=f"{case.name}_reference", kernels="reference")
    if case.seed is not None:
        reference.f32_tol = None
    return [case, reference]


CASES = [
    Case("add", lambda a, b: a + b, [r(3, 4), r(3, 4)], SAME),
    Case("add_broadcast", lambda a, b: a + b, [r(2, 3, 4), r(4)], SAME),
    Case("add_broadcast_keepdim", lambda a, b: a + b, [r(2, 3, 4), r(2, 1, 4)], SAME),
    Case("add_scalar", lambda a: 2.5 + a, [r(3)], SAME),
    # One input used twice: both gradients accumulate into one leaf, which must own its array (Add passes gy on).
    Case("add_self", lambda a: a + a, [r(3, 4)], SAME),
    Case("mul_self", lambda a: a * a, [r(3, 4)], SAME),
    Case("sub", lambda a, b: a - b, [r(3, 4), r(1, 4)], SAME),
    Case("rsub_scalar", lambda a: 1.0 - a, [r(3)], SAME),
    Case("mul", lambda a, b: a * b, [r(3, 4), r(3, 1)], SAME),
    Case("mul_scalar", lambda a: a * 2.0, [r(2, 3)], SAME),
    Case("div", lambda a, b: a / b, [r(3, 4), positive(4)], SAME),
    Case("div_scalar", lambda a: a / 3, [r(2, 3)], SAME),
    Case("rdiv_scalar", lambda a: 2.0 / a, [positive(5)], SAME),
    Case("neg", lambda a: -a, [r(3, 2)], SAME),
    Case("pow", lambda a: a**3, [r(3, 2)], SAME),
    Case("pow_fraction", lambda a: a**0.5, [positive(3, 2)], SAME),
    Case("exp", ops.exp, [r(3, 4)], torch.exp),
    Case("log", ops.log, [positive(3, 4)], torch.log),
    Case("sqrt", ops.sqrt, [positive(3, 4)], torch.sqrt),
    Case("tanh", ops.tanh, [r(3, 4)], torch.tanh),
    *and_reference(Case("gelu", ops.gelu, [r(4, 5) * 2], F.gelu)),
    Case("relu", ops.relu, [r(4, 5)], F.relu),
    Case("matmul_2d", ops.matmul, [r(3, 4), r(4, 5)], torch.matmul),
    Case("matmul_batched", ops.matmul, [r(2, 3, 4), r(2, 4, 5)], torch.matmul),
    Case("matmul_broadcast_weight", ops.matmul, [r(2, 3, 4), r(4, 5)], torch.matmul),
    Case("matmul_broadcast_batch", ops.matmul, [r(2, 1, 3, 4), r(3, 4, 2)], torch.matmul),
    Case("matmul_vector", ops.matmul, [r(2, 3, 4), r(4)], torch.matmul),
    Case("linear", ops.linear, [r(2, 3, 4), r(5, 4), r(5)], F.linear),
    Case("linear_no_bias", ops.linear, [r(3, 4), r(5, 4)], F.linear),
    # Linear's weight gradient takes one of two GEMM layouts by shape (out >= in or not); both give gy^T x.
    *(Case(f"linear_weight_layout_{n_in}_to_{n_out}", ops.linear, [r(2, 4, n_in), r(n_out, n_in)], F.linear,
           f32_tol=1e-5) for n_in, n_out in [(3, 7), (7, 3), (5, 5)]),
    *and_reference(Case("bias_gelu", ops.bias_gelu, [r(2, 3, 5), r(5)], lambda y, b: F.gelu(y + b))),
    Case("reshape", lambda a: a.reshape(4, 3), [r(2, 6)], SAME),
    Case("transpose", lambda a: a.transpose(0, 2, 1), [r(2, 3, 4)], lambda a: a.permute(0, 2, 1)),
    Case("permute", lambda a: a.permute(2, 0, 1), [r(2, 3, 4)], SAME),
    Case("transpose_T", lambda a: a.T, [r(2, 3)], SAME),
    Case("slice", lambda a: a[:, 1:3], [r(3, 4)], SAME),
    Case("slice_step", lambda a: a[::2, 1:], [r(5, 3)], SAME),
    Case("int_index", lambda a: a[:, 0], [r(2, 3, 4)], SAME),
    Case("gather_repeated", lambda a, i: a[i], [r(3, 4), np.array([0, 2, 0])], SAME),
    Case("advanced_pair", lambda a, i, j: a[i, j], [r(2, 3), np.array([0, 1, 1]), np.array([2, 0, 2])], SAME),
    Case("take_rows", ops.take_rows, [r(4, 3), ROWS], lambda x, rows: x[rows]),
    Case("scatter_rows", lambda x, rows: ops.scatter_rows(x, rows, 5, fill=-1.5), [r(3, 2), ROWS],
         lambda x, rows: torch.full((5, 2), -1.5, dtype=x.dtype).index_copy(0, rows, x)),
    Case("embedding", ops.embedding, [IDS, r(5, 3)], F.embedding),
    Case("embedding_padding_idx",
         lambda ids, w: ops.embedding(ids, w) * 1.0 + ops.embedding(ids, w, padding_idx=4).sum() * 0.0,
         [IDS, r(5, 3)], lambda ids, w: F.embedding(ids, w) * 1.0 + F.embedding(ids, w, padding_idx=4).sum() * 0.0),
    # The padding row gets no gradient (torch.nn.Embedding's padding_idx): not the derivative, so no finite differences.
    Case("embedding_padding_idx_no_gradient", lambda ids, w: ops.embedding(ids, w, padding_idx=4), [IDS, r(5, 3)],
         lambda ids, w: F.embedding(ids, w, padding_idx=4), finite_differences=False),
    Case("concat", lambda a, b: ops.concat([a, b], axis=1), [r(2, 3), r(2, 2)],
         lambda a, b: torch.cat([a, b], dim=1)),
    Case("concat_three_axis0", lambda a, b, c: ops.concat([a, b, c]), [r(1, 3), r(2, 3), r(1, 3)],
         lambda a, b, c: torch.cat([a, b, c])),
    Case("where", ops.where, [np.array([[True, False, True]]), r(2, 3), r(2, 3)], torch.where),
    Case("masked_fill", lambda a, m: ops.masked_fill(a, m, -5.0), [r(3, 4), np.array([True, False, False, True])],
         lambda a, m: a.masked_fill(m, -5.0)),
    Case("sum_all", lambda a: a.sum(), [r(3, 4)], SAME),
    Case("sum_axis", lambda a: a.sum(axis=1), [r(2, 3, 4)], SAME),
    Case("sum_axes_keepdims", lambda a: a.sum(axis=(0, 2), keepdims=True), [r(2, 3, 4)], SAME),
    Case("mean_all", lambda a: a.mean(), [r(3, 4)], SAME),
    Case("mean_axis", lambda a: a.mean(axis=-1), [r(2, 3, 4)], SAME),
    Case("mean_axes_keepdims", lambda a: a.mean(axis=(0, 1), keepdims=True), [r(2, 3, 4)], SAME),
    Case("max_axis", lambda a: a.max(axis=1), [r(2, 5, 3)], lambda a: a.amax(dim=1)),
    Case("max_all", lambda a: a.max(), [r(3, 4)], lambda a: a.amax()),
    Case("max_axes_keepdims", lambda a: a.max(axis=(0, 2), keepdims=True), [r(2, 3, 4)],
         lambda a: a.amax(dim=(0, 2), keepdim=True)),
    Case("softmax", lambda a: ops.softmax(a, axis=-1), [r(3, 5)], lambda a: torch.softmax(a, dim=-1)),
    Case("softmax_axis0", lambda a: ops.softmax(a, axis=0), [r(3, 5)], lambda a: torch.softmax(a, dim=0)),
    Case("log_softmax", lambda a: ops.log_softmax(a, axis=-1), [r(3, 5)], lambda a: torch.log_softmax(a, dim=-1)),
    *and_reference(Case("layer_norm", lambda x, w, b: ops.layer_norm(x, w, b, eps=1e-5), [r(2, 3, 6), r(6), r(6)],
                        lambda x, w, b: F.layer_norm(x, (6,), w, b, eps=1e-5))),
    Case("dropout_p0", lambda x: ops.dropout(x, 0.0, training=True), [r(3, 4)], SAME),
    *and_reference(Case("dropout_seeded", lambda x: ops.dropout(x, 0.3, training=True), [r(6, 5)], seed=3)),
    *and_reference(Case(
        "bias_dropout_residual_layer_norm_eval",
        lambda y, b, res, w, lb: ops.bias_dropout_residual_layer_norm(y, b, res, w, lb, 1e-5, 0.3, training=False),
        [r(2, 3, 6), r(6), r(2, 3, 6), r(6), r(6)],
        lambda y, b, res, w, lb: F.layer_norm(y + b + res, (6,), w, lb, eps=1e-5))),
    *and_reference(Case(
        "bias_dropout_residual_layer_norm_seeded",
        lambda y, b, res, w, lb: ops.bias_dropout_residual_layer_norm(y, b, res, w, lb, 1e-5, 0.3, training=True),
        [r(2, 3, 6), r(6), r(2, 3, 6), r(6), r(6)], seed=5)),
    Case("cross_entropy", lambda x, t: ops.cross_entropy(x, t), [r(5, 3), TARGETS], F.cross_entropy),
    Case("cross_entropy_ignore_index", lambda x, t: ops.cross_entropy(x, t, ignore_index=1), [r(5, 3), TARGETS % 3],
         lambda x, t: F.cross_entropy(x, t, ignore_index=1)),
    *and_reference(Case("attention", ops.attention, qkv(2, 2, 4, 3), torch_attention)),
    *and_reference(Case("attention_masked", ops.attention, [*qkv(2, 2, 4, 3), PADDING], torch_attention)),
    *and_reference(Case("attention_length_1_and_all_padding_rows", ops.attention, [*qkv(3, 2, 4, 3), PADDING_EDGES],
                        torch_attention)),
    *and_reference(Case("attention_dropout_seeded",
                        lambda q, k, v, m: ops.attention(q, k, v, m, dropout_p=0.3, training=True),
                        [*qkv(2, 2, 4, 3), PADDING], seed=7)),
    Case("attention_dropout_eval", lambda q, k, v: ops.attention(q, k, v, dropout_p=0.3, training=False),
         qkv(1, 2, 4, 3), torch_attention),
    *and_reference(Case("varlen_attention", ops.varlen_attention, [*qkv(7, 2, 3), CU_SEQLENS],
                        torch_varlen_attention)),
    *and_reference(Case("varlen_attention_dropout_seeded",
                        lambda q, k, v, cu: ops.varlen_attention(q, k, v, cu, dropout_p=0.3, training=True),
                        [*qkv(7, 2, 3), CU_SEQLENS], seed=11)),
]


@pytest.mark.parametrize("case", params(CASES, "finite_differences", lambda c: c.finite_differences))
def test_gradients_match_finite_differences(case):
    check_finite_differences(case)


@pytest.mark.parametrize("case", params(CASES, "torch", lambda c: c.torch_fn is not None))
def test_output_and_gradients_match_torch(case):
    check_torch(case)


@pytest.mark.parametrize("case", params(CASES, "layouts"))
def test_transposed_and_strided_inputs_give_the_same_result(case):
    check_layouts(case)


@pytest.mark.parametrize("case", params(CASES, "c_ordered"))
def test_c_ordered_inputs_get_c_ordered_gradients(case):
    check_c_ordered_gradients(case)


@pytest.mark.parametrize("case", params(CASES, "no_input_modified"))
def test_no_input_is_modified_and_gradients_alias_nothing(case):
    check_no_input_modified(case)


@pytest.mark.parametrize("case", params(CASES, "float32"))
def test_float32_stays_float32(case):
    check_float32(case)


def test_dropout_keeps_a_fraction_1_minus_p_and_its_gradient_is_the_forward_mask():
    x = Tensor(np.ones((200, 50)), requires_grad=True)
    y = ops.dropout(x, p=0.25, training=True)
    y.backward(np.ones_like(y.data))
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())
    kept = y.numpy() != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.75)
    assert ops.dropout(x, p=0.25, training=False) is x


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

"""Packed (varlen) attention: the numba kernel against ReferenceVarlenAttention, both against the padded
ReferenceAttention, finite differences, the dropout mask, strided inputs and the cu_seqlens checks.

Tolerances as tests/kernels/test_attention_cpu.py: float64 agrees to ~1e-15 (same math, other summation
order), so 1e-10 catches any wrong term; float32 sums up to 512 products in another order and uses a ~1 ulp
polynomial exp, errors ~1e-6 on values of order 1, so 2e-5 absolute / 1e-4 relative.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from minitransfer.kernels import attention_varlen_cpu
from minitransfer.kernels.dropout_rng import varlen_dropout_mask

import minitransfer
from minitransfer import Tensor
from minitransfer.errors import InputError
from minitransfer.ops import dispatch
from minitransfer.ops.attention import ReferenceAttention
from minitransfer.ops.varlen_attention import (
    FusedVarlenAttention,
    ReferenceVarlenAttention,
    check_cu_seqlens,
    varlen_attention,
)
from tests.gradcheck import check_gradients
from tests.kernels.test_attention_cpu import run

TOL = {np.float64: {"atol": 1e-10, "rtol": 1e-10}, np.float32: {"atol": 2e-5, "rtol": 1e-4}}
HEADS = 3
LENGTHS = {
    "one token": [1],
    "one of 512": [512],
    "1, 37, 130": [1, 37, 130],
    "one token among long ones": [90, 1, 64, 33],
    "all equal": [64, 64, 64, 64],
    "1 to 512": [1, 2, 15, 16, 17, 100, 255, 512],
}


def offsets(lengths):
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def packed(lengths, head_dim, dtype, seed=0, heads=HEADS):
    """cu_seqlens and q, k, v and an upstream gradient, each (tokens, heads, head_dim)."""
    cu = offsets(lengths)
    rng = np.random.default_rng(seed)
    return cu, [rng.standard_normal((cu[-1], heads, head_dim)).astype(dtype) for _ in range(4)]


@pytest.mark.parametrize("dropout_p", [0.0, 0.1])
@pytest.mark.parametrize("lengths", list(LENGTHS.values()), ids=list(LENGTHS))
@pytest.mark.parametrize("head_dim", [32, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_matches_the_reference_forward_and_backward(dtype, head_dim, lengths, dropout_p):
    cu, (q, k, v, gout) = packed(lengths, head_dim, dtype)
    ours = run(FusedVarlenAttention(cu, dropout_p, seed=1234), q, k, v, gout)
    theirs = run(ReferenceVarlenAttention(cu, dropout_p, seed=1234), q, k, v, gout)  # the same mask, rebuilt
    for name, a, b in zip(["out", "dq", "dk", "dv"], ours, theirs):
        assert a.dtype == dtype and a.shape == q.shape
        np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=name)


def pad(x, cu, seq):
    """Packed (tokens, heads, d) -> padded (batch, heads, seq, d), zeros after each sequence."""
    out = np.zeros((len(cu) - 1, seq) + x.shape[1:], dtype=x.dtype)
    for s, (start, end) in enumerate(zip(cu[:-1], cu[1:])):
        out[s, :end - start] = x[start:end]
    return out.transpose(0, 2, 1, 3)


def unpad(x, cu):
    """Padded (batch, heads, seq, d) -> packed (tokens, heads, d), real rows only."""
    rows = x.transpose(0, 2, 1, 3)
    return np.concatenate([rows[s, :end - start] for s, (start, end) in enumerate(zip(cu[:-1], cu[1:]))])


@pytest.mark.parametrize("implementation", [ReferenceVarlenAttention, FusedVarlenAttention])
def test_packed_equals_the_padded_reference_with_a_key_padding_mask(implementation):
    lengths = [5, 1, 17, 9, 17]
    cu, (q, k, v, gout) = packed(lengths, 16, np.float64, seed=1)
    seq = max(lengths)
    mask = (np.arange(seq)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
    ours = run(implementation(cu), q, k, v, gout)
    # Padded query rows get a zero upstream gradient, so they add nothing to the real keys' gradients.
    padded = run(ReferenceAttention(mask), *(pad(x, cu, seq) for x in (q, k, v, gout)))
    for name, a, b in zip(["out", "dq", "dk", "dv"], ours, padded):
        np.testing.assert_allclose(a, unpad(b, cu), **TOL[np.float64], err_msg=name)


@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
@pytest.mark.parametrize("implementation", [ReferenceVarlenAttention, FusedVarlenAttention])
def test_gradients_match_finite_differences(implementation, dropout_p):
    # With a fixed seed the mask is fixed, so the function is smooth; a backward that regenerated another
    # mask than forward's would fail here.
    cu, (q, k, v, _) = packed([3, 1, 4], 4, np.float64, seed=2, heads=2)
    if dropout_p:
        kept = np.concatenate([m.ravel() for m in varlen_dropout_mask(42, cu, 2, dropout_p, np.float64)])
        assert (kept == 0).any() and (kept != 0).any()  # the mask drops some probabilities and keeps others
    check_gradients(lambda q, k, v: implementation(cu, dropout_p, seed=42)(q, k, v), [q, k, v])


def dropped_probabilities(seed, lengths, heads, p):
    """The kernel's probabilities after dropout, per sequence (heads, L, L): with q = k = 0 every probability
    is 1/L, and v = the identity of each sequence makes each output row the probability row itself."""
    cu = offsets(lengths)
    dims = max(lengths)
    zeros = np.zeros((cu[-1], heads, dims))
    eye = np.zeros_like(zeros)
    for start, end in zip(cu[:-1], cu[1:]):
        eye[start:end, :, :end - start] = np.eye(end - start)[:, None, :]
    out, _ = attention_varlen_cpu.varlen_attention_forward(zeros, zeros, eye, cu, p, seed)
    for start, end in zip(cu[:-1], cu[1:]):
        assert np.all(out[start:end, :, end - start:] == 0)
    return [out[start:end, :, :end - start].transpose(1, 0, 2) for start, end in zip(cu[:-1], cu[1:])]


def test_the_kernels_dropout_mask_is_varlen_dropout_mask_and_drops_a_fraction_p():
    lengths, heads, p = [256, 1, 200, 300], 8, 0.1
    probs = dropped_probabilities(1234, lengths, heads, p)
    for got, mask, n in zip(probs, varlen_dropout_mask(1234, offsets(lengths), heads, p, np.float64), lengths):
        np.testing.assert_allclose(got, mask / n, rtol=1e-12, atol=0)
    dropped = [m == 0 for m in probs]
    rate = sum(d.sum() for d in dropped) / sum(d.size for d in dropped)
    assert abs(rate - p) < 0.002, rate  # 1.6 million draws: 8 standard deviations
    for axis in (0, 1, 2):  # neighbouring heads, query rows, key columns are dropped independently: p^2
        pairs = [np.take(d, range(1, d.shape[axis]), axis) & np.take(d, range(d.shape[axis] - 1), axis)
                 for d in dropped if d.shape[1] > 1]
        both = sum(x.sum() for x in pairs) / sum(x.size for x in pairs)
        assert abs(both - p * p) < 0.002, (axis, both)
    other = dropped_probabilities(1235, lengths, heads, p)
    changed = sum(((a == 0) != (b == 0)).sum() for a, b in zip(probs, other)) / sum(d.size for d in dropped)
    assert 0.16 < changed < 0.20  # another seed, another mask: ~2 p (1 - p) of the entries differ


def test_varlen_attention_draws_one_seed_per_call_and_drops_out_only_in_training():
    cu, (q, k, v, gout) = packed([7, 1, 12], 8, np.float32, seed=3)

    def call(training):
        return varlen_attention(Tensor(q), Tensor(k), Tensor(v), cu, 0.1, training=training).numpy()

    minitransfer.manual_seed(7)
    first, second = call(True), call(True)
    minitransfer.manual_seed(7)
    with dispatch.kernels("reference"):
        reference = call(True)  # the reference draws the same seed, so it drops the same probabilities
    np.testing.assert_allclose(first, reference, **TOL[np.float32])
    assert not np.allclose(first, second)
    np.testing.assert_allclose(call(False), run(ReferenceVarlenAttention(cu), q, k, v, gout)[0], **TOL[np.float32])


@pytest.mark.parametrize("implementation", [ReferenceVarlenAttention, FusedVarlenAttention])
def test_strided_inputs_give_the_contiguous_result_and_are_left_unmodified(implementation):
    lengths, heads, dims = [9, 1, 30], 4, 32
    cu = offsets(lengths)
    rng = np.random.default_rng(4)
    # The model's q, k, v: views of one (tokens, 3 * hidden) projection; the gradient a transposed view.
    qkv = rng.standard_normal((cu[-1], 3, heads, dims)).astype(np.float32)
    q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
    gout = rng.standard_normal((heads, cu[-1], dims)).astype(np.float32).transpose(1, 0, 2)
    assert not any(x.flags.c_contiguous for x in (q, k, v, gout))
    before = [x.copy() for x in (q, k, v, gout)]
    strided = run(implementation(cu, 0.1, seed=5), q, k, v, gout)
    for x, y in zip((q, k, v, gout), before):
        np.testing.assert_array_equal(x, y)
    contiguous = run(implementation(cu, 0.1, seed=5), *(np.ascontiguousarray(x) for x in (q, k, v, gout)))
    for a, b in zip(strided, contiguous):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cu_seqlens, tokens, message", [
    ([1, 3, 5], 5, "must start at 0; it starts at 1"),
    ([0, 3, 3, 5], 5, r"sequence 1 has no token"),
    ([0, 4, 2, 5], 5, r"increase strictly, but cu_seqlens\[2\] = 2 is below cu_seqlens\[1\] = 4"),
    ([0, 3, 6], 5, "cu_seqlens end at 6 but q has 5 tokens"),
    ([0, 3], 5, "cu_seqlens end at 3 but q has 5 tokens"),
    (np.array([[0, 5]]), 5, "1-D integer array"),
    (np.array([0.0, 5.0]), 5, "1-D integer array.*float64"),
    ([0], 0, "no sequence"),
])
def test_bad_cu_seqlens_are_refused_naming_the_problem(cu_seqlens, tokens, message):
    with pytest.raises(InputError, match=message):
        check_cu_seqlens(np.asarray(cu_seqlens), tokens)


def test_good_cu_seqlens_pass_and_the_op_checks_them():
    checked = check_cu_seqlens(np.array([0, 2, 7], dtype=np.int32), 7)
    assert checked.dtype == np.int64 and checked.tolist() == [0, 2, 7]
    q = Tensor(np.zeros((7, 2, 4), np.float32))
    with pytest.raises(InputError, match="sequence 1 has no token"):
        varlen_attention(q, q, q, np.array([0, 7, 7]))
    with pytest.raises(ValueError, match="does not split 7 tokens"):  # the kernel refuses too (no bounds checks)
        attention_varlen_cpu.varlen_attention_forward(q.data, q.data, q.data, np.array([0, 8]))


def test_python_mode_kernel_matches_the_reference():
    """NUMBA_DISABLE_JIT=1 (the debugging switch) runs the kernel as plain Python: same numbers as the
    reference; and importing the op does not import numba."""
    script = (
        "import sys, numpy as np\n"
        "import minitransfer.ops.varlen_attention\n"
        "assert 'numba' not in sys.modules, 'importing the varlen op imported numba'\n"
        "from minitransfer.kernels.attention_varlen_cpu import varlen_attention_forward, varlen_attention_backward\n"
        "q, k, v, g = np.load(sys.argv[1])\n"
        "cu = np.array([0, 3, 4, 10])\n"
        "out, lse = varlen_attention_forward(q, k, v, cu, 0.2, 99)\n"
        "np.save(sys.argv[2], np.stack([out, *varlen_attention_backward(g, q, k, v, out, lse, cu, 0.2, 99)]))\n"
    )
    cu, arrays = packed([3, 1, 6], 3, np.float64, seed=6, heads=2)
    tmp = os.environ.get("TMPDIR", "/tmp")
    given, result = (os.path.join(tmp, f"mt_varlen_{name}_{os.getpid()}.npy") for name in ("in", "out"))
    np.save(given, np.stack(arrays))
    try:
        env = dict(os.environ, NUMBA_DISABLE_JIT="1")
        subprocess.run([sys.executable, "-c", script, given, result], check=True, env=env, timeout=300)
        python_mode = np.load(result)
    finally:
        for path in (given, result):
            if os.path.exists(path):
                os.remove(path)
    expected = run(ReferenceVarlenAttention(cu, 0.2, seed=99), *arrays)
    for name, a, b in zip(["out", "dq", "dk", "dv"], python_mode, expected):
        np.testing.assert_allclose(a, b, **TOL[np.float64], err_msg=name)

"""The fused CPU attention kernel against ReferenceAttention, finite differences, and its own dropout mask.

Tolerances: float64 agrees with the reference to ~1e-15 (same math, other summation order), so 1e-10
catches any wrong term. float32 sums 64-384 products in another order and uses a ~1 ulp polynomial exp:
errors are ~1e-6 on values of order 1, so 2e-5 absolute leaves room for that and for nothing else.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from minitransfer.kernels import attention_cpu
from minitransfer.kernels.dropout_rng import attention_dropout_mask

import minitransfer
from minitransfer import Tensor, ops
from minitransfer.ops.attention import FusedAttention, ReferenceAttention
from tests.gradcheck import check_gradients

TOL = {np.float64: {"atol": 1e-10, "rtol": 1e-10}, np.float32: {"atol": 2e-5, "rtol": 1e-4}}


def inputs(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(4)]  # q, k, v and an upstream gradient


def padding(batch, seq, seed=0):
    """Real tokens first, then padding, of a different length per row; row 1 also has a hole inside."""
    lengths = np.random.default_rng(seed).integers(1, seq + 1, batch)
    lengths[0] = seq
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    if batch > 1 and seq > 2:
        mask[1, 1] = 0
    return mask


def run(fn, q, k, v, gout, after_forward=None):
    """fn's output and gradients w.r.t. q, k, v for the upstream gradient gout."""
    tensors = [Tensor(x, requires_grad=True) for x in (q, k, v)]
    out = fn(*tensors)
    if after_forward is not None:
        after_forward()
    out.backward(gout)
    return [out.numpy()] + [t.grad.numpy() for t in tensors]


class FixedMaskReference(ReferenceAttention):
    """ReferenceAttention with a given (batch, heads, seq, seq) dropout mask instead of a freshly drawn one."""

    def __init__(self, key_padding_mask, dropout_p, drop_mask):
        super().__init__(key_padding_mask, 0.0)
        self.fixed = drop_mask

    def forward(self, q, k, v):
        super().forward(q, k, v)
        self.drop_mask = self.fixed
        return (self.probs * self.fixed) @ v


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("head_dim", [32, 64])
@pytest.mark.parametrize("seq", [1, 37, 130])
@pytest.mark.parametrize("masked", [False, True])
def test_forward_and_backward_match_reference(dtype, head_dim, seq, masked):
    q, k, v, gout = inputs((2, 3, seq, head_dim), dtype)
    mask = padding(2, seq) if masked else None
    ours = run(FusedAttention(mask), q, k, v, gout)
    theirs = run(ReferenceAttention(mask), q, k, v, gout)
    for name, a, b in zip(["out", "dq", "dk", "dv"], ours, theirs):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=name)
    if masked:  # padded keys take no part: their gradients are exactly zero, as in the reference
        padded = mask == 0
        assert np.all(ours[2].transpose(0, 2, 1, 3)[padded] == 0)
        assert np.all(ours[3].transpose(0, 2, 1, 3)[padded] == 0)


def test_sequence_without_real_keys_attends_uniformly_like_the_reference():
    q, k, v, gout = inputs((2, 2, 9, 16), np.float64, seed=1)
    mask = np.ones((2, 9), dtype=np.int64)
    mask[1] = 0
    ours = run(FusedAttention(mask), q, k, v, gout)
    theirs = run(ReferenceAttention(mask), q, k, v, gout)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, **TOL[np.float64])
    np.testing.assert_allclose(ours[0][1], np.broadcast_to(v[1].mean(axis=1, keepdims=True), v[1].shape))
    assert np.all(ours[1][1] == 0) and np.all(ours[2][1] == 0)  # constant scores: nothing flows to q or k


def test_transposed_inputs_give_the_same_result_as_contiguous_ones():
    # The models split heads with a transpose: (batch, seq, heads, dim) viewed as (batch, heads, seq, dim).
    q, k, v, gout = inputs((2, 19, 3, 32), np.float32, seed=2)
    views = [x.transpose(0, 2, 1, 3) for x in (q, k, v, gout)]
    mask = padding(2, 19)
    strided = run(FusedAttention(mask), *views)
    contiguous = run(FusedAttention(mask), *[np.ascontiguousarray(x) for x in views])
    for a, b in zip(strided, contiguous):
        np.testing.assert_array_equal(a, b)


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((2, 2, 5, 4)) for _ in range(3))
    mask = np.array([[1, 1, 1, 1, 1], [1, 0, 1, 1, 0]])
    check_gradients(lambda q, k, v: FusedAttention(mask)(q, k, v), [q, k, v])


def probabilities_after_dropout(seed, shape, p, dtype=np.float64):
    """The kernel's dropped-out probabilities: with q = k = 0 every probability is 1/seq, and v = identity
    makes the output row the probability row itself."""
    batch, heads, seq = shape
    zeros = np.zeros((batch, heads, seq, seq), dtype=dtype)
    eye = np.broadcast_to(np.eye(seq, dtype=dtype), zeros.shape)
    out, _ = attention_cpu.attention_forward(zeros, zeros, eye, None, p, seed)
    return out


def test_dropout_drops_a_fraction_p_and_is_the_mask_the_reference_rebuilds():
    shape, p = (4, 8, 64), 0.1
    probs = probabilities_after_dropout(1234, shape, p)
    expected = attention_dropout_mask(1234, *shape, p, np.float64) / shape[2]
    np.testing.assert_allclose(probs, expected, rtol=1e-12, atol=0)
    dropped = probs == 0
    assert abs(dropped.mean() - p) < 0.005, dropped.mean()  # 131072 draws: 6 standard deviations
    for axis in range(4):  # neighbours along batch, heads, rows, columns are dropped independently: p^2
        n = dropped.shape[axis]
        pairs = np.take(dropped, range(1, n), axis) & np.take(dropped, range(n - 1), axis)
        assert abs(pairs.mean() - p * p) < 0.003, (axis, pairs.mean())
    other_seed = probabilities_after_dropout(1235, shape, p)
    assert 0.15 < ((probs == 0) != (other_seed == 0)).mean() < 0.21  # ~2 p (1 - p) when independent


def test_same_seed_same_dropout_and_a_new_draw_otherwise():
    q, k, v, _ = inputs((2, 2, 11, 8), np.float32, seed=4)
    minitransfer.manual_seed(7)
    first = ops.attention(Tensor(q), Tensor(k), Tensor(v), None, 0.1, training=True).numpy()
    second = ops.attention(Tensor(q), Tensor(k), Tensor(v), None, 0.1, training=True).numpy()
    minitransfer.manual_seed(7)
    again = ops.attention(Tensor(q), Tensor(k), Tensor(v), None, 0.1, training=True).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)
    evaluation = ops.attention(Tensor(q), Tensor(k), Tensor(v), None, 0.1, training=False).numpy()
    np.testing.assert_allclose(evaluation, run(ReferenceAttention(), q, k, v, np.ones_like(q))[0], atol=2e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_backward_matches_the_reference_with_the_same_mask(dtype):
    q, k, v, gout = inputs((2, 3, 45, 32), dtype, seed=5)
    mask = padding(2, 45, seed=5)
    fused, seeds = FusedAttention(mask, 0.1), []
    ours = run(fused, q, k, v, gout, after_forward=lambda: seeds.append(fused.seed))  # backward frees it
    drop = attention_dropout_mask(seeds[0], 2, 3, 45, 0.1, dtype)
    theirs = run(FixedMaskReference(mask, 0.1, drop), q, k, v, gout)
    for name, a, b in zip(["out", "dq", "dk", "dv"], ours, theirs):
        np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=name)


def test_import_is_light_and_the_python_mode_kernel_agrees():
    """`import minitransfer` leaves numba alone; NUMBA_DISABLE_JIT=1 (the debugging switch) gives the same
    numbers as the compiled kernel."""
    script = (
        "import sys, numpy as np, minitransfer, minitransfer.models\n"
        "assert 'numba' not in sys.modules, 'import minitransfer imported numba'\n"
        "from minitransfer.kernels.attention_cpu import attention_forward, attention_backward\n"
        "q, k, v, g = np.random.default_rng(0).standard_normal((4, 2, 1, 6, 3)).astype(np.float32)\n"
        "mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])\n"
        "out, lse = attention_forward(q, k, v, mask, 0.2, 99)\n"
        "np.save(sys.argv[1], np.concatenate([out.ravel(), *[x.ravel() for x in\n"
        "        attention_backward(g, q, k, v, out, lse, mask, 0.2, 99)]]))\n"
    )
    results = []
    for disable in ("1", "0"):
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"mt_attention_jit{disable}_{os.getpid()}.npy")
        env = dict(os.environ, NUMBA_DISABLE_JIT=disable)
        subprocess.run([sys.executable, "-c", script, path], check=True, env=env, timeout=300)
        results.append(np.load(path))
        os.remove(path)
    np.testing.assert_allclose(results[0], results[1], atol=2e-6)


def test_a_mask_of_the_wrong_shape_is_refused_with_the_shape_it_needs():
    q, k, v, _ = inputs((2, 1, 5, 4), np.float32)
    with pytest.raises(ValueError, match=r"needs \(2, 5\)"):
        attention_cpu.attention_forward(q, k, v, np.ones((2, 6)))


def test_a_failing_cache_save_falls_back_to_compiling_without_the_cache(tmp_path):
    """numba's cache save raised AttributeError when processes raced on one cache index; the kernel must then
    still compile and run (the cache only saves start-up time). Fresh cache dir, so the save is reached."""
    script = (
        "import numpy as np\n"
        "from numba.core import caching\n"
        "def broken(self, sig, cres):\n"
        "    raise AttributeError(\"'NoneType' object has no attribute 'can_cache'\")\n"
        "caching.FunctionCache.save_overload = broken\n"
        "from minitransfer.kernels.attention_cpu import attention_forward\n"
        "q = np.random.default_rng(0).standard_normal((1, 2, 5, 4)).astype(np.float32)\n"
        "out, lse = attention_forward(q, q, q)\n"
        "s = np.einsum('bhqd,bhkd->bhqk', q, q) / 2.0\n"
        "p = np.exp(s - s.max(-1, keepdims=True)); p /= p.sum(-1, keepdims=True)\n"
        "np.testing.assert_allclose(out, p @ q, atol=2e-5)\n"
        "print('ran')\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ran"
    assert "could not cache a compiled kernel" in done.stderr  # said, not silently swallowed

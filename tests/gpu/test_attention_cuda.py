"""kernels/attention_cuda.py (the fused scale + mask + softmax + dropout between attention's GEMMs) against its
NumPy reference, ReferenceAttention and the CPU kernel's dropout mask, under the CUDA simulator or on a GPU.

Tolerances: the kernel computes in float32, the references in float64; probabilities of order 1/seq agree to
~1e-7, so 1e-6 catches any wrong term. float16 storage rounds each stored value to 2^-11 relative.
"""
import numpy as np
import pytest

pytest.importorskip("numba_cuda")

from minitransfer import Tensor  # noqa: E402
from minitransfer.kernels import attention_cuda  # noqa: E402
from minitransfer.kernels.attention_reference import dropout_mask, varlen_dropout_mask  # noqa: E402
from minitransfer.ops.attention import ReferenceAttention  # noqa: E402

SEED = 2**63 + 12345  # a seed above 2^63: the 64-bit arithmetic must stay unsigned
TOL = {"atol": 1e-6, "rtol": 1e-5}


def scores_and_mask(batch=4, heads=1, seq=8, seed=0):
    """Random scores and a key mask whose rows have seq, 1, 0 (all padding) and 5 real keys, one with a hole."""
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((batch, heads, seq, seq)).astype(np.float32)
    lengths = np.resize([seq, 1, 0, 5], batch)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    mask[3::4, 2] = 0
    return scores, mask, rng.standard_normal(scores.shape).astype(np.float32)


def test_forward_and_backward_match_the_reference_for_every_mask_length(device):
    scores, mask, grad = scores_and_mask()
    probs, dropped = attention_cuda.softmax_dropout_forward(device.put(scores), 0.5, device.put(mask))
    probs = device.get(probs)
    np.testing.assert_allclose(probs, attention_cuda.reference_forward(scores, 0.5, mask)[0], **TOL)
    assert device.get(dropped) is probs or np.array_equal(device.get(dropped), probs)  # no dropout: no second array
    assert (probs[1, :, :, 1:] == 0).all() and (probs[3, :, :, 2] == 0).all()  # padded keys: exactly 0
    np.testing.assert_array_equal(probs[2], np.full_like(probs[2], 1 / 8))  # all padding: uniform, as the reference
    grad_scores, _ = attention_cuda.softmax_dropout_backward(device.put(grad), device.put(probs), 0.5,
                                                             device.put(mask))
    grad_scores = device.get(grad_scores)
    np.testing.assert_allclose(grad_scores, attention_cuda.reference_backward(grad, probs, 0.5, mask), **TOL)
    assert (grad_scores[2] == 0).all()  # constant scores: nothing flows back to q or k


def test_no_mask_is_every_key_real(device):
    scores, _, _ = scores_and_mask(batch=2, heads=2)
    probs, _ = attention_cuda.softmax_dropout_forward(device.put(scores), 0.25)
    np.testing.assert_allclose(device.get(probs), attention_cuda.reference_forward(scores, 0.25)[0], **TOL)


def test_dropout_is_the_cpu_kernels_mask_bit_for_bit_and_backward_rebuilds_it(device):
    scores, mask, grad = scores_and_mask()
    probs, dropped = (device.get(a) for a in attention_cuda.softmax_dropout_forward(
        device.put(scores), 0.5, device.put(mask), 0.3, SEED))
    keep = dropout_mask(SEED, 4, 1, 8, 0.3)  # what kernels/attention_cpu.py applies for this seed
    np.testing.assert_array_equal(dropped, probs * keep)
    assert 0 < (keep == 0).mean() < 0.6  # some dropped, most kept (p = 0.3 over 256 draws)
    grad_scores, dropped_again = attention_cuda.softmax_dropout_backward(device.put(grad), device.put(probs), 0.5,
                                                                         device.put(mask), 0.3, SEED)
    np.testing.assert_array_equal(device.get(dropped_again), dropped)
    np.testing.assert_allclose(device.get(grad_scores),
                               attention_cuda.reference_backward(grad, probs, 0.5, mask, 0.3, SEED), **TOL)


def test_attention_through_the_kernels_equals_reference_attention(device):
    """q k^T, the kernel, P v (and the backward GEMMs) in NumPy, against ops.attention's ReferenceAttention."""
    rng = np.random.default_rng(3)
    q, k, v, gout = (rng.standard_normal((3, 2, 8, 4)).astype(np.float32) for _ in range(4))
    mask = scores_and_mask(batch=3)[1]  # 8, 1 and 0 real keys
    scale = 0.5
    probs, dropped = (device.get(a) for a in attention_cuda.softmax_dropout_forward(
        device.put(q @ k.swapaxes(-1, -2)), scale, device.put(mask)))
    grad_scores, _ = attention_cuda.softmax_dropout_backward(device.put(gout @ v.swapaxes(-1, -2)),
                                                             device.put(probs), scale, device.put(mask))
    grad_scores = device.get(grad_scores)
    tensors = [Tensor(a, requires_grad=True) for a in (q, k, v)]
    out = ReferenceAttention(mask)(*tensors)
    out.backward(gout)
    np.testing.assert_allclose(dropped @ v, out.data, atol=1e-5)
    for ours, ref in zip((grad_scores @ k, grad_scores.swapaxes(-1, -2) @ q, dropped.swapaxes(-1, -2) @ gout),
                         tensors):
        np.testing.assert_allclose(ours, ref.grad.data, atol=1e-5)


def test_float16_storage_is_computed_in_float32(device):
    scores, mask, grad = scores_and_mask()
    half = scores.astype(np.float16)
    probs, dropped = (device.get(a) for a in attention_cuda.softmax_dropout_forward(
        device.put(half), 0.5, device.put(mask), 0.3, SEED))
    assert probs.dtype == np.float16
    reference = attention_cuda.reference_forward(half.astype(np.float32), 0.5, mask)[0]
    np.testing.assert_allclose(probs, reference, atol=1e-3, rtol=1e-3)
    np.testing.assert_array_equal(dropped != 0, (probs != 0) & (dropout_mask(SEED, 4, 1, 8, 0.3) != 0))
    grad_scores, _ = attention_cuda.softmax_dropout_backward(device.put(grad.astype(np.float16)), device.put(probs),
                                                             0.5, device.put(mask), 0.3, SEED)
    reference = attention_cuda.reference_backward(grad.astype(np.float16), probs.astype(np.float64), 0.5, mask, 0.3,
                                                  SEED)
    np.testing.assert_allclose(device.get(grad_scores), reference, atol=2e-3, rtol=1e-2)


def test_keys_past_512_are_refused(device):
    with pytest.raises(ValueError, match="at most 512 keys"):
        attention_cuda.softmax_dropout_forward(np.zeros((1, 1, 1, 513), np.float32), 1.0)


@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_packed_rows_match_the_reference_and_the_varlen_mask(device, dropout_p):
    cu_seqlens = np.array([0, 5, 6, 9])  # lengths 5, 1 and 3
    heads = 2
    offsets = attention_cuda.varlen_score_offsets(cu_seqlens, heads)
    rng = np.random.default_rng(4)
    scores, grad = (rng.standard_normal(offsets[-1]).astype(np.float32) for _ in range(2))
    probs, dropped = (device.get(a) for a in attention_cuda.varlen_softmax_dropout_forward(
        device.put(scores), device.put(cu_seqlens), 9, heads, 0.5, dropout_p, SEED))
    ref_probs, _, ref_grad = attention_cuda.reference_varlen(scores, cu_seqlens, heads, 0.5, dropout_p, SEED, grad)
    np.testing.assert_allclose(probs, ref_probs, **TOL)
    if dropout_p > 0:  # bit for bit the packed CPU kernel's mask (attention_reference.varlen_dropout_mask)
        keep = np.concatenate([m.ravel() for m in varlen_dropout_mask(SEED, cu_seqlens, heads, dropout_p)])
        np.testing.assert_array_equal(dropped, probs * keep)
    grad_scores, dropped_again = attention_cuda.varlen_softmax_dropout_backward(
        device.put(grad), device.put(probs), device.put(cu_seqlens), 9, heads, 0.5, dropout_p, SEED)
    np.testing.assert_array_equal(device.get(dropped_again), dropped)
    np.testing.assert_allclose(device.get(grad_scores), ref_grad, **TOL)

"""kernels/attention_cuda.py (the fused scale + mask + softmax + dropout between attention's GEMMs): what the
kernels guarantee beyond the ops' results (tests/gpu/test_cuda_ops.py compares CudaAttention and
CudaVarlenAttention with the references), under the CUDA simulator or on a GPU.

Tolerances: the kernels compute in float32, the references here in float64; probabilities of order 1/seq agree to
~1e-7, so 1e-6 catches any wrong term. float16 storage rounds each stored value to 2^-11 relative.
"""
import numpy as np
import pytest

pytest.importorskip("numba_cuda")

from minitransfer.kernels import attention_cuda, attention_reference  # noqa: E402
from minitransfer.kernels.dropout_rng import attention_dropout_mask, varlen_dropout_mask  # noqa: E402

SEED = 2**63 + 12345  # a seed above 2^63: the 64-bit arithmetic must stay unsigned
TOL = {"atol": 1e-6, "rtol": 1e-5}


def scores_and_mask(batch=4, seq=8, seed=0):
    """(q k^T (batch, 1, seq, seq), q, k, mask): a key mask whose rows have seq, 1, 0 (all padding) and 5 real
    keys, one with a hole. q, k are (batch, 1, seq, seq), scale 1 / sqrt(seq)."""
    rng = np.random.default_rng(seed)
    q, k = (rng.standard_normal((batch, 1, seq, seq)).astype(np.float32) for _ in range(2))
    lengths = np.resize([seq, 1, 0, 5], batch)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    mask[3::4, 2] = 0
    return q @ k.swapaxes(-1, -2), q, k, mask


def test_padded_keys_get_exactly_zero_and_rows_without_keys_are_uniform_with_no_gradient(device):
    scores, q, k, mask = scores_and_mask()
    scale = 1 / np.sqrt(8)
    probs, dropped = attention_cuda.softmax_dropout_forward(device.put(scores), scale, device.put(mask))
    probs = device.get(probs)
    np.testing.assert_allclose(probs, attention_reference.probabilities(q.astype(np.float64), k, mask), **TOL)
    assert device.get(dropped) is probs or np.array_equal(device.get(dropped), probs)  # no dropout: no second array
    assert (probs[1, :, :, 1:] == 0).all() and (probs[3, :, :, 2] == 0).all()
    np.testing.assert_array_equal(probs[2], np.full_like(probs[2], 1 / 8))  # all padding: uniform, as the reference
    grad = np.random.default_rng(1).standard_normal(scores.shape).astype(np.float32)
    grad_scores, _ = attention_cuda.softmax_dropout_backward(device.put(grad), device.put(probs), scale,
                                                             device.put(mask))
    assert (device.get(grad_scores)[2] == 0).all()  # constant scores: nothing flows back to q or k


def test_dropout_is_dropout_rngs_mask_bit_for_bit_and_backward_rebuilds_it(device):
    scores, _, _, mask = scores_and_mask()
    probs, dropped = (device.get(a) for a in attention_cuda.softmax_dropout_forward(
        device.put(scores), 0.5, device.put(mask), 0.3, SEED))
    keep = attention_dropout_mask(SEED, 4, 1, 8, 0.3)  # what the reference and kernels/attention_cpu.py apply
    np.testing.assert_array_equal(dropped, probs * keep)
    assert 0 < (keep == 0).mean() < 0.6  # some dropped, most kept (p = 0.3 over 256 draws)
    grad = np.random.default_rng(1).standard_normal(scores.shape).astype(np.float32)
    _, dropped_again = attention_cuda.softmax_dropout_backward(device.put(grad), device.put(probs), 0.5,
                                                               device.put(mask), 0.3, SEED)
    np.testing.assert_array_equal(device.get(dropped_again), dropped)


def test_float16_storage_is_computed_in_float32(device):
    scores, q, k, mask = scores_and_mask()
    half = scores.astype(np.float16)
    probs, dropped = (device.get(a) for a in attention_cuda.softmax_dropout_forward(
        device.put(half), 1.0, device.put(mask), 0.3, SEED))
    assert probs.dtype == dropped.dtype == np.float16
    eye = np.broadcast_to(np.eye(8), (4, 1, 8, 8))  # probabilities(s * sqrt(8), I) = softmax(s): the rounded scores'
    reference = attention_reference.probabilities(half.astype(np.float64) * np.sqrt(8), eye, mask)
    np.testing.assert_allclose(probs, reference, atol=1e-3, rtol=1e-3)
    np.testing.assert_array_equal(dropped != 0, (probs != 0) & (attention_dropout_mask(SEED, 4, 1, 8, 0.3) != 0))


def test_keys_past_512_are_refused(device):
    with pytest.raises(ValueError, match="at most 512 keys"):
        attention_cuda.softmax_dropout_forward(np.zeros((1, 1, 1, 513), np.float32), 1.0)


def test_the_ops_bound_is_the_kernels():
    from minitransfer.ops.attention import CUDA_MAX_KEYS

    assert CUDA_MAX_KEYS == attention_cuda.MAX_KEYS


def test_packed_dropout_is_the_varlen_mask_bit_for_bit_and_backward_rebuilds_it(device):
    cu_seqlens = np.array([0, 5, 6, 9])  # lengths 5, 1 and 3
    heads = 2
    offsets = attention_cuda.varlen_score_offsets(cu_seqlens, heads)
    assert offsets.tolist() == [0, 50, 52, 70]  # heads * L^2 per sequence, end to end
    rng = np.random.default_rng(4)
    scores, grad = (rng.standard_normal(offsets[-1]).astype(np.float32) for _ in range(2))
    probs, dropped = (device.get(a) for a in attention_cuda.varlen_softmax_dropout_forward(
        device.put(scores), device.put(cu_seqlens), 9, heads, 0.5, 0.3, SEED))
    keep = np.concatenate([m.ravel() for m in varlen_dropout_mask(SEED, cu_seqlens, heads, 0.3)])
    np.testing.assert_array_equal(dropped, probs * keep)
    _, dropped_again = attention_cuda.varlen_softmax_dropout_backward(
        device.put(grad), device.put(probs), device.put(cu_seqlens), 9, heads, 0.5, 0.3, SEED)
    np.testing.assert_array_equal(device.get(dropped_again), dropped)

"""Inverted dropout for NumPy arrays with a counter-based mask: nothing is stored for backward.

Element i is kept when hash(seed, i) >= p · 2^32, where hash is two rounds of MurmurHash3's 32-bit
finalizer over the element's index and a 64-bit seed (one draw from minitransfer's seeded generator per
call). Backward recomputes the same mask from (seed, i), so no mask array is kept, and the forward is one
pass (no float32 uniforms drawn with NumPy's Generator, which cost more than the rest of dropout).
Kept elements are scaled by 1 / (1 - p).

`keep_mask_reference` is the same hash in vectorized NumPy; the tests check the kernel against it bit for
bit, and the keep rate against 1 - p. NUMBA_DISABLE_JIT=1 runs the kernel as plain Python.
"""
from __future__ import annotations

import numpy as np

_kernels = None
_GOLDEN = 0x9E3779B1  # odd multipliers spreading consecutive indices (Weyl sequence constants)
_GOLDEN_HI = 0x85EBCA77


def _build():
    """(apply, keep): the dropout kernel and its inlinable per-element test keep(i, seed_lo, seed_hi, threshold)."""
    global _kernels
    if _kernels is None:
        from minitransfer.kernels.numba_cache import tolerate_cache_failures  # noqa: PLC0415
        from numba import njit  # noqa: PLC0415 (imported on first use)

        mask32 = np.uint64(0xFFFFFFFF)

        @njit(inline="always", cache=True)
        def fmix32(h):  # MurmurHash3's finalizer on a uint32 held in a uint64
            h ^= h >> np.uint64(16)
            h = (h * np.uint64(0x85EBCA6B)) & mask32
            h ^= h >> np.uint64(13)
            h = (h * np.uint64(0xC2B2AE35)) & mask32
            h ^= h >> np.uint64(16)
            return h

        @njit(inline="always", cache=True)
        def keep(i, seed_lo, seed_hi, threshold):  # is flat element i kept? i: uint64
            h = fmix32(((i & mask32) * np.uint64(_GOLDEN) + seed_lo) & mask32)
            h = fmix32(h ^ (((i >> np.uint64(32)) * np.uint64(_GOLDEN_HI) + seed_hi) & mask32))
            return h >= threshold

        @njit(error_model="numpy", cache=True)  # one thread: memory-bound, see layer_norm_cpu's note
        def apply(x, out, seed_lo, seed_hi, threshold, scale):
            for i in range(x.shape[0]):
                out[i] = x[i] * scale if keep(np.uint64(i), seed_lo, seed_hi, threshold) else x[i] * 0
            return out

        tolerate_cache_failures(apply)  # a failed cache save must not fail the call
        _kernels = apply, keep
    return _kernels


def supports(x) -> bool:
    return isinstance(x, np.ndarray) and x.dtype in (np.float32, np.float64)


def dropout_params(seed: int, p: float):
    """(seed_lo, seed_hi, threshold): the uint64 words the kernels take for a 64-bit seed and drop rate p."""
    seed_lo, seed_hi = np.uint64(seed & 0xFFFFFFFF), np.uint64((seed >> 32) & 0xFFFFFFFF)
    threshold = np.uint64(min(int(round(p * 2**32)), 2**32))
    return seed_lo, seed_hi, threshold


def dropout_apply(x: np.ndarray, seed: int, p: float) -> np.ndarray:
    """x with the elements dropped by (seed, p) zeroed and the rest scaled by 1/(1-p); x's shape.

    The same call on the upstream gradient is dropout's backward.
    """
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    _build()[0](flat, out, *dropout_params(seed, p), x.dtype.type(1.0 / (1.0 - p)))
    return out.reshape(x.shape)


def keep_mask_reference(size: int, seed: int, p: float) -> np.ndarray:
    """The boolean keep mask of `size` flat elements for (seed, p), in NumPy (tests only)."""
    seed_lo, seed_hi, threshold = dropout_params(seed, p)
    m = np.uint64(0xFFFFFFFF)

    def fmix32(h):
        h = h ^ (h >> np.uint64(16))
        h = (h * np.uint64(0x85EBCA6B)) & m
        h = h ^ (h >> np.uint64(13))
        h = (h * np.uint64(0xC2B2AE35)) & m
        return h ^ (h >> np.uint64(16))

    u = np.arange(size, dtype=np.uint64)
    h = fmix32(((u & m) * np.uint64(_GOLDEN) + seed_lo) & m)
    h = fmix32(h ^ (((u >> np.uint64(32)) * np.uint64(_GOLDEN_HI) + seed_hi) & m))
    return h >= threshold

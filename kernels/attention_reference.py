"""The fused attention kernel's dropout mask, defined and rebuilt in plain NumPy.

The kernel never stores its mask: for row (b, h, i) it derives a 64-bit row key from the call's seed
(the SplitMix64 output number (b * heads + h) * seq + i), and keeps column j when a 32-bit hash of
(j, row key) is at least p * 2^32. `dropout_mask` rebuilds that mask as a (batch, heads, seq, seq) array
so tests can run the reference attention with the very mask the kernel used. The attention itself is
referenced by minitransfer.ops.attention.ReferenceAttention.

The packed (varlen) kernel, kernels/attention_varlen_cpu.py, numbers its rows by packed token t and head h:
row key = SplitMix64 output number t * heads + h, column j = the key's position inside its own sequence.
`varlen_dropout_mask` rebuilds that mask, one (heads, L, L) array per sequence, for
minitransfer.ops.varlen_attention.ReferenceVarlenAttention and the tests.
"""
from __future__ import annotations

import numpy as np

_GOLDEN64 = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function of state z + golden (uint64 arrays, wrapping arithmetic)."""
    z = z + _GOLDEN64
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def row_keys(seed: int, batch: int, heads: int, seq: int) -> np.ndarray:
    """(batch, heads, seq) uint64: the key of each attention row, the row's SplitMix64 output."""
    rows = np.arange(batch * heads * seq, dtype=np.uint64).reshape(batch, heads, seq)
    return splitmix64(np.uint64(seed) + rows * _GOLDEN64)


def _mix32(x: np.ndarray) -> np.ndarray:
    """lowbias32: a bijective 32-bit mixer (uint32 arrays)."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def hash32(columns: np.ndarray, key_lo, key_hi) -> np.ndarray:
    """The per-element hash: columns (uint32) and a row key split into halves -> uniform uint32."""
    x = columns.astype(np.uint32) * np.uint32(0x9E3779B9) + np.asarray(key_lo, dtype=np.uint32)
    return _mix32(_mix32(x) ^ np.asarray(key_hi, dtype=np.uint32))


def keep_threshold(dropout_p: float) -> int:
    """A column is kept when its hash is >= this; P(keep) = 1 - threshold / 2^32 (≈ 1 - p)."""
    return min(round(dropout_p * 2.0**32), 2**32 - 1)


def _scaled_keep(keys: np.ndarray, columns: int, dropout_p: float, dtype) -> np.ndarray:
    """(*keys.shape, columns): 1 / (1 - p) where hash32(column, row key) keeps the column, else 0."""
    keys = keys[..., None]
    lo = (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    hi = (keys >> np.uint64(32)).astype(np.uint32)
    with np.errstate(over="ignore"):
        kept = hash32(np.arange(columns, dtype=np.uint32), lo, hi) >= np.uint32(keep_threshold(dropout_p))
    return kept.astype(dtype) * np.dtype(dtype).type(1.0 / (1.0 - dropout_p))


def dropout_mask(seed: int, batch: int, heads: int, seq: int, dropout_p: float, dtype=np.float32) -> np.ndarray:
    """(batch, heads, seq, seq): 1 / (1 - p) where the kernel keeps a probability, 0 where it drops it."""
    return _scaled_keep(row_keys(seed, batch, heads, seq), seq, dropout_p, dtype)


def varlen_row_keys(seed: int, tokens: int, heads: int) -> np.ndarray:
    """(tokens, heads) uint64: the key of packed row (t, h), SplitMix64 output number t * heads + h."""
    return row_keys(seed, 1, tokens, heads)[0]


def varlen_dropout_mask(seed: int, cu_seqlens, heads: int, dropout_p: float, dtype=np.float32) -> list[np.ndarray]:
    """The packed kernel's mask: per sequence s of cu_seqlens, a (heads, L, L) array (query, key positions
    inside the sequence), 1 / (1 - p) where a probability is kept and 0 where it is dropped."""
    cu = np.asarray(cu_seqlens, dtype=np.int64)
    keys = varlen_row_keys(seed, int(cu[-1]), heads)
    return [_scaled_keep(keys[start:end].T, int(end - start), dropout_p, dtype) for start, end in zip(cu[:-1], cu[1:])]

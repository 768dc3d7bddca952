"""The dropout mask: one counter-based random number generator for every dropout in minitransfer.

A mask is never stored. It is a function of a 64-bit seed (one draw from minitransfer's generator per call, so
`manual_seed` reproduces it) and of each element's (row, column), so backward regenerates it:

    row_key(seed, row)  = mix64(seed + (row + 1) * golden)    (SplitMix64's output number `row` from state seed)
    hash32(column, key) = mix32(mix32(column * 0x9E3779B9 + key_lo) ^ key_hi)    (key = key_hi * 2^32 + key_lo)
    keep(row, column)   = hash32(column, row_key(seed, row)) >= threshold,   threshold = round(p * 2^32)
    dropout(x)          = x * keep / (1 - p)
with golden = 0x9E3779B97F4A7C15, mix64 SplitMix64's finalizer, mix32 lowbias32 (uint64 and uint32 arithmetic).

Rows and columns by caller:
    elementwise (ops.dropout, the dropout in ops.bias_dropout_residual_layer_norm): x viewed as (rows, last dim)
    attention (attention_cpu.py): row (b * heads + h) * seq + i for query i of head h, batch row b; column = key j
    packed attention (attention_varlen_cpu.py): row t * heads + h for packed query t; column = the key's position
        inside its own sequence

This module is the definition, in NumPy or CuPy (the hash on arrays of the caller's module, the row keys, a
per-row vector, in NumPy): the reference ops use it, the tests check every kernel against it bit for bit, and the
kernels spell the same hash in LLVM IR (simd_cpu.py: vdropout, keep32) over row keys computed here.
"""
from __future__ import annotations

import numpy as np

from minitransfer.backend import get_array_module

_GOLDEN64 = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function of state z + golden (uint64 arrays, wrapping arithmetic)."""
    z = z + _GOLDEN64
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def row_key_halves(seed: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(key_lo, key_hi): the low and high 32 bits of rows 0 .. rows - 1's keys, as (rows,) int64 NumPy arrays
    (what the kernels take)."""
    keys = splitmix64(np.uint64(seed) + np.arange(rows, dtype=np.uint64) * _GOLDEN64)
    return (keys & np.uint64(0xFFFFFFFF)).astype(np.int64), (keys >> np.uint64(32)).astype(np.int64)


def _mix32(x):
    """lowbias32: a bijective 32-bit mixer (uint32 arrays)."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def hash32(columns, key_lo, key_hi):
    """The per-element hash: uint32 columns and the row key's uint32 halves (broadcast together) -> uint32."""
    return _mix32(_mix32(columns * np.uint32(0x9E3779B9) + key_lo) ^ key_hi)


def keep_threshold(p: float) -> int:
    """A column is kept when its hash is >= this; P(keep) = 1 - threshold / 2^32 (≈ 1 - p)."""
    return min(round(p * 2.0**32), 2**32 - 1)


def scaled_keep(key_lo, key_hi, columns: int, p: float, dtype, xp=np):
    """(*key_lo.shape, columns) of dtype on module xp: 1 / (1 - p) where row key (key_hi, key_lo) keeps the
    column, 0 where it drops it."""
    lo, hi = (xp.asarray(h).astype(np.uint32)[..., None] for h in (key_lo, key_hi))
    kept = hash32(xp.arange(columns, dtype=np.uint32), lo, hi) >= np.uint32(keep_threshold(p))
    return kept.astype(dtype) * np.dtype(dtype).type(1.0 / (1.0 - p))


def dropout_apply(x, seed: int, p: float):
    """Elementwise dropout of x (NumPy or CuPy, any shape) as (rows, last dim): x * keep / (1 - p), x's shape and
    dtype. The same call on the upstream gradient is dropout's backward."""
    columns = x.shape[-1] if x.ndim else 1
    rows = x.size // columns if columns else 0
    return x * scaled_keep(*row_key_halves(seed, rows), columns, p, x.dtype, get_array_module(x)).reshape(x.shape)


def attention_dropout_mask(seed: int, batch: int, heads: int, seq: int, p: float, dtype=np.float32, xp=np):
    """(batch, heads, seq, seq): 1 / (1 - p) where attention keeps a probability, 0 where it drops it."""
    lo, hi = (h.reshape(batch, heads, seq) for h in row_key_halves(seed, batch * heads * seq))
    return scaled_keep(lo, hi, seq, p, dtype, xp)


def varlen_dropout_mask(seed: int, cu_seqlens, heads: int, p: float, dtype=np.float32, xp=np) -> list:
    """Packed attention's mask: per sequence s of cu_seqlens, a (heads, L, L) array (query, key positions inside
    the sequence), 1 / (1 - p) where a probability is kept and 0 where it is dropped."""
    cu = np.asarray(cu_seqlens, dtype=np.int64)
    lo, hi = (h.reshape(-1, heads) for h in row_key_halves(seed, int(cu[-1]) * heads))
    return [scaled_keep(lo[s:e].T, hi[s:e].T, int(e - s), p, dtype, xp) for s, e in zip(cu[:-1], cu[1:])]

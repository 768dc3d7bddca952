"""The project's one dropout RNG on the GPU: kernels/dropout_rng.py's counter-based hash as device functions.

    keep(row, column) = hash32(column, row_key(seed, row)) >= threshold,   row_key = SplitMix64 output number `row`

Nothing is stored: backward calls the same device functions with the same seed and gets the same mask. Rows and
columns are dropout_rng's (attention: query rows, key columns; packed attention: (token, head) rows, key positions
in the sequence; residual LayerNorm: the (rows, hidden) view), so a seed drops what the CPU kernels and the
reference drop, bit for bit (tests/gpu compare each mask with dropout_rng's NumPy one).

Every integer is cast to uint32 or uint64 explicitly: numba types a signed/unsigned mix as signed (so >> would
shift in sign bits) and widens 32-bit products to 64 bits, and under the simulator the same casts make NumPy
scalars, which wrap as the GPU's registers do (NumPy warns about that; tests/gpu/conftest.py silences it).
FLOPs/bytes: about 25 integer operations per element, no memory traffic.
"""
from __future__ import annotations

import numpy as np
from numba import cuda, uint32, uint64

from .dropout_rng import keep_threshold

_GOLDEN64 = uint64(0x9E3779B97F4A7C15)
_LOW32 = uint64(0xFFFFFFFF)


@cuda.jit(device=True)
def row_key(seed, row):
    """SplitMix64's output number `row` for a uint64 seed: the 64-bit key of one row of the mask."""
    z = seed + uint64(row) * _GOLDEN64 + _GOLDEN64
    z = (z ^ (z >> uint64(30))) * uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> uint64(27))) * uint64(0x94D049BB133111EB)
    return z ^ (z >> uint64(31))


@cuda.jit(device=True)
def _mix32(x):
    """lowbias32, a bijective 32-bit mixer."""
    x = uint32(x ^ (x >> uint32(16)))
    x = uint32(x * uint32(0x7FEB352D))
    x = uint32(x ^ (x >> uint32(15)))
    x = uint32(x * uint32(0x846CA68B))
    return uint32(x ^ (x >> uint32(16)))


@cuda.jit(device=True)
def keeps(column, key, threshold):
    """Whether element `column` of the row with 64-bit `key` is kept; threshold: a uint32 from dropout_words."""
    x = uint32(uint32(column) * uint32(0x9E3779B9) + uint32(key & _LOW32))
    return _mix32(uint32(_mix32(x) ^ uint32(key >> uint64(32)))) >= threshold


def dropout_words(seed: int, p: float):
    """(seed, threshold, scale): what the kernels take for a 64-bit seed and drop rate p (uint64, uint32, float32)."""
    scale = 1.0 / (1.0 - p) if p < 1.0 else 0.0
    return np.uint64(seed), np.uint32(keep_threshold(p)), np.float32(scale)


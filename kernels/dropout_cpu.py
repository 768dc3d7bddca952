"""Inverted dropout for NumPy float32/float64 arrays in one pass, with nothing stored for backward (numba).

x is viewed as (rows, last dim); element (r, j) is kept when dropout_rng's hash of (j, row key r) clears the
threshold, and scaled by 1 / (1 - p). Backward is the same call on the upstream gradient (same seed, same mask),
so no mask array is kept, and no float uniforms are drawn (NumPy's Generator cost more than the rest of dropout).
Reference: dropout_rng.dropout_apply (NumPy/CuPy), which the tests match bit for bit.

Per call on N elements: N multiplies and ~12 N integer operations (the hash); 2 N * itemsize bytes (read x, write
the result) plus 16 bytes per row of keys. One thread: memory-bound (see layer_norm_cpu's note).
NUMBA_DISABLE_JIT=1 runs it as plain Python.
"""
from __future__ import annotations

import numba
import numpy as np

from .dropout_rng import keep_threshold, row_key_halves
from .numba_cache import tolerate_cache_failures
from .simd_cpu import keep32


@numba.njit(error_model="numpy", cache=True)
def dropout_rows(x, key_lo, key_hi, threshold, scale, out):
    """out = x * (scale where row r's key keeps column j, else 0); x, out: (rows, n)."""
    for r in range(x.shape[0]):
        lo, hi = key_lo[r], key_hi[r]
        for j in range(x.shape[1]):
            out[r, j] = x[r, j] * scale if keep32(j, lo, hi, threshold) else x[r, j] * 0


tolerate_cache_failures(dropout_rows)  # a failed cache save must not fail the call


def dropout_apply(x: np.ndarray, seed: int, p: float) -> np.ndarray:
    """x with the elements dropped by (seed, p) zeroed and the rest scaled by 1/(1-p); x's shape and dtype."""
    columns = x.shape[-1] if x.ndim else 1
    rows = x.size // columns if columns else 0
    x2 = np.ascontiguousarray(x).reshape(rows, columns)
    out = np.empty_like(x2)
    dropout_rows(x2, *row_key_halves(seed, rows), keep_threshold(p), x.dtype.type(1.0 / (1.0 - p)), out)
    return out.reshape(x.shape)

"""kernels/dropout_cuda.py, the dropout hash's device functions, against kernels/dropout_rng.py's NumPy definition.

The simulator runs them with NumPy scalars (the attention and LayerNorm tests compare their masks bit for bit);
here they are also compiled by numba (its CPU target, which shares the integer typing rules with the CUDA one), so
a signed/unsigned slip that Python semantics would hide (an arithmetic >>, a 64-bit product not cut to 32) fails.
"""
import types

import numpy as np
import pytest

pytest.importorskip("numba_cuda")

from numba import njit  # noqa: E402

from minitransfer.kernels import dropout_cuda  # noqa: E402
from minitransfer.kernels.dropout_rng import (  # noqa: E402
    attention_dropout_mask,
    keep_threshold,
    row_key_halves,
    scaled_keep,
)

SEEDS = [0, 12345, 2**63 + 99, 2**64 - 1]


def reference_keep_mask(seed, rows, columns, p):
    """(rows, columns) bool: what dropout_rng keeps over a (rows, columns) view (ops.dropout's, the residual
    LayerNorm's)."""
    return scaled_keep(*row_key_halves(seed, rows), columns, p, np.float32) != 0


def compiled_mask():
    """A numba-compiled (rows, columns) keep mask built from the device functions' own Python code."""
    mix32 = njit(dropout_cuda._mix32.py_func)
    keeps = dropout_cuda.keeps.py_func
    keeps = njit(types.FunctionType(keeps.__code__, {**keeps.__globals__, "_mix32": mix32}))
    row_key = njit(dropout_cuda.row_key.py_func)

    @njit
    def mask(seed, rows, columns, threshold):
        out = np.empty((rows, columns), np.bool_)
        for r in range(rows):
            key = row_key(seed, r)
            for j in range(columns):
                out[r, j] = keeps(j, key, threshold)
        return out

    return mask


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_the_compiled_hash_is_the_reference_bit_for_bit(p):
    mask = compiled_mask()
    for seed in SEEDS:
        expected = reference_keep_mask(seed, 9, 70, p)
        np.testing.assert_array_equal(mask(np.uint64(seed), 9, 70, np.uint32(keep_threshold(p))), expected)


def test_the_elementwise_mask_is_the_attention_mask_of_the_same_rows():
    for seed in SEEDS:
        square = attention_dropout_mask(seed, 1, 1, 12, 0.3) != 0  # rows (0, 0, i): attention's numbering
        np.testing.assert_array_equal(reference_keep_mask(seed, 12, 12, 0.3), square[0, 0])


def test_dropout_words():
    seed, threshold, scale = dropout_cuda.dropout_words(2**64 - 1, 0.25)
    assert (seed, threshold, scale) == (np.uint64(2**64 - 1), np.uint32(2**30), np.float32(4 / 3))
    assert seed.dtype == np.uint64 and threshold.dtype == np.uint32 and scale.dtype == np.float32

"""The machine's fp32 peak as the profiler's yardstick: the best rate of a NumPy float32 GEMM, measured once."""
from __future__ import annotations

from time import perf_counter

import numpy as np

_measured: float | None = None


def measured_peak_flops(size: int = 2048, repeats: int = 4) -> float:
    """FLOP/s of the fastest of `repeats` (size x size) float32 products through NumPy's BLAS; cached per process.

    What the BLAS reaches on a large square GEMM is what our GEMMs can hope for, so "% of peak" reads as how
    far an op is from the best this machine does, not from a datasheet number. 2048² (17 GFLOP, ~1 s in all on
    2 cores): at 1024² the rate was 10% below what the model's own GEMMs reached, so they read over 100%.
    """
    global _measured
    if _measured is None:
        a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
        a @ a  # noqa: B018 (warm up the BLAS threads)
        best = float("inf")
        for _ in range(repeats):
            start = perf_counter()
            a @ a  # noqa: B018
            best = min(best, perf_counter() - start)
        _measured = 2 * size**3 / best
    return _measured

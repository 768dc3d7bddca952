"""What every launcher in kernels/*_cuda.py shares: outputs of the caller's array kind, and launch sizes.

A launcher takes CuPy arrays on a GPU (numba reads them through __cuda_array_interface__: no copy), numba
device arrays (`cuda.to_device`), or NumPy arrays. NumPy arrays are for numba's CUDA simulator
(NUMBA_ENABLE_CUDASIM=1: the kernels run as Python threads on the CPU and read and write the arrays in place),
which is how tests/gpu runs every kernel on a machine without a GPU; on a GPU numba would copy NumPy arrays in
and out at every launch, so the ops never pass them there. Outputs are allocated like the first input: CuPy for
CuPy, NumPy for NumPy, a numba device array otherwise.
"""
from __future__ import annotations

import sys

import numpy as np
from numba import cuda

THREADS = 256  # threads per block of the elementwise and column kernels
WARPS_PER_BLOCK = 4  # the warp-per-row kernels: 128 threads a block, as Megatron's softmax


def _cupy_of(x):
    cupy = sys.modules.get("cupy")  # never imported here: an array can only be CuPy's if CuPy is loaded
    return cupy if cupy is not None and isinstance(x, cupy.ndarray) else None


def empty(like, shape, dtype):
    """An uninitialized array of `shape` and `dtype`, of the same kind (and device) as `like`."""
    cupy = _cupy_of(like)
    if cupy is not None:
        return cupy.empty(shape, dtype)
    if isinstance(like, np.ndarray):
        return np.empty(shape, dtype)
    return cuda.device_array(shape, dtype)


def contiguous(x):
    """x as a C-contiguous array of its own kind (a device copy only when it is strided)."""
    cupy = _cupy_of(x)
    if cupy is not None:
        return cupy.ascontiguousarray(x)
    if isinstance(x, np.ndarray):
        return np.ascontiguousarray(x)
    return x  # numba device arrays from cuda.to_device / device_array are C-contiguous


def blocks(count: int, per_block: int) -> int:
    """Blocks to cover `count` items, `per_block` each (at least one: a grid of 0 blocks is an error)."""
    return max(1, -(-count // per_block))

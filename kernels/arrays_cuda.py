"""What every launcher in kernels/*_cuda.py shares: outputs of the caller's array kind, and launch sizes.

A launcher takes CuPy arrays on a GPU (numba reads them through __cuda_array_interface__: no copy), numba
device arrays (`cuda.to_device`), or NumPy arrays. NumPy arrays are for numba's CUDA simulator
(NUMBA_ENABLE_CUDASIM=1: the kernels run as Python threads on the CPU and read and write the arrays in place),
which is how tests/gpu runs every kernel on a machine without a GPU; on a GPU numba would copy NumPy arrays in
and out at every launch, so the ops never pass them there. Outputs are allocated like the first input: CuPy for
CuPy, NumPy for NumPy, a numba device array otherwise. Kernels on CuPy arrays launch on CuPy's current stream
(`stream`), so they are ordered with CuPy's own work without the host waiting; numba's default would block the
host before every launch until each CuPy argument's stream is idle, which importing this module turns off.
"""
from __future__ import annotations

import sys

import numpy as np
from numba import config, cuda

THREADS = 256  # threads per block of the elementwise and column kernels
WARPS_PER_BLOCK = 4  # the warp-per-row kernels: 128 threads a block, as Megatron's softmax


def _cupy_of(x):
    cupy = sys.modules.get("cupy")  # never imported here: an array can only be CuPy's if CuPy is loaded
    return cupy if cupy is not None and isinstance(x, cupy.ndarray) else None


if not config.ENABLE_CUDASIM:
    from numba.cuda.core import config as cuda_config

    cuda_config.CUDA_ARRAY_INTERFACE_SYNC = False  # NUMBA_CUDA_ARRAY_INTERFACE_SYNC=0: see the docstring

_streams: dict = {}


def stream(like):
    """The stream to launch on for input `like`: CuPy's current stream for a CuPy array, else numba's default."""
    cupy = _cupy_of(like)
    ptr = cupy.cuda.get_current_stream().ptr if cupy is not None else 0
    if ptr == 0:
        return 0
    if ptr not in _streams:
        _streams[ptr] = cuda.external_stream(ptr)
    return _streams[ptr]


def empty(like, shape, dtype):
    """An uninitialized array of `shape` and `dtype`, of the same kind (and device) as `like`."""
    cupy = _cupy_of(like)
    if cupy is not None:
        return cupy.empty(shape, dtype)
    if isinstance(like, np.ndarray):
        return np.empty(shape, dtype)
    return cuda.device_array(shape, dtype)


def from_host(array: np.ndarray, like):
    """A host (NumPy) array where `like` lives: a CuPy copy for CuPy, itself for NumPy (the simulator), else a numba
    device copy."""
    cupy = _cupy_of(like)
    if cupy is not None:
        return cupy.asarray(array)
    return array if isinstance(like, np.ndarray) else cuda.to_device(array)


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


# Launch configurations (grid, block, stream), for kernel[config](...), by how a kernel spreads its work.
def per_row(rows: int, like):
    """One warp per row, WARPS_PER_BLOCK rows a block."""
    return blocks(rows, WARPS_PER_BLOCK), 32 * WARPS_PER_BLOCK, stream(like)


def per_element(count: int, like, max_blocks: int = 4096):
    """Grid-stride loops over `count` elements (at most max_blocks blocks; each thread then takes several)."""
    return min(blocks(count, THREADS), max_blocks), THREADS, stream(like)


def per_column(columns: int, chunks: int, like):
    """One thread per column (x) and chunk of rows (y)."""
    return (blocks(columns, THREADS), chunks), THREADS, stream(like)


def one_warp(like):
    """A single warp, for a final sum."""
    return 1, 32, stream(like)

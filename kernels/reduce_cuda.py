"""Reductions the CUDA kernels share: across a warp by shuffles, and the column sums of per-chunk partial rows
(how bias and weight gradients are summed over rows). Sums over a whole array are per-warp partials summed by one
warp in a second launch (cross_entropy_cuda, grad_norm_cuda): no shared memory, no atomics, the same result on
every run.

    warp_max, warp_sum     butterfly (xor) shuffles, 5 steps for 32 lanes; every lane gets the result, bit for
                           bit the same on every lane (each step adds the same two numbers on both partners)
    column_sums            (chunks, n) partial rows -> (n,): one thread per column, fp32 accumulation
                           (a few hundred chunks of 32 rows each for a training batch)

FLOPs/bytes: column_sums reads chunks * n elements and writes n; the warp sums are register work.

numba's simulator (numba-cuda 0.30) has no warp shuffles; under NUMBA_ENABLE_CUDASIM=1 the warp reductions
exchange values through the block at a barrier instead (one per reduction: the simulator's barriers are slow),
which needs every thread of the block to take part in each reduction. The kernels here are written so (a warp
past the last row still reduces, on empty values).
"""
from __future__ import annotations

import threading

from numba import config, cuda, float32

from .arrays_cuda import blocks, empty, per_column

ROWS_PER_CHUNK = 32  # rows summed by one thread into one partial row (float32 sums stay short)

if config.ENABLE_CUDASIM:

    def _warp_values(value):
        """The simulator's stand-in for shuffles: every lane's `value` in this warp, exchanged at one barrier.
        Each exchange has its own slots (a per-thread turn count), so no second barrier is needed."""
        thread = threading.current_thread()
        slots = thread._manager.__dict__.setdefault("warp_slots", {})
        turn = thread.__dict__.get("warp_turn", 0)
        thread.warp_turn = turn + 1
        slots[turn, thread.thread_id] = value
        thread.syncthreads()
        first = thread.thread_id - thread.thread_id % 32
        return [slots[turn, first + lane] for lane in range(32)]

    def _butterfly(values, combine):
        """Lane 0's result of the xor shuffles below (every lane holds the same one), in the same order."""
        offset = 16
        while offset > 0:
            values = [combine(values[lane], values[lane + offset]) for lane in range(offset)]
            offset //= 2
        return values[0]

    def warp_max(value):
        return _butterfly(_warp_values(value), max)

    def warp_sum(value):
        return _butterfly(_warp_values(value), lambda a, b: a + b)
else:

    @cuda.jit(device=True)
    def warp_max(value):
        """The maximum of `value` over the 32 lanes of the warp, on every lane."""
        offset = 16
        while offset > 0:
            value = max(value, cuda.shfl_xor_sync(0xFFFFFFFF, value, offset))
            offset //= 2
        return value

    @cuda.jit(device=True)
    def warp_sum(value):
        """The sum of `value` over the 32 lanes of the warp, on every lane."""
        offset = 16
        while offset > 0:
            value += cuda.shfl_xor_sync(0xFFFFFFFF, value, offset)
            offset //= 2
        return value


@cuda.jit
def _column_sums(partials, out):
    j = cuda.grid(1)
    if j < partials.shape[1]:
        total = float32(0.0)
        for c in range(partials.shape[0]):
            total += float32(partials[c, j])
        out[j] = total


def chunks_of(rows: int) -> int:
    """How many partial rows a kernel writes for `rows` rows (ROWS_PER_CHUNK rows each)."""
    return blocks(rows, ROWS_PER_CHUNK)


def column_sums(partials, dtype=None):
    """(chunks, n) -> (n,): the sum over the chunks, accumulated in float32, stored in `dtype` (partials')."""
    out = empty(partials, (partials.shape[1],), dtype or partials.dtype)
    _column_sums[per_column(partials.shape[1], 1, partials)](partials, out)
    return out

"""A register-tiled GEMM microkernel for numba, which has no BLAS without scipy (np.dot in nopython mode needs it).

numba's auto-vectorizer keeps matmul accumulators in memory (~30 GFLOP/s per core here); this keeps a tile of
TILE_ROWS rows x 2 vectors of C in registers while the depth loop streams one panel row of B and broadcasts
four elements of A (~65-85 GFLOP/s per core), written with simd_cpu's words. Buffers are flat and zero-padded
to whole tiles (padded_widths, row_stride), so there are no edge cases. The attention kernels (attention_cpu.py,
attention_varlen_cpu.py) build every product on it. Per call: 2 m n depth FLOPs; (m + n) depth + m n (2 m n
accumulating) elements moved.
"""
from __future__ import annotations

import numba

from .numba_cache import tolerate_cache_failures
from .simd_cpu import VECTOR_BYTES, vfma, vload, vsplat, vsplat_load, vstore

TILE_ROWS = 4  # microkernel rows: 4 rows x 2 vectors = 8 accumulators, half the AVX2 register file
JIT = {"parallel": False, "fastmath": False, "cache": True, "nogil": True}


@numba.njit(**JIT)
def round_up(x, multiple):
    return (x + multiple - 1) // multiple * multiple


@numba.njit(**JIT)
def row_stride(width, tile):
    """Row length for (rows, width) buffers: an odd number of cache lines (a tile is one line), so walking
    down a column touches every L1 set instead of a few (a 384-wide row of float32 is 24 lines)."""
    return width + tile if (width // tile) % 2 == 0 else width


@numba.njit(**JIT)
def padded_widths(n, dims, itemsize):
    """(width, dims_p, ld) for a product over n rows of dims: n and dims padded to whole tiles (two vectors), and
    row_stride(width) for (rows, width) buffers."""
    tile = 2 * (VECTOR_BYTES // itemsize)
    width = round_up(n, tile)
    return width, round_up(dims, tile), row_stride(width, tile)


@numba.njit(**JIT)
def gemm(a, a_row, a_k, b, ldb, b_panel, c, ldc, m, n, depth, accumulate):
    """c[:m, :n] (+)= A @ B over depth, with A[i, k] = a[i * a_row + k * a_k] (so A may be a transpose) and
    the two-vector-wide column panel of B starting at column j at b[(j / panel width) * b_panel + k * ldb].

    Row-major B: ldb = its row length, b_panel = the panel width. Panel-major B (each panel's rows
    contiguous): ldb = the panel width, b_panel = depth * panel width. Flat arrays; m a multiple of 4, n of
    two vectors. Each 4 x 2-vector tile of c lives in registers while the depth loop streams one panel row
    of B and broadcasts four elements of A.
    """
    w = VECTOR_BYTES // c.itemsize
    for j in range(0, n, 2 * w):
        bj = j // (2 * w) * b_panel
        for i in range(0, m, TILE_ROWS):
            r0 = i * ldc + j
            r1 = r0 + ldc
            r2 = r1 + ldc
            r3 = r2 + ldc
            if accumulate:
                c00, c01, c10, c11 = vload(c, r0), vload(c, r0 + w), vload(c, r1), vload(c, r1 + w)
                c20, c21, c30, c31 = vload(c, r2), vload(c, r2 + w), vload(c, r3), vload(c, r3 + w)
            else:
                c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = vsplat(c, 0.0)
            p0 = i * a_row
            p1 = p0 + a_row
            p2 = p1 + a_row
            p3 = p2 + a_row
            for kk in range(depth):
                bk = bj + kk * ldb
                b0 = vload(b, bk)
                b1 = vload(b, bk + w)
                ak = kk * a_k
                x = vsplat_load(a, p0 + ak)
                c00 = vfma(x, b0, c00)
                c01 = vfma(x, b1, c01)
                x = vsplat_load(a, p1 + ak)
                c10 = vfma(x, b0, c10)
                c11 = vfma(x, b1, c11)
                x = vsplat_load(a, p2 + ak)
                c20 = vfma(x, b0, c20)
                c21 = vfma(x, b1, c21)
                x = vsplat_load(a, p3 + ak)
                c30 = vfma(x, b0, c30)
                c31 = vfma(x, b1, c31)
            vstore(c, r0, c00)
            vstore(c, r0 + w, c01)
            vstore(c, r1, c10)
            vstore(c, r1 + w, c11)
            vstore(c, r2, c20)
            vstore(c, r2 + w, c21)
            vstore(c, r3, c30)
            vstore(c, r3 + w, c31)


tolerate_cache_failures(round_up, row_stride, padded_widths, gemm)  # a failed cache save must not fail the call

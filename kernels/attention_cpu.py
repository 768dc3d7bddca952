"""Fused scaled dot-product attention on the CPU (numba): forward and backward, dropout inside.

FlashAttention's plan on a CPU core: one (batch, head) per task (`prange`), queries in blocks of rows;
each block's scores against all real keys stay in cache (seq <= ~512 needs no blocking over keys), the
exponentials and dropout are applied in place, and the row sums divide the P V product. Only the output
and the per-row logsumexp are kept. Backward recomputes the probabilities from q, k and the logsumexp,
regenerates the dropout mask from a counter-based hash (never stored), and uses D_i = rowsum(dO * O)
(FlashAttention-2). Padded keys are left out of every product: their probability is exactly 0, as with a
-inf score. A sequence with no real key at all attends uniformly to every key, as the reference does.

numba has no BLAS without scipy (np.dot in nopython mode needs it), and its auto-vectorizer keeps matmul
accumulators in memory (~30 GFLOP/s per core here), so the inner products are a 4-row x 2-vector
register-tiled microkernel (~65-85 GFLOP/s per core) written with a tiny SIMD vocabulary (`vload`,
`vfma`, ...) over LLVM vectors of 32 bytes (AVX2: 8 float32 or 4 float64). All buffers are zero-padded to
whole tiles, so the microkernel has no edge cases. Kernels compile with fastmath=False; the only liberty
taken is llvm.fmuladd (a fused multiply-add where the CPU has one) in the products and the exp.

Dropout: keep(b, h, i, j) = hash32(j, row_key(seed, b, h, i)) >= p * 2^32, with row_key the SplitMix64
output for the row; kernels/attention_reference.py rebuilds the same mask in NumPy.

Debugging: NUMBA_DISABLE_JIT=1 runs the kernels as plain Python (the SIMD words become NumPy on small
arrays), so a debugger can step into them; use small shapes, it is slow.
"""
from __future__ import annotations

import contextlib
import math

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.core.dispatcher import Dispatcher
from numba.extending import intrinsic, models, register_model

from .numba_cache import tolerate_cache_failures

VECTOR_BYTES = 32  # one AVX2 register; LLVM splits it on narrower targets, so results stay right
TILE_ROWS = 4  # microkernel rows: 4 rows x 2 vectors = 8 accumulators, half the AVX2 register file
BLOCK_ROWS = 64  # query rows per block at most
BLOCK_BYTES = 128 * 1024  # ... and fewer for long rows, so one block of scores stays in a core's L2
_JIT = {"parallel": False, "fastmath": False, "cache": True, "nogil": True}


# ---------------------------------------------------------------------------------------------------
# SIMD vocabulary. A "vector" is VECTOR_BYTES of the array's float dtype. Under NUMBA_DISABLE_JIT the
# same words are NumPy functions on small arrays.
# ---------------------------------------------------------------------------------------------------
def lanes_of(dtype) -> int:
    """Elements per vector for a float dtype (8 for float32, 4 for float64)."""
    return VECTOR_BYTES // np.dtype(dtype).itemsize


class _Vec(types.Type):
    def __init__(self, dtype):
        self.dtype = dtype
        self.count = VECTOR_BYTES * 8 // dtype.bitwidth
        super().__init__(name=f"vec({dtype}x{self.count})")


@register_model(_Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = ir.FloatType() if fe_type.dtype == types.float32 else ir.DoubleType()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.count))


def _element_ptr(context, builder, arrty, arr, index):
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.gep(data, [index])  # no wraparound or bounds check: callers index in range


def _splat(builder, scalar, vty):
    one = builder.insert_element(ir.Constant(vty, None), scalar, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vty, None), ir.Constant(ir.VectorType(ir.IntType(32), vty.count),
                                                                         [0] * vty.count))


def _vector_call(builder, name, vty, args):
    width = 32 if isinstance(vty.element, ir.FloatType) else 64
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * len(args)),
                                        f"llvm.{name}.v{vty.count}f{width}")
    return builder.call(fn, args)


def _float_const(vty, value):
    return ir.Constant(vty, [value] * vty.count)


def _exp_float32(builder, x):
    """exp on <n x float>: Cephes expf (Cody-Waite reduction, degree-5 polynomial), ~1 ulp; 0 below -87."""
    vty = x.type

    def c(value):
        return _float_const(vty, value)

    clamped = builder.select(builder.fcmp_ordered("<", x, c(-87.0)), c(-87.0), x)
    clamped = builder.select(builder.fcmp_ordered(">", clamped, c(88.0)), c(88.0), clamped)
    n = _vector_call(builder, "rint", vty, [builder.fmul(clamped, c(1.4426950408889634))])

    def fma(a, b, addend):  # llvm.fmuladd: one rounding where the CPU has FMA
        return _vector_call(builder, "fmuladd", vty, [a, b, addend])

    r = fma(n, c(2.12194440e-4), fma(n, c(-0.693359375), clamped))  # x - n ln2, ln2 in two parts
    poly = c(1.9875691500e-4)
    for coeff in (1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1):
        poly = fma(poly, r, c(coeff))
    y = builder.fadd(fma(builder.fmul(poly, r), r, r), c(1.0))
    ity = ir.VectorType(ir.IntType(32), vty.count)
    exponent = builder.add(builder.fptosi(n, ity), ir.Constant(ity, [127] * vty.count))
    y = builder.fmul(y, builder.bitcast(builder.shl(exponent, ir.Constant(ity, [23] * vty.count)), vty))
    y = builder.select(builder.fcmp_ordered("<", x, c(-87.0)), c(0.0), y)
    return builder.select(builder.fcmp_unordered("uno", x, x), x, y)  # NaN in, NaN out


def _mix32(builder, x, ity):
    """lowbias32 (Chris Wellons): a bijective 32-bit mixer, on <n x i32>."""

    def k(value):
        return ir.Constant(ity, [value] * ity.count)

    x = builder.xor(x, builder.lshr(x, k(16)))
    x = builder.mul(x, k(0x7FEB352D))
    x = builder.xor(x, builder.lshr(x, k(15)))
    x = builder.mul(x, k(0x846CA68B))
    return builder.xor(x, builder.lshr(x, k(16)))


@intrinsic
def _vload(typingctx, arr, index):
    vt = _Vec(arr.dtype)

    def codegen(context, builder, sig, args):
        ptr = _element_ptr(context, builder, sig.args[0], args[0], args[1])
        return builder.load(builder.bitcast(ptr, context.get_value_type(vt).as_pointer()), align=4)

    return vt(arr, index), codegen


@intrinsic
def _vstore(typingctx, arr, index, vec):
    def codegen(context, builder, sig, args):
        ptr = _element_ptr(context, builder, sig.args[0], args[0], args[1])
        builder.store(args[2], builder.bitcast(ptr, args[2].type.as_pointer()), align=4)
        return context.get_dummy_value()

    return types.void(arr, index, vec), codegen


@intrinsic
def _vsplat_load(typingctx, arr, index):
    vt = _Vec(arr.dtype)

    def codegen(context, builder, sig, args):
        ptr = _element_ptr(context, builder, sig.args[0], args[0], args[1])
        return _splat(builder, builder.load(ptr), context.get_value_type(vt))

    return vt(arr, index), codegen


@intrinsic
def _vsplat(typingctx, arr, value):
    vt = _Vec(arr.dtype)

    def codegen(context, builder, sig, args):
        scalar = context.cast(builder, args[1], sig.args[1], arr.dtype)
        return _splat(builder, scalar, context.get_value_type(vt))

    return vt(arr, value), codegen


def _binary(op):
    def typer(typingctx, a, b):
        def codegen(context, builder, sig, args):
            return op(builder, *args)

        return a(a, b), codegen

    return intrinsic(typer)


@intrinsic
def _vfma(typingctx, a, b, c):
    def codegen(context, builder, sig, args):
        return _vector_call(builder, "fmuladd", args[0].type, list(args))

    return c(a, b, c), codegen


@intrinsic
def _vexp(typingctx, a):
    def codegen(context, builder, sig, args):
        if a.dtype == types.float32:
            return _exp_float32(builder, args[0])
        return _vector_call(builder, "exp", args[0].type, [args[0]])  # float64: libm, exact as the reference

    return a(a), codegen


def _reduce(op):
    def typer(typingctx, a):
        def codegen(context, builder, sig, args):
            acc = builder.extract_element(args[0], ir.Constant(ir.IntType(32), 0))
            for lane in range(1, a.count):
                acc = op(builder, acc, builder.extract_element(args[0], ir.Constant(ir.IntType(32), lane)))
            return acc

        return a.dtype(a), codegen

    return intrinsic(typer)


@intrinsic
def _vdropout(typingctx, like, columns, index, key_lo, key_hi, threshold, keep_scale):
    """keep_scale where hash32(column, row key) >= threshold else 0, for the vector of columns at index."""

    def codegen(context, builder, sig, args):
        vty = args[0].type
        ity = ir.VectorType(ir.IntType(32), vty.count)
        ptr = _element_ptr(context, builder, sig.args[1], args[1], args[2])
        cols = builder.load(builder.bitcast(ptr, ity.as_pointer()), align=4)

        def i32(value):  # a 32-bit splat of an integer argument
            return _splat(builder, builder.trunc(value, ir.IntType(32)), ity)

        x = builder.add(builder.mul(cols, ir.Constant(ity, [0x9E3779B9] * ity.count)), i32(args[3]))
        x = _mix32(builder, builder.xor(_mix32(builder, x, ity), i32(args[4])), ity)
        keep = builder.icmp_unsigned(">=", x, i32(args[5]))
        scale = context.cast(builder, args[6], sig.args[6], like.dtype)
        return builder.select(keep, _splat(builder, scale, vty), ir.Constant(vty, None))

    return like(like, columns, index, key_lo, key_hi, threshold, keep_scale), codegen


_vadd = _binary(lambda b, x, y: b.fadd(x, y))
_vsub = _binary(lambda b, x, y: b.fsub(x, y))
_vmul = _binary(lambda b, x, y: b.fmul(x, y))
_vmax = _binary(lambda b, x, y: b.select(b.fcmp_ordered(">", x, y), x, y))
_vhsum = _reduce(lambda b, x, y: b.fadd(x, y))
_vhmax = _reduce(lambda b, x, y: b.select(b.fcmp_ordered(">", x, y), x, y))


def _python_vocabulary():
    """The SIMD words as NumPy on arrays of one vector, for NUMBA_DISABLE_JIT=1 (stepping through)."""
    from .attention_reference import hash32

    def splat(arr, value):
        return np.full(lanes_of(arr.dtype), value, dtype=arr.dtype)

    def vstore(arr, index, vec):
        arr[index:index + len(vec)] = vec

    def vexp(a):
        with np.errstate(under="ignore", invalid="ignore"):
            return np.exp(a)

    def vdropout(like, columns, index, key_lo, key_hi, threshold, keep_scale):
        cols = columns[index:index + len(like)].astype(np.uint32)
        return np.where(hash32(cols, np.uint32(key_lo), np.uint32(key_hi)) >= np.uint32(threshold),
                        like.dtype.type(keep_scale), like.dtype.type(0))

    def hsum(a):
        return sum(a[1:], a[0])

    return {"vload": lambda arr, index: arr[index:index + lanes_of(arr.dtype)].copy(), "vstore": vstore,
            "vsplat_load": lambda arr, index: splat(arr, arr[index]), "vsplat": splat,
            "vfma": lambda a, b, c: a * b + c, "vexp": vexp, "vadd": np.add, "vsub": np.subtract,
            "vmul": np.multiply, "vmax": lambda a, b: np.where(a > b, a, b), "vhsum": hsum,
            "vhmax": lambda a: a.max(), "vdropout": vdropout}


if numba.config.DISABLE_JIT:
    globals().update(_python_vocabulary())
else:
    vload, vstore, vsplat_load, vsplat, vfma, vexp = _vload, _vstore, _vsplat_load, _vsplat, _vfma, _vexp
    vadd, vsub, vmul, vmax, vhsum, vhmax, vdropout = _vadd, _vsub, _vmul, _vmax, _vhsum, _vhmax, _vdropout


# ---------------------------------------------------------------------------------------------------
# Building blocks over flat, zero-padded, C-ordered buffers.
# ---------------------------------------------------------------------------------------------------
@numba.njit(**_JIT)
def _round_up(x, multiple):
    return (x + multiple - 1) // multiple * multiple


@numba.njit(**_JIT)
def _gemm(a, a_row, a_k, b, ldb, b_panel, c, ldc, m, n, depth, accumulate):
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


@numba.njit(**_JIT)
def _exp_row(s, off, n, width, scale):
    """Row s[off:off + width] of raw scores -> exp(scale * s - row max) over its first n columns, 0 beyond.

    Returns (logsumexp of scale * s, the row sum); the caller divides by the sum after P V, on head_dim
    columns instead of seq.
    """
    w = VECTOR_BYTES // s.itemsize
    for j in range(n, width):
        s[off + j] = -np.inf
    top = vsplat(s, -np.inf)
    for j in range(0, width, w):
        top = vmax(top, vload(s, off + j))
    shift = vhmax(top) * scale
    scales, shifts, total = vsplat(s, scale), vsplat(s, -shift), vsplat(s, 0.0)
    for j in range(0, width, w):
        e = vexp(vfma(vload(s, off + j), scales, shifts))
        vstore(s, off + j, e)
        total = vadd(total, e)
    norm = vhsum(total)
    return shift + math.log(norm), norm


@numba.njit(**_JIT)
def _probabilities_row(s, off, n, width, scale, lse):
    """Row of raw scores -> exp(scale * s - lse) over the first n columns, 0 beyond (backward's recompute)."""
    w = VECTOR_BYTES // s.itemsize
    for j in range(n, width):
        s[off + j] = -np.inf
    scales, shifts = vsplat(s, scale), vsplat(s, -lse)
    for j in range(0, width, w):
        vstore(s, off + j, vexp(vfma(vload(s, off + j), scales, shifts)))


@numba.njit(**_JIT)
def _dropout_row(p, dst, off, width, columns, key_lo, key_hi, threshold, keep_scale):
    """dst row = p row * (keep_scale where the hash keeps the column, else 0)."""
    w = VECTOR_BYTES // p.itemsize
    for j in range(0, width, w):
        keep = vdropout(vsplat(p, 0.0), columns, j, key_lo, key_hi, threshold, keep_scale)
        vstore(dst, off + j, vmul(vload(p, off + j), keep))


@numba.njit(**_JIT)
def _gather_keys(x, b, h, keys, n, width, ld, panels):
    """x[b, h, keys[:n], :] zero-padded to (width, dims_p), flat: transposed, (dims_p, ld) row-major, or in
    column panels, (dims_p / panel width, width, panel width), where a long P V product streams a panel with
    a stride of one panel row (a (width, dims_p) row stride lands in few L1 sets: measured 20-30% slower)."""
    dims = x.shape[3]
    tile = 2 * (VECTOR_BYTES // x.itemsize)
    out = np.zeros(_round_up(dims, tile) * (width if panels else ld), dtype=x.dtype)
    if panels:
        for first in range(0, dims, tile):  # the panel of columns first .. first + tile starts at first * width
            for jj in range(n):
                src, row = keys[jj], first * width + jj * tile
                for t in range(min(tile, dims - first)):
                    out[row + t] = x[b, h, src, first + t]
    else:
        for jj in range(n):
            src = keys[jj]
            for d in range(dims):
                out[d * ld + jj] = x[b, h, src, d]
    return out


@numba.njit(**_JIT)
def _row_stride(width, tile):
    """Row length for (rows, width) buffers: an odd number of cache lines (a tile is one line), so walking
    down a column touches every L1 set instead of a few (a 384-wide row of float32 is 24 lines)."""
    return width + tile if (width // tile) % 2 == 0 else width


@numba.njit(**_JIT)
def _load_rows(x, b, h, start, count, zero, dst):
    """dst[:count, :dims] = x[b, h, start:start + count] (zeros if `zero`), and zero dst's other rows."""
    dst[:] = 0
    if not zero:
        for r in range(count):
            for d in range(x.shape[3]):
                dst[r, d] = x[b, h, start + r, d]


# ---------------------------------------------------------------------------------------------------
# One block of query rows, already loaded into the flat buffers: the math both layouts share (this file's
# (batch, head) drivers and attention_varlen_cpu's (sequence, head) ones differ only in what they load).
# lse_rows, lo_rows, hi_rows: the block's rows of the logsumexp and of the dropout row keys (1-D views).
# ---------------------------------------------------------------------------------------------------
@numba.njit(**_JIT)
def _forward_block(qf, kf, vf, sf, of, norms, lse_rows, lo_rows, hi_rows, columns, n, rows, width, ld, dims_p,
                   scale, threshold, keep_scale, dropout):
    """Scores of the block against the n keys, their exponentials (dropped out), and P V into of; the row sums
    in norms (the caller divides the output by them) and each row's logsumexp in lse_rows."""
    tile = 2 * (VECTOR_BYTES // sf.itemsize)
    tiled = _round_up(rows, TILE_ROWS)
    _gemm(qf, dims_p, 1, kf, ld, tile, sf, ld, tiled, width, dims_p, False)
    for r in range(rows):
        lse_rows[r], norms[r] = _exp_row(sf, r * ld, n, width, scale)
        if dropout:
            _dropout_row(sf, sf, r * ld, width, columns, lo_rows[r], hi_rows[r], threshold, keep_scale)
    sf[rows * ld:tiled * ld] = 0
    _gemm(sf, ld, 1, vf, tile, width * tile, of, dims_p, tiled, dims_p, width, False)


@numba.njit(**_JIT)
def _backward_block(qf, dof, dqf, pf, pdf, dsf, ktf, kpf, vtf, dkf, dvf, delta, lse_rows, lo_rows, hi_rows, columns,
                    n, rows, width, ld, dims_p, scale, threshold, keep_scale, dropout):
    """Given the block's q and dO rows and D_i = rowsum(dO * O) in delta: recompute P (and its dropped-out
    P_drop), add the block's share of dK and dV, and leave its dQ in dqf."""
    tile = 2 * (VECTOR_BYTES // qf.itemsize)
    tiled = _round_up(rows, TILE_ROWS)
    _gemm(qf, dims_p, 1, ktf, ld, tile, pf, ld, tiled, width, dims_p, False)
    for r in range(rows):
        _probabilities_row(pf, r * ld, n, width, scale, lse_rows[r])
        if dropout:
            _dropout_row(pf, pdf, r * ld, width, columns, lo_rows[r], hi_rows[r], threshold, keep_scale)
    pf[rows * ld:tiled * ld] = 0
    pdf[rows * ld:tiled * ld] = 0
    # dV += P_drop^T dO
    _gemm(pdf, 1, ld, dof, dims_p, tile, dvf, dims_p, width, dims_p, tiled, True)
    # dP_drop = dO V^T; dS = (P_drop * dP_drop - P * D_i) * scale  (= P * (dP - D_i) * scale)
    _gemm(dof, dims_p, 1, vtf, ld, tile, dsf, ld, tiled, width, dims_p, False)
    w = VECTOR_BYTES // qf.itemsize
    scales = vsplat(dsf, scale)
    for r in range(tiled):
        off = r * ld
        deltas = vsplat(dsf, delta[r] if r < rows else 0.0)
        for j in range(0, width, w):
            g = vsub(vmul(vload(pdf, off + j), vload(dsf, off + j)), vmul(vload(pf, off + j), deltas))
            vstore(dsf, off + j, vmul(g, scales))
    # dQ = dS K; dK += dS^T Q
    _gemm(dsf, ld, 1, kpf, tile, width * tile, dqf, dims_p, tiled, dims_p, width, False)
    _gemm(dsf, 1, ld, qf, dims_p, tile, dkf, dims_p, width, dims_p, tiled, True)


# ---------------------------------------------------------------------------------------------------
# One (batch, head) at a time; the parallel drivers below give each task its own buffers.
# ---------------------------------------------------------------------------------------------------
@numba.njit(**_JIT)
def _forward_head(q, k, v, b, h, keys, n, zero_q, scale, key_lo, key_hi, threshold, keep_scale, dropout,
                  block_rows, out, lse):
    seq, dims = q.shape[2], q.shape[3]
    tile = 2 * (VECTOR_BYTES // q.itemsize)
    width, dims_p = _round_up(n, tile), _round_up(dims, tile)
    ld = _row_stride(width, tile)
    kf = _gather_keys(k, b, h, keys, n, width, ld, False)  # k^T: the scores stream its rows
    vf = _gather_keys(v, b, h, keys, n, width, ld, True)  # v in column panels for P V
    qb = np.empty((block_rows, dims_p), dtype=q.dtype)
    sb = np.empty((block_rows, ld), dtype=q.dtype)
    ob = np.empty((block_rows, dims_p), dtype=q.dtype)
    norms = np.empty(block_rows, dtype=np.float64)
    qf, sf, of = qb.ravel(), sb.ravel(), ob.ravel()
    for start in range(0, seq, block_rows):
        rows = min(block_rows, seq - start)
        _load_rows(q, b, h, start, rows, zero_q, qb)
        lo, hi = (key_lo[b, h, start:start + rows], key_hi[b, h, start:start + rows]) if dropout else (
            key_lo[0, 0, :0], key_hi[0, 0, :0])
        _forward_block(qf, kf, vf, sf, of, norms, lse[b, h, start:start + rows], lo, hi, keys, n, rows, width, ld,
                       dims_p, scale, threshold, keep_scale, dropout)
        for r in range(rows):
            inv = 1.0 / norms[r]
            for d in range(dims):
                out[b, h, start + r, d] = ob[r, d] * inv


@numba.njit(**_JIT)
def _backward_head(q, k, v, out, dout, lse, b, h, keys, n, zero_q, scale, key_lo, key_hi, threshold, keep_scale,
                   dropout, block_rows, dq, dk, dv):
    seq, dims = q.shape[2], q.shape[3]
    tile = 2 * (VECTOR_BYTES // q.itemsize)
    width, dims_p = _round_up(n, tile), _round_up(dims, tile)
    ld = _row_stride(width, tile)
    ktf = _gather_keys(k, b, h, keys, n, width, ld, False)  # k^T for the scores
    kpf = _gather_keys(k, b, h, keys, n, width, ld, True)  # k in column panels for dQ = dS k
    vtf = _gather_keys(v, b, h, keys, n, width, ld, False)  # v^T for dP = dO v^T
    dkc = np.zeros((width, dims_p), dtype=q.dtype)
    dvc = np.zeros((width, dims_p), dtype=q.dtype)
    qb = np.empty((block_rows, dims_p), dtype=q.dtype)
    dob = np.empty((block_rows, dims_p), dtype=q.dtype)
    dqb = np.empty((block_rows, dims_p), dtype=q.dtype)
    pb = np.empty((block_rows, ld), dtype=q.dtype)
    pdb = np.empty((block_rows, ld), dtype=q.dtype) if dropout else pb
    dsb = np.empty((block_rows, ld), dtype=q.dtype)
    delta = np.empty(block_rows, dtype=np.float64)
    qf, dof, dqf, pf, pdf, dsf = qb.ravel(), dob.ravel(), dqb.ravel(), pb.ravel(), pdb.ravel(), dsb.ravel()
    dkf, dvf = dkc.ravel(), dvc.ravel()
    for start in range(0, seq, block_rows):
        rows = min(block_rows, seq - start)
        _load_rows(q, b, h, start, rows, zero_q, qb)
        _load_rows(dout, b, h, start, rows, False, dob)
        for r in range(rows):  # D_i = rowsum(dO * O), FlashAttention-2's shortcut for sum_j P_ij dP_ij
            acc = 0.0
            for d in range(dims):
                acc += dout[b, h, start + r, d] * out[b, h, start + r, d]
            delta[r] = acc
        lo, hi = (key_lo[b, h, start:start + rows], key_hi[b, h, start:start + rows]) if dropout else (
            key_lo[0, 0, :0], key_hi[0, 0, :0])
        _backward_block(qf, dof, dqf, pf, pdf, dsf, ktf, kpf, vtf, dkf, dvf, delta, lse[b, h, start:start + rows],
                        lo, hi, keys, n, rows, width, ld, dims_p, scale, threshold, keep_scale, dropout)
        for r in range(rows):
            for d in range(dims):
                dq[b, h, start + r, d] = 0.0 if zero_q else dqb[r, d]
    for jj in range(n):
        for d in range(dims):
            dk[b, h, keys[jj], d] = dkc[jj, d]
            dv[b, h, keys[jj], d] = dvc[jj, d]


@numba.njit(parallel=True, fastmath=False, cache=True)
def _forward(q, k, v, keys, counts, zero_q, scale, key_lo, key_hi, threshold, keep_scale, dropout, block_rows,
             out, lse):
    heads = q.shape[1]
    for task in prange(q.shape[0] * heads):
        b, h = task // heads, task % heads
        _forward_head(q, k, v, b, h, keys[b], counts[b], zero_q[b] != 0, scale, key_lo, key_hi, threshold,
                      keep_scale, dropout, block_rows, out, lse)


@numba.njit(parallel=True, fastmath=False, cache=True)
def _backward(q, k, v, out, dout, lse, keys, counts, zero_q, scale, key_lo, key_hi, threshold, keep_scale, dropout,
              block_rows, dq, dk, dv):
    heads = q.shape[1]
    for task in prange(q.shape[0] * heads):
        b, h = task // heads, task % heads
        _backward_head(q, k, v, out, dout, lse, b, h, keys[b], counts[b], zero_q[b] != 0, scale, key_lo, key_hi,
                       threshold, keep_scale, dropout, block_rows, dq, dk, dv)


# ---------------------------------------------------------------------------------------------------
# Python entry points (NumPy arrays in, NumPy arrays out).
# ---------------------------------------------------------------------------------------------------
def _key_layout(key_padding_mask, batch: int, seq: int, tile: int):
    """Per batch row: the real key positions (int32, padded to whole tiles), their count, and whether the row
    has no real key at all (then, as the reference, every key gets the same probability)."""
    width = -(-seq // tile) * tile
    keys = np.zeros((batch, width), dtype=np.int32)
    counts = np.full(batch, seq, dtype=np.int32)
    no_keys = np.zeros(batch, dtype=np.uint8)
    if key_padding_mask is None:
        keys[:, :seq] = np.arange(seq, dtype=np.int32)
        return keys, counts, no_keys
    real = np.asarray(key_padding_mask) != 0
    if real.shape != (batch, seq):
        raise ValueError(f"key_padding_mask has shape {real.shape}; attention over q of batch {batch} and seq {seq} "
                         f"needs ({batch}, {seq}), 1 for real tokens and 0 for padding")
    for b in range(batch):
        where = np.flatnonzero(real[b]) if real[b].any() else np.arange(seq)
        keys[b, :len(where)] = where
        counts[b] = len(where)
        no_keys[b] = not real[b].any()
    return keys, counts, no_keys


def _dropout_keys(seed: int, shape, dropout_p: float):
    from .attention_reference import keep_threshold, row_keys

    if dropout_p <= 0:
        empty = np.zeros((1, 1, 1), dtype=np.int64)
        return empty, empty, 0, 1.0
    keys = row_keys(seed, *shape)
    lo = (keys & np.uint64(0xFFFFFFFF)).astype(np.int64)
    hi = (keys >> np.uint64(32)).astype(np.int64)
    return lo, hi, keep_threshold(dropout_p), 1.0 / (1.0 - dropout_p)


def _signature(kind: str, dtype):
    """The one signature per dtype: float inputs of any strides, read-only allowed; outputs C-ordered."""
    t = numba.from_dtype(np.dtype(dtype))
    given = [types.Array(t, 4, "A", readonly=True)] * (3 if kind == "forward" else 5)
    if kind == "backward":
        given.append(types.Array(t, 3, "A", readonly=True))  # lse
    layout = [types.int32[:, ::1], types.int32[::1], types.uint8[::1], types.float64, types.int64[:, :, ::1],
              types.int64[:, :, ::1], types.int64, types.float64, types.boolean, types.int64]
    made = [t[:, :, :, ::1], t[:, :, ::1]] if kind == "forward" else [t[:, :, :, ::1]] * 3
    return types.void(*given, *layout, *made)


# A failed cache save (processes racing on one index) must not fail the call: see numba_cache.py.
tolerate_cache_failures(*[f for f in list(globals().values()) if isinstance(f, Dispatcher)])

_ready: set = set()


def _compiled(kernel, kind: str, dtype):
    """The kernel, compiled (or loaded from the cache) once per dtype for arrays of any strides, so contiguous
    and transposed inputs share one machine-code version instead of compiling one per memory layout."""
    if not numba.config.DISABLE_JIT and (kind, dtype) not in _ready:
        kernel.disable_compile(False)
        kernel.compile(_signature(kind, dtype))
        kernel.disable_compile(True)
        _ready.add((kind, dtype))
    return kernel


@contextlib.contextmanager
def _one_head_per_chunk():
    """prange hands out one (batch, head) at a time instead of equal halves up front, so heads with more real
    keys, or a core busy with another process, do not leave the other threads idle at the end. (Set from
    Python: calling it inside the kernel would stop numba from caching it.)"""
    previous = numba.set_parallel_chunksize(1)
    try:
        yield
    finally:
        numba.set_parallel_chunksize(previous)


def _block_rows(seq: int, itemsize: int) -> int:
    fit = BLOCK_BYTES // (seq * itemsize) // TILE_ROWS * TILE_ROWS
    return max(TILE_ROWS, min(BLOCK_ROWS, fit, -(-seq // TILE_ROWS) * TILE_ROWS))


def attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, key_padding_mask=None, dropout_p: float = 0.0,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """softmax(q k^T / sqrt(d), padded keys left out) (dropout) v, and the per-row logsumexp.

    q, k, v: (batch, heads, seq, head_dim), float32 or float64 (any strides); key_padding_mask: (batch, seq),
    nonzero for real tokens, or None; seed: picks the dropout mask. Returns out (batch, heads, seq, head_dim)
    and lse (batch, heads, seq) of the scaled scores, which is all backward needs.
    """
    batch, heads, seq, dims = q.shape
    keys, counts, no_keys = _key_layout(key_padding_mask, batch, seq, 2 * lanes_of(q.dtype))
    lo, hi, threshold, keep_scale = _dropout_keys(seed, (batch, heads, seq), dropout_p)
    out = np.empty(q.shape, dtype=q.dtype)
    lse = np.empty((batch, heads, seq), dtype=q.dtype)
    forward = _compiled(_forward, "forward", q.dtype)
    with _one_head_per_chunk():
        forward(q, k, v, keys, counts, no_keys, 1.0 / math.sqrt(dims), lo, hi, threshold, keep_scale, dropout_p > 0,
                _block_rows(seq, q.itemsize), out, lse)
    return out, lse


def attention_backward(dout: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, out: np.ndarray,
                       lse: np.ndarray, key_padding_mask=None, dropout_p: float = 0.0,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dq, dk, dv) of the forward above, given dout = dL/d out and forward's out and lse.

    Same mask, dropout_p and seed as the forward call; padded keys get zero dk and dv.
    """
    batch, heads, seq, dims = q.shape
    keys, counts, no_keys = _key_layout(key_padding_mask, batch, seq, 2 * lanes_of(q.dtype))
    lo, hi, threshold, keep_scale = _dropout_keys(seed, (batch, heads, seq), dropout_p)
    dq = np.empty(q.shape, dtype=q.dtype)
    dk = np.zeros(q.shape, dtype=q.dtype)
    dv = np.zeros(q.shape, dtype=q.dtype)
    backward = _compiled(_backward, "backward", q.dtype)
    with _one_head_per_chunk():
        backward(q, k, v, out, dout, lse, keys, counts, no_keys, 1.0 / math.sqrt(dims), lo, hi, threshold,
                 keep_scale, dropout_p > 0, _block_rows(seq, q.itemsize), dq, dk, dv)
    return dq, dk, dv

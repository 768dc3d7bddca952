"""What numba cannot say, written as LLVM IR: SIMD words, the one fast expf, and the dropout hash.

numba's auto-vectorizer keeps matmul accumulators in memory and calls libm's scalar expf, so the attention kernels
spell their inner loops with a tiny vocabulary over LLVM vectors of VECTOR_BYTES (AVX2: 8 float32 or 4 float64):
    vload, vstore, vsplat_load, vsplat     a vector from/to an array, or one value in every lane
    vfma, vadd, vsub, vmul, vmax, vexp     lane-wise (vfma is llvm.fmuladd: fused where the CPU has FMA)
    vhsum, vhmax                           one lane-sum or lane-max
    vdropout                               keep-scale or 0 per column of a vector (the hash of dropout_rng.py)
and two scalar words that elementwise loops inline, which LLVM then vectorizes itself:
    exp32(x)                               the same expf as vexp on one float32
    keep32(column, key_lo, key_hi, threshold)  the same dropout hash as vdropout on one column

expf (float32): Cephes' expf, e^x = 2^n e^r with n = rint(x / ln 2), |r| <= ln2/2 (ln 2 split in two so n ln 2 is
exact), a degree-5 polynomial, 2^n built from its IEEE bits; ~1 ulp on [-87, 88], 0 below -87, NaN in NaN out.
float64 vectors use llvm.exp (libm), exact as the reference.

Under NUMBA_DISABLE_JIT=1 the same words are NumPy functions on small arrays, so a debugger can step through the
kernels. numba caches a kernel keyed on its own file only: after editing this file, delete kernels/__pycache__/
*.nbi so the kernels that inline these words recompile.
"""
from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

VECTOR_BYTES = 32  # one AVX2 register; LLVM splits it on narrower targets, so results stay right


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


# ---- IR recipes over a scalar or a vector type ----
def _const(ty, value):
    return ir.Constant(ty, [value] * ty.count if isinstance(ty, ir.VectorType) else value)


def _shaped(ty, element):
    """`element` (an IR type) as a scalar or as a vector of ty's lane count, whichever ty is."""
    return ir.VectorType(element, ty.count) if isinstance(ty, ir.VectorType) else element


def _llvm(builder, name, ty, args):
    """A call of LLVM's intrinsic llvm.<name> on floats of type ty (f32, f64 or a vector of them)."""
    element = ty.element if isinstance(ty, ir.VectorType) else ty
    suffix = "f32" if isinstance(element, ir.FloatType) else "f64"
    suffix = f"v{ty.count}{suffix}" if isinstance(ty, ir.VectorType) else suffix
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty] * len(args)), f"llvm.{name}.{suffix}")
    return builder.call(fn, args)


def _exp_float32(builder, x):
    """exp of float or <n x float> x: Cephes expf (see the module docstring)."""
    ty = x.type

    def c(value):
        return _const(ty, value)

    def fma(a, b, addend):  # llvm.fmuladd: one rounding where the CPU has FMA
        return _llvm(builder, "fmuladd", ty, [a, b, addend])

    clamped = builder.select(builder.fcmp_ordered("<", x, c(-87.0)), c(-87.0), x)
    clamped = builder.select(builder.fcmp_ordered(">", clamped, c(88.0)), c(88.0), clamped)
    n = _llvm(builder, "rint", ty, [builder.fmul(clamped, c(1.4426950408889634))])
    r = fma(n, c(2.12194440e-4), fma(n, c(-0.693359375), clamped))  # x - n ln2, ln2 in two parts
    poly = c(1.9875691500e-4)
    for coeff in (1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1):
        poly = fma(poly, r, c(coeff))
    y = builder.fadd(fma(builder.fmul(poly, r), r, r), c(1.0))
    ity = _shaped(ty, ir.IntType(32))
    exponent = builder.add(builder.fptosi(n, ity), _const(ity, 127))
    y = builder.fmul(y, builder.bitcast(builder.shl(exponent, _const(ity, 23)), ty))
    y = builder.select(builder.fcmp_ordered("<", x, c(-87.0)), c(0.0), y)
    return builder.select(builder.fcmp_unordered("uno", x, x), x, y)  # NaN in, NaN out


def _mix32(builder, x):
    """lowbias32 (Chris Wellons), a bijective 32-bit mixer, on i32 or <n x i32>."""
    def k(value):
        return _const(x.type, value)

    x = builder.xor(x, builder.lshr(x, k(16)))
    x = builder.mul(x, k(0x7FEB352D))
    x = builder.xor(x, builder.lshr(x, k(15)))
    x = builder.mul(x, k(0x846CA68B))
    return builder.xor(x, builder.lshr(x, k(16)))


def _keeps(builder, columns, key_lo, key_hi, threshold):
    """dropout_rng's keep test, hash32(column, key) >= threshold, on i32 columns (scalar or vector; the other
    words have the columns' shape)."""
    x = builder.add(builder.mul(columns, _const(columns.type, 0x9E3779B9)), key_lo)
    x = _mix32(builder, builder.xor(_mix32(builder, x), key_hi))
    return builder.icmp_unsigned(">=", x, threshold)


# ---- the words ----
def _element_ptr(context, builder, arrty, arr, index):
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.gep(data, [index])  # no wraparound or bounds check: callers index in range


def _splat(builder, scalar, vty):
    one = builder.insert_element(ir.Constant(vty, None), scalar, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vty, None), ir.Constant(ir.VectorType(ir.IntType(32), vty.count),
                                                                         [0] * vty.count))


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
        return _llvm(builder, "fmuladd", args[0].type, list(args))

    return c(a, b, c), codegen


@intrinsic
def _vexp(typingctx, a):
    def codegen(context, builder, sig, args):
        if a.dtype == types.float32:
            return _exp_float32(builder, args[0])
        return _llvm(builder, "exp", args[0].type, [args[0]])  # float64: libm, exact as the reference

    return a(a), codegen


@intrinsic
def _exp32(typingctx, x):
    def codegen(context, builder, sig, args):
        return _exp_float32(builder, args[0])

    return types.float32(types.float32), codegen


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
    """keep_scale where hash32(column, row key) >= threshold else 0, for the vector of int32 columns at index."""

    def codegen(context, builder, sig, args):
        vty = args[0].type
        ity = ir.VectorType(ir.IntType(32), vty.count)
        ptr = _element_ptr(context, builder, sig.args[1], args[1], args[2])
        cols = builder.load(builder.bitcast(ptr, ity.as_pointer()), align=4)

        def i32(value):  # a 32-bit splat of an integer argument
            return _splat(builder, builder.trunc(value, ir.IntType(32)), ity)

        keep = _keeps(builder, cols, i32(args[3]), i32(args[4]), i32(args[5]))
        scale = context.cast(builder, args[6], sig.args[6], like.dtype)
        return builder.select(keep, _splat(builder, scale, vty), ir.Constant(vty, None))

    return like(like, columns, index, key_lo, key_hi, threshold, keep_scale), codegen


@intrinsic
def _keep32(typingctx, column, key_lo, key_hi, threshold):
    def codegen(context, builder, sig, args):
        return _keeps(builder, *(context.cast(builder, a, t, types.uint32) for a, t in zip(args, sig.args)))

    return types.boolean(column, key_lo, key_hi, threshold), codegen


def _python_vocabulary():
    """The words as NumPy on arrays of one vector (or on one scalar), for NUMBA_DISABLE_JIT=1 (stepping through)."""
    from .dropout_rng import hash32

    def splat(arr, value):
        return np.full(lanes_of(arr.dtype), value, dtype=arr.dtype)

    def vstore(arr, index, vec):
        arr[index:index + len(vec)] = vec

    def vexp(a):
        with np.errstate(under="ignore", invalid="ignore", over="ignore"):
            return np.exp(a)

    def keeps(columns, key_lo, key_hi, threshold):
        words = (np.asarray(w, dtype=np.int64).astype(np.uint32) for w in (columns, key_lo, key_hi, threshold))
        columns, key_lo, key_hi, threshold = words
        return hash32(columns, key_lo, key_hi) >= threshold

    def vdropout(like, columns, index, key_lo, key_hi, threshold, keep_scale):
        kept = keeps(columns[index:index + len(like)], key_lo, key_hi, threshold)
        return np.where(kept, like.dtype.type(keep_scale), like.dtype.type(0))

    return {"vload": lambda arr, index: arr[index:index + lanes_of(arr.dtype)].copy(), "vstore": vstore,
            "vsplat_load": lambda arr, index: splat(arr, arr[index]), "vsplat": splat,
            "vfma": lambda a, b, c: a * b + c, "vexp": vexp, "vadd": np.add, "vsub": np.subtract,
            "vmul": np.multiply, "vmax": lambda a, b: np.where(a > b, a, b), "vhsum": lambda a: sum(a[1:], a[0]),
            "vhmax": lambda a: a.max(), "vdropout": vdropout, "exp32": lambda x: np.float32(vexp(np.float32(x))),
            "keep32": lambda column, key_lo, key_hi, threshold: bool(keeps([column], key_lo, key_hi, threshold)[0])}


if numba.config.DISABLE_JIT:
    globals().update(_python_vocabulary())
else:
    vload, vstore, vsplat_load, vsplat, vfma, vexp = _vload, _vstore, _vsplat_load, _vsplat, _vfma, _vexp
    vadd = _binary(lambda b, x, y: b.fadd(x, y))
    vsub = _binary(lambda b, x, y: b.fsub(x, y))
    vmul = _binary(lambda b, x, y: b.fmul(x, y))
    vmax = _binary(lambda b, x, y: b.select(b.fcmp_ordered(">", x, y), x, y))
    vhsum = _reduce(lambda b, x, y: b.fadd(x, y))
    vhmax = _reduce(lambda b, x, y: b.select(b.fcmp_ordered(">", x, y), x, y))
    vdropout, exp32, keep32 = _vdropout, _exp32, _keep32

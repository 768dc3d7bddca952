"""Automatic mixed precision, as torch.autocast: `with autocast(np.float16):` runs the forward in half precision.

Inside the block the GEMM-like ops (linear, matmul, attention, varlen_attention) cast their floating inputs to the
half dtype, and LayerNorm (both ops), softmax, log_softmax and cross_entropy compute in float32 (half inputs are
upcast), so the parameters stay float32: they are the master weights. The casts are ops (`Cast`), whose backward
casts the gradient back to the input's dtype, so a float32 parameter gets a float32 .grad. Outside a block (the
default) each op pays one check. NumPy float16 GEMMs are slow: on the CPU this is for tests and for studying the
mechanism; on CuPy it is the fast path (tensor cores). The loss scaling that float16 gradients need is
optim/grad_scaler.py's GradScaler.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from minitransfer.autograd import Function, Tensor
from minitransfer.errors import ConfigError
from minitransfer.ops import costs

_half = None  # the dtype of the autocast block in force, or None outside one


@contextlib.contextmanager
def autocast(dtype=np.float16, enabled: bool = True) -> Iterator[None]:
    """Run the block with the GEMM-like ops in `dtype` (float16) and the normalizations and losses in float32."""
    global _half
    try:
        dtype = np.dtype(dtype)
    except TypeError:  # "bfloat16", which NumPy does not know
        dtype = None
    if dtype != np.float16:
        raise ConfigError(f"autocast({dtype}): NumPy and CuPy have no bfloat16; float16 is the half dtype they run")
    previous, _half = _half, (dtype if enabled else None)
    try:
        yield
    finally:
        _half = previous


class Cast(Function):
    """x as another float dtype; the gradient goes back in x's own dtype."""

    cost = costs.data_movement

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.source = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.source, copy=False)


def _cast(x, dtype):
    array = x.data if isinstance(x, Tensor) else x
    if getattr(array, "dtype", None) is None or array.dtype.kind != "f" or array.dtype == dtype:
        return x  # None, integers, a Python number, or already there
    return Cast(dtype)(x)


def to_half(*inputs) -> tuple:
    """Inside autocast: the floating inputs cast to the half dtype (what a GEMM-like op computes in); else as is."""
    if _half is None:
        return inputs
    return tuple(_cast(x, _half) for x in inputs)


def to_float32(*inputs) -> tuple:
    """Inside autocast: half inputs upcast to float32 (what a normalization or a loss computes in); else as is."""
    if _half is None:
        return inputs
    return tuple(_cast(x, np.float32) if getattr(x, "dtype", None) == _half else x for x in inputs)

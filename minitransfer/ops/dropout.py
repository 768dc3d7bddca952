"""Inverted dropout: zero each element with probability p and scale the rest by 1 / (1 - p).

The mask is kernels/dropout_rng.py's counter-based hash of (seed, row, column), over x viewed as (rows, last
dim): one 64-bit seed per call is all that is stored, and backward regenerates the mask. A fused pair
(ops/dispatch.py): the reference in NumPy/CuPy (dropout_rng.dropout_apply) and one pass over NumPy float32/float64
arrays (kernels/dropout_cpu.py), which drop the same elements for the same seed.
"""
from __future__ import annotations

import numpy as np

from minitransfer import seeding
from minitransfer.autograd import Function, Tensor
from minitransfer.kernels import dropout_rng
from minitransfer.ops import costs
from minitransfer.ops.dispatch import LazyModule, numpy_float, pick

dropout_cpu = LazyModule("minitransfer.kernels.dropout_cpu")


def dropout_seed() -> int:
    """One 64-bit seed from minitransfer's generator (`manual_seed` reproduces it): all a dropout mask needs."""
    return int(seeding.numpy_rng().integers(0, 2**64, dtype=np.uint64))


class ReferenceDropout(Function):
    cost = costs.per_element(1, 1)

    kernels = dropout_rng

    def __init__(self, p: float):
        self.p = p

    def forward(self, x):
        self.seed = dropout_seed()
        return self.kernels.dropout_apply(x, self.seed, self.p)

    def backward(self, gy):
        return self.kernels.dropout_apply(gy, self.seed, self.p)


class FusedDropout(ReferenceDropout):
    kernels = dropout_cpu

    @classmethod
    def supports(cls, x) -> bool:
        return numpy_float(x)


def dropout(x, p: float, training: bool) -> Tensor:
    """x with each element zeroed with probability p and the rest scaled by 1 / (1 - p); x itself when not training
    or p == 0."""
    if not training or p == 0.0:
        return x
    return pick(ReferenceDropout, [FusedDropout], x)(p)(x)

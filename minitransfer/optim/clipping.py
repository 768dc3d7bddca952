"""Gradient clipping by global L2 norm, as torch.nn.utils.clip_grad_norm_.

The norm is picked like every fused op (ops/dispatch.py): ReferenceGradNorm on any arrays, or CudaGradNorm
(kernels/grad_norm_cuda.py: one launch per gradient into shared partial sums, one final sum) on CuPy ones.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from minitransfer import backend
from minitransfer.autograd import Tensor
from minitransfer.ops.dispatch import LazyModule, cupy_float, pick


class ReferenceGradNorm:
    """The L2 norm of all gradients together as array operations on NumPy or CuPy arrays."""

    @classmethod
    def norm(cls, grads) -> float:
        # Squares summed per tensor in its own precision (BLAS dot), then across tensors in float64: one sync on GPU.
        squares = [backend.get_array_module(g).dot(g.ravel(), g.ravel()).astype(np.float64) for g in grads]
        return float(sum(squares[1:], squares[0])) ** 0.5


class CudaGradNorm(ReferenceGradNorm):
    """The same by kernel, over CuPy float32/float16 gradients (squares summed in fp32 per warp, then fp64)."""

    kernels = LazyModule("minitransfer.kernels.grad_norm_cuda")

    @classmethod
    def supports(cls, *grads) -> bool:
        return cupy_float(*grads)

    @classmethod
    def norm(cls, grads) -> float:
        return float(cls.kernels.grad_norm([g.reshape(-1) for g in grads])[0][0])


def clip_grad_norm_(parameters: Iterable[Tensor] | Tensor, max_norm: float) -> float:
    """Scale every gradient in place by min(1, max_norm / (norm + 1e-6)), where norm is the L2 norm of all
    gradients together; parameters without a gradient are ignored. Returns the norm before clipping.

    A non-finite norm (inf/nan gradients) is returned as is and the gradients are scaled by it as torch does
    (they become 0 or nan): check the returned norm to skip such a step.
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad.data for p in params if p.grad is not None]
    if not grads:
        return 0.0
    total_norm = pick(ReferenceGradNorm, [CudaGradNorm], *grads).norm(grads)
    coef = max_norm / (total_norm + 1e-6)
    if not coef < 1.0 and not np.isnan(coef):
        return total_norm
    for g in grads:
        g *= g.dtype.type(coef)
    return total_norm

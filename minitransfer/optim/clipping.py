"""Gradient clipping by global L2 norm, as torch.nn.utils.clip_grad_norm_."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from minitransfer import backend
from minitransfer.autograd import Tensor


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
    # Squares summed per tensor in its own precision (BLAS dot), then across tensors in float64: one sync on GPU.
    squares = [backend.get_array_module(g).dot(g.ravel(), g.ravel()).astype(np.float64) for g in grads]
    total_norm = float(sum(squares[1:], squares[0])) ** 0.5
    coef = max_norm / (total_norm + 1e-6)
    if not coef < 1.0 and not np.isnan(coef):
        return total_norm
    for g in grads:
        g *= g.dtype.type(coef)
    return total_norm

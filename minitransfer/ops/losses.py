"""Losses: mean cross-entropy of integer targets, skipping an ignore_index (masked-LM and padding labels).

CrossEntropy, the NumPy/CuPy composition, is the reference; CuPy float32/float16 logits go to CudaCrossEntropy
(kernels/cross_entropy_cuda.py), picked as every fused op is (ops/dispatch.py).
"""
from __future__ import annotations

from minitransfer.autograd import Function, Tensor
from minitransfer.backend import get_array_module
from minitransfer.ops import costs
from minitransfer.ops.autocast import to_float32
from minitransfer.ops.dispatch import LazyModule, cupy_float, pick

cross_entropy_cuda = LazyModule("minitransfer.kernels.cross_entropy_cuda")


class CrossEntropy(Function):
    """Mean negative log-likelihood of integer targets under softmax(logits), skipping ignore_index.

    logits: (N, C), targets: (N,) integers. Returns a scalar; 0 when every target is ignored.
    """

    cost = costs.cross_entropy

    def __init__(self, targets, ignore_index: int = -100):
        self.targets, self.ignore_index = targets, ignore_index

    def forward(self, logits):
        xp = get_array_module(logits)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))
        valid = self.targets != self.ignore_index
        safe_targets = xp.where(valid, self.targets, 0)
        picked = xp.take_along_axis(log_probs, safe_targets[:, None], axis=-1)[:, 0]
        self.count = max(int(valid.sum()), 1)
        self.log_probs, self.valid, self.safe_targets = log_probs, valid, safe_targets
        return xp.asarray(-(picked * valid).sum() / self.count, dtype=logits.dtype)

    def backward(self, gy):
        xp = get_array_module(gy)
        grad = xp.exp(self.log_probs)
        rows = xp.arange(grad.shape[0])
        grad[rows, self.safe_targets] -= 1
        grad *= (self.valid[:, None] * (gy / self.count)).astype(grad.dtype)
        return grad


class CudaCrossEntropy(CrossEntropy):
    """The same in two launches forward (row losses by a warp per row, then their mean) and one back, over CuPy
    float32/float16 logits. The loss is float32, and it and the valid count stay on the device (no host sync); a
    target outside [0, C) other than ignore_index gives a nan loss instead of an IndexError."""

    @classmethod
    def supports(cls, logits) -> bool:
        return cupy_float(logits)

    def forward(self, logits):
        self.logits, self.targets = logits, get_array_module(logits).asarray(self.targets)
        loss, self.lse, self.count = cross_entropy_cuda.cross_entropy_forward(logits, self.targets, self.ignore_index)
        return loss

    def backward(self, gy):
        return cross_entropy_cuda.cross_entropy_backward(self.logits, self.targets, self.lse, self.count, gy,
                                                         self.ignore_index)


def cross_entropy(logits, targets, ignore_index: int = -100) -> Tensor:
    """Mean cross-entropy; logits (N, C), integer targets (N,); targets equal to ignore_index are skipped."""
    (logits,) = to_float32(logits)
    implementation = pick(CrossEntropy, [CudaCrossEntropy], logits)
    return implementation(targets.data if isinstance(targets, Tensor) else targets, ignore_index)(logits)

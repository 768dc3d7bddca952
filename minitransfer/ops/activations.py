"""Activations: relu, gelu (BERT's exact erf form), gelu of a Linear's output plus its bias, softmax, log_softmax.

GELU and bias+GELU are fused ops (ops/dispatch.py): the reference, kernels/gelu_reference.py (exact erf, any
float dtype, NumPy or CuPy), the float32 NumPy kernels of kernels/gelu_cpu.py (erf and exp to float32 rounding)
and the CUDA kernels of kernels/gelu_cuda.py (CuPy float32/float16, fp32 arithmetic).
"""
from __future__ import annotations

import numpy as np

from minitransfer.autograd import Function, Tensor
from minitransfer.backend import get_array_module
from minitransfer.kernels import gelu_reference
from minitransfer.ops import costs
from minitransfer.ops.autocast import to_float32
from minitransfer.ops.dispatch import LazyModule, cupy_float, numpy_float, pick

gelu_cpu = LazyModule("minitransfer.kernels.gelu_cpu")
gelu_cuda = LazyModule("minitransfer.kernels.gelu_cuda")


class ReLU(Function):
    cost = costs.per_element(1, 1)

    def forward(self, x):
        self.positive = x > 0
        return x * self.positive

    def backward(self, gy):
        return gy * self.positive


def relu(x) -> Tensor:
    return ReLU()(x)


class ReferenceGELU(Function):
    """gelu(x) = x * Phi(x), the exact erf form, elementwise; x: any shape."""

    cost = costs.gelu

    kernels = gelu_reference

    def forward(self, x):
        self.x = x
        return self.kernels.gelu_forward(x)

    def backward(self, gy):
        return self.kernels.gelu_backward(self.x, gy)


class FusedGELU(ReferenceGELU):
    """The same over float32 NumPy arrays, one vectorized pass each way."""

    kernels = gelu_cpu

    @classmethod
    def supports(cls, x) -> bool:
        return numpy_float(x, dtypes=(np.float32,))


class CudaGELU(ReferenceGELU):
    """The same over CuPy float32/float16 arrays, one kernel each way."""

    kernels = gelu_cuda

    @classmethod
    def supports(cls, x) -> bool:
        return cupy_float(x)


def gelu(x) -> Tensor:
    return pick(ReferenceGELU, [FusedGELU, CudaGELU], x)()(x)


class ReferenceBiasGELU(Function):
    """gelu(y + bias) for a Linear's output y (..., n) computed without its bias (n,)."""

    cost = costs.bias_gelu

    kernels = gelu_reference

    def forward(self, y, bias):
        self.y, self.bias = y, bias
        return self.kernels.bias_gelu_forward(y, bias)

    def backward(self, gout):
        gy, gbias = self.kernels.bias_gelu_backward(self.y, self.bias, gout)
        return gy, (gbias if self.needs_input_grad[1] else None)


class FusedBiasGELU(ReferenceBiasGELU):
    """The same over float32 NumPy arrays: no pass of its own for the bias, whose gradient is summed in the same
    loop as y's."""

    kernels = gelu_cpu

    @classmethod
    def supports(cls, y, bias) -> bool:
        return numpy_float(y, bias, dtypes=(np.float32,))


class CudaBiasGELU(ReferenceBiasGELU):
    """The same over CuPy float32/float16 arrays: one kernel forward, and backward one writing g_y and partial
    bias-gradient rows, then their sum."""

    kernels = gelu_cuda

    @classmethod
    def supports(cls, y, bias) -> bool:
        return cupy_float(y, bias)


def bias_gelu(y, bias) -> Tensor:
    """gelu(y + bias) for a Linear's output y (..., n) computed without its bias (n,); one fused kernel on the CPU."""
    return pick(ReferenceBiasGELU, [FusedBiasGELU, CudaBiasGELU], y, bias)()(y, bias)


class Softmax(Function):
    cost = costs.softmax

    def __init__(self, axis: int = -1):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        y = x - x.max(axis=self.axis, keepdims=True)
        xp.exp(y, out=y)
        y /= y.sum(axis=self.axis, keepdims=True)
        self.y = y
        return y

    def backward(self, gy):
        y = self.y
        return y * (gy - (gy * y).sum(axis=self.axis, keepdims=True))


def softmax(x, axis: int = -1) -> Tensor:
    (x,) = to_float32(x)
    return Softmax(axis)(x)


class LogSoftmax(Function):
    cost = costs.softmax

    def __init__(self, axis: int = -1):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))
        return self.y

    def backward(self, gy):
        xp = get_array_module(gy)
        return gy - xp.exp(self.y) * gy.sum(axis=self.axis, keepdims=True)


def log_softmax(x, axis: int = -1) -> Tensor:
    (x,) = to_float32(x)
    return LogSoftmax(axis)(x)

"""LayerNorm over the last axis, and the end of a BERT sub-block, layer_norm(dropout(y + bias) + residual).

Both are fused ops (ops/dispatch.py): the references in NumPy/CuPy (kernels/layer_norm_reference.py,
kernels/residual_layer_norm_reference.py), one numba kernel each way on NumPy float32/float64 arrays
(kernels/layer_norm_cpu.py, kernels/residual_layer_norm_cpu.py) and numba-cuda kernels on CuPy float32/float16
arrays (kernels/layer_norm_cuda.py, kernels/residual_layer_norm_cuda.py), with the same interfaces.
"""
from __future__ import annotations

from minitransfer.autograd import Function, Tensor
from minitransfer.kernels import layer_norm_reference, residual_layer_norm_reference
from minitransfer.ops import costs
from minitransfer.ops.autocast import to_float32
from minitransfer.ops.dispatch import LazyModule, cupy_float, numpy_float, pick
from minitransfer.ops.dropout import dropout_seed

layer_norm_cpu = LazyModule("minitransfer.kernels.layer_norm_cpu")
residual_layer_norm_cpu = LazyModule("minitransfer.kernels.residual_layer_norm_cpu")
layer_norm_cuda = LazyModule("minitransfer.kernels.layer_norm_cuda")
residual_layer_norm_cuda = LazyModule("minitransfer.kernels.residual_layer_norm_cuda")


class ReferenceLayerNorm(Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last axis. x: (..., hidden); weight, bias:
    (hidden,). Saves the per-row mean and rstd; backward recomputes the normalized x from x."""

    cost = costs.layer_norm

    kernels = layer_norm_reference

    def __init__(self, eps: float):
        self.eps = eps

    def forward(self, x, weight, bias):
        self.x, self.weight = x, weight
        y, self.mean, self.rstd = self.kernels.layer_norm_forward(x, weight, bias, self.eps)
        return y

    def backward(self, gy):
        grads = self.kernels.layer_norm_backward(self.x, gy, self.weight, self.mean, self.rstd)
        return tuple(g if need else None for g, need in zip(grads, self.needs_input_grad))


class FusedLayerNorm(ReferenceLayerNorm):
    """The same in one pass each way over NumPy float32/float64 x."""

    kernels = layer_norm_cpu

    @classmethod
    def supports(cls, x, weight, bias) -> bool:
        return numpy_float(x)


class CudaLayerNorm(ReferenceLayerNorm):
    """The same over CuPy float32/float16 arrays: a warp per row, fp32 statistics (saved in float32)."""

    kernels = layer_norm_cuda

    @classmethod
    def supports(cls, x, weight, bias) -> bool:
        return cupy_float(x, weight, bias)


def layer_norm(x, weight, bias, eps: float = 1e-12) -> Tensor:
    """LayerNorm over the last axis; x: (..., hidden), weight/bias: (hidden,)."""
    x, weight, bias = to_float32(x, weight, bias)
    return pick(ReferenceLayerNorm, [FusedLayerNorm, CudaLayerNorm], x, weight, bias)(eps)(x, weight, bias)


class ReferenceBiasDropoutResidualLayerNorm(Function):
    """layer_norm(dropout(y + bias, p) + residual, weight, ln_bias, eps): the end of a BERT sub-block.

    y, residual: (..., hidden); bias, weight, ln_bias: (hidden,). Dropout (p > 0) draws one seed per call, so
    `manual_seed` reproduces it; its mask is regenerated from the seed in backward, never stored.
    """

    cost = costs.residual_layer_norm

    kernels = residual_layer_norm_reference

    def __init__(self, eps: float, p: float):
        self.eps, self.p = eps, p

    def forward(self, y, bias, residual, weight, ln_bias):
        self.seed = dropout_seed() if self.p > 0 else 0
        out, self.s, self.mean, self.rstd = self.kernels.forward(y, bias, residual, weight, ln_bias, self.eps, self.p,
                                                                 self.seed)
        self.weight = weight
        return out

    def backward(self, gout):
        grads = self.kernels.backward(gout, self.s, self.weight, self.mean, self.rstd, self.p, self.seed)
        return tuple(g if need else None for g, need in zip(grads, self.needs_input_grad))


class FusedBiasDropoutResidualLayerNorm(ReferenceBiasDropoutResidualLayerNorm):
    """The same in one pass each way over NumPy arrays of one float dtype (float32 or float64)."""

    kernels = residual_layer_norm_cpu

    @classmethod
    def supports(cls, *arrays) -> bool:
        return numpy_float(*arrays)


class CudaBiasDropoutResidualLayerNorm(ReferenceBiasDropoutResidualLayerNorm):
    """The same over CuPy arrays of one dtype (float32 or float16): a warp per row forward, and backward a row
    kernel and a column kernel that sums the three parameter gradients."""

    kernels = residual_layer_norm_cuda

    @classmethod
    def supports(cls, *arrays) -> bool:
        return cupy_float(*arrays)


def bias_dropout_residual_layer_norm(y, bias, residual, weight, ln_bias, eps: float, p: float,
                                     training: bool) -> Tensor:
    """layer_norm(dropout(y + bias) + residual): a BERT sub-block's end, after a Linear computed without its bias.

    y, residual: (..., hidden); bias, weight, ln_bias: (hidden,). Dropout only in training.
    """
    inputs = to_float32(y, bias, residual, weight, ln_bias)
    implementation = pick(ReferenceBiasDropoutResidualLayerNorm,
                          [FusedBiasDropoutResidualLayerNorm, CudaBiasDropoutResidualLayerNorm], *inputs)
    return implementation(eps, p if training else 0.0)(*inputs)

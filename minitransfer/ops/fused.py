"""Fused ops for what follows a Linear in a transformer block, each a Function over one CPU kernel:

    BiasGELU                       gelu(y + bias)                                   (kernels/gelu_cpu.py)
    BiasDropoutResidualLayerNorm   layer_norm(dropout(y + bias) + residual)         (kernels/residual_layer_norm_cpu.py)

y is a Linear's output without its bias (ops.linear(x, weight)), so the bias add costs no pass of its own
and its gradient is summed inside the backward kernel. `supports` says when a kernel takes the arrays
(NumPy; float32 for GELU, float32/float64 for the LayerNorm); ops/__init__.py falls back to the plain
composition of ops otherwise (CuPy, float64 GELU), which is also the reference the tests compare with.
"""
from __future__ import annotations

from minitransfer import random
from minitransfer.autograd import Function
from minitransfer.kernels import gelu_cpu, residual_layer_norm_cpu


class BiasGELU(Function):
    """gelu(y + bias). y: (..., n) float32 NumPy, bias: (n,)."""

    @staticmethod
    def supports(y, bias) -> bool:
        return gelu_cpu.supports(y) and gelu_cpu.supports(bias)

    def forward(self, y, bias):
        self.y, self.bias = y, bias
        return gelu_cpu.bias_gelu_forward(y, bias)

    def backward(self, gout):
        gy, gbias = gelu_cpu.bias_gelu_backward(self.y, self.bias, gout)
        return gy, (gbias if self.needs_input_grad[1] else None)


class BiasDropoutResidualLayerNorm(Function):
    """layer_norm(dropout(y + bias, p) + residual, weight, ln_bias, eps): the end of a BERT sub-block.

    y, residual: (..., hidden); bias, weight, ln_bias: (hidden,). Dropout (p > 0) draws one seed from
    minitransfer's generator per call, so `manual_seed` reproduces it; nothing else about it is stored.
    """

    def __init__(self, eps: float, p: float):
        self.eps, self.p = eps, p

    @staticmethod
    def supports(*arrays) -> bool:
        return residual_layer_norm_cpu.supports(*arrays)

    def forward(self, y, bias, residual, weight, ln_bias):
        self.seed = int(random.numpy_rng().integers(0, 2**63 - 1)) if self.p > 0 else 0
        out, self.s, self.mean, self.rstd = residual_layer_norm_cpu.forward(y, bias, residual, weight, ln_bias,
                                                                            self.eps, self.p, self.seed)
        self.weight = weight
        return out

    def backward(self, gout):
        grads = residual_layer_norm_cpu.backward(gout, self.s, self.weight, self.mean, self.rstd, self.p, self.seed)
        return tuple(g if need else None for g, need in zip(grads, self.needs_input_grad))


"""The four layers a transformer encoder is made of: Linear, Embedding, LayerNorm, Dropout, and the two fused
steps that follow a Linear in every block: activation(dense(x)) and the Add & Norm, LN(x + dropout(sublayer))."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minitransfer import ops, seeding
from minitransfer.autograd import Tensor
from minitransfer.nn.module import Module, Parameter


def normal_init(shape, std: float) -> np.ndarray:
    """N(0, std^2) float32 weights, as transformers initializes BERT (initializer_range)."""
    return (seeding.numpy_rng().standard_normal(shape) * std).astype(np.float32)


class Linear(Module):
    """y = x W^T + b; weight (out_features, in_features) as torch stores it. x: (..., in) -> (..., out)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init_std: float = 0.02):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(normal_init((out_features, in_features), init_std))
        self.bias = Parameter(np.zeros(out_features, np.float32)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return ops.linear(x, self.weight, self.bias)

    def bias_later(self, x: Tensor) -> BiasLater:
        """This layer's output with its bias not yet added: the op that follows adds it inside its own kernel."""
        return BiasLater(ops.linear(x, self.weight), self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A lookup table (num_embeddings, embedding_dim); ids of any shape -> (*ids.shape, dim)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, init_std: float = 0.02, padding_idx: int | None = None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        weight = normal_init((num_embeddings, embedding_dim), init_std)
        if padding_idx is not None:
            weight[padding_idx] = 0
        self.weight = Parameter(weight)

    def forward(self, ids) -> Tensor:
        return ops.embedding(ids, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class LayerNorm(Module):
    """Normalization over the last axis with a learned scale and shift. x: (..., dim)."""

    def __init__(self, dim: int, eps: float = 1e-12):
        super().__init__()
        self.eps = eps
        self.weight = Parameter(np.ones(dim, np.float32))
        self.bias = Parameter(np.zeros(dim, np.float32))

    def forward(self, x: Tensor) -> Tensor:
        return ops.layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class Dropout(Module):
    """Inverted dropout while training; the identity in eval mode."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return ops.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class BiasLater(NamedTuple):
    """A Linear's x W^T (..., out) and its bias b (out,), not yet added (Megatron-LM's skip_bias_add): the GELU or
    the Add & Norm that follows adds b in its own pass over the activations, saving one pass each way."""

    xw: Tensor
    bias: Tensor


def dense_activation(dense: Linear, x: Tensor, activation) -> Tensor:
    """activation(dense(x)); for GELU (ops.gelu) the bias is added inside the GELU kernel, not in a pass of its own."""
    if activation is ops.gelu and dense.bias is not None:
        return ops.bias_gelu(*dense.bias_later(x))
    return activation(dense(x))


def add_norm(norm: LayerNorm, x: Tensor, sublayer: BiasLater, dropout: Dropout | None = None) -> Tensor:
    """norm(x + dropout(sublayer)), the Transformer's "Add & Norm" that ends a post-LN sub-block, in one kernel
    (ops.bias_dropout_residual_layer_norm): the sublayer's bias, the dropout, the residual add and the LayerNorm.

    x: the sub-block's input (..., hidden); sublayer: its output, the last Linear's bias still to add.
    """
    p, training = (dropout.p, dropout.training) if dropout is not None else (0.0, False)
    return ops.bias_dropout_residual_layer_norm(sublayer.xw, sublayer.bias, x, norm.weight, norm.bias, norm.eps, p,
                                                training)

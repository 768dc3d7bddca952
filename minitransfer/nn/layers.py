"""The four layers a transformer encoder is made of: Linear, Embedding, LayerNorm, Dropout, and the two fused
steps that follow a Linear in every block (dense_activation, dense_dropout_residual_norm)."""
from __future__ import annotations

import numpy as np

from minitransfer import ops, random
from minitransfer.autograd import Tensor
from minitransfer.nn.module import Module, Parameter


def normal_init(shape, std: float) -> np.ndarray:
    """N(0, std^2) float32 weights, as transformers initializes BERT (initializer_range)."""
    return (random.numpy_rng().standard_normal(shape) * std).astype(np.float32)


class Linear(Module):
    """y = x W^T + b; weight (out_features, in_features) as torch stores it. x: (..., in) -> (..., out)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init_std: float = 0.02):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(normal_init((out_features, in_features), init_std))
        self.bias = Parameter(np.zeros(out_features, np.float32)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return ops.linear(x, self.weight, self.bias)

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


def dense_activation(dense: Linear, x: Tensor, activation) -> Tensor:
    """activation(dense(x)); for GELU (ops.gelu) the bias is added inside the GELU kernel, not in a pass of its own."""
    if activation is ops.gelu and dense.bias is not None:
        return ops.bias_gelu(ops.linear(x, dense.weight), dense.bias)
    return activation(dense(x))


def dense_dropout_residual_norm(dense: Linear, x: Tensor, residual: Tensor, norm: LayerNorm,
                                dropout: Dropout | None = None) -> Tensor:
    """norm(dropout(dense(x)) + residual) -- a post-LN block's end -- with dense's bias, the dropout and the
    residual add fused into the LayerNorm kernel. x: (..., in); residual: (..., out)."""
    p, training = (dropout.p, dropout.training) if dropout is not None else (0.0, False)
    if dense.bias is None:
        return norm(ops.dropout(dense(x), p, training) + residual)
    return ops.bias_dropout_residual_layer_norm(ops.linear(x, dense.weight), dense.bias, residual, norm.weight,
                                                norm.bias, norm.eps, p, training)


def apply_layers(layers, x: Tensor, mask, output_hidden_states: bool = False, output_attentions: bool = False):
    """Run transformer blocks in order: (last hidden state, extras) where extras holds, when asked,
    "hidden_states" (every block's input and output) and "attentions" (each block's probabilities).

    mask: the PackedTokens of a packed x (T, H), or the key padding mask of a padded x (B, S, H)."""
    states, attentions = [x], ([] if output_attentions else None)
    for block in layers:
        x = block(x, mask, attentions)
        states.append(x)
    extras = {}
    if output_hidden_states:
        extras["hidden_states"] = tuple(states)
    if output_attentions:
        extras["attentions"] = tuple(Tensor(a) for a in attentions)
    return x, extras

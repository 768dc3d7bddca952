"""Differentiable operations over Tensors, one family per module, each op a Function class and its function.

The layers above call them as `ops.matmul(a, b)`, `ops.softmax(x, axis=-1)`, ...; importing this package also
installs Tensor's operators (`a + b`, `a @ b`, `x.sum()`, `x.T`, ...: tensor_operators.py). Fused ops pick their
kernel in dispatch.py.
"""
from minitransfer.ops import tensor_operators
from minitransfer.ops.activations import bias_gelu, gelu, log_softmax, relu, softmax
from minitransfer.ops.arithmetic import add, div, exp, linear, log, matmul, mul, neg, pow, sqrt, sub, tanh
from minitransfer.ops.attention import attention, attention_probabilities
from minitransfer.ops.dropout import dropout
from minitransfer.ops.embedding import embedding
from minitransfer.ops.losses import cross_entropy
from minitransfer.ops.normalization import bias_dropout_residual_layer_norm, layer_norm
from minitransfer.ops.reduce import max, mean, sum
from minitransfer.ops.shape import concat, getitem, masked_fill, reshape, scatter_rows, take_rows, transpose, where
from minitransfer.ops.varlen_attention import varlen_attention, varlen_attention_probabilities

tensor_operators.install()

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "tanh", "matmul", "linear",
    "reshape", "transpose", "getitem", "take_rows", "scatter_rows", "concat", "where", "masked_fill",
    "sum", "mean", "max",
    "relu", "gelu", "bias_gelu", "bias_dropout_residual_layer_norm",
    "softmax", "log_softmax", "layer_norm", "dropout", "embedding", "cross_entropy",
    "attention", "varlen_attention", "attention_probabilities", "varlen_attention_probabilities",
]

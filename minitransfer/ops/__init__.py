"""Differentiable operations over Tensors: thin functions that build one Function each.

Families live in their own modules (arithmetic, shape, reduce, nn, attention, fused); this file is the
functional API the layers above use, e.g. `ops.matmul(a, b)`, `ops.softmax(x, axis=-1)`.
"""
from __future__ import annotations

from minitransfer.autograd import Tensor, as_tensor
from minitransfer.backend import get_array_module
from minitransfer.ops import arithmetic as _a
from minitransfer.ops import fused as _f
from minitransfer.ops import nn as _nn
from minitransfer.ops import reduce as _r
from minitransfer.ops import shape as _s
from minitransfer.ops.attention import attention, attention_probabilities
from minitransfer.ops.varlen_attention import varlen_attention, varlen_attention_probabilities


def _const(x, like: Tensor):
    """Python numbers become arrays of the other operand's dtype, so float32 stays float32."""
    if isinstance(x, Tensor):
        return x
    xp = get_array_module(like.data)
    return Tensor(xp.asarray(x, dtype=like.dtype))


def _pair(a, b):
    if not isinstance(a, Tensor):
        b = as_tensor(b)
        return _const(a, b), b
    return a, _const(b, a)


def add(a, b) -> Tensor:
    return _a.Add()(*_pair(a, b))


def sub(a, b) -> Tensor:
    return _a.Sub()(*_pair(a, b))


def mul(a, b) -> Tensor:
    return _a.Mul()(*_pair(a, b))


def div(a, b) -> Tensor:
    return _a.Div()(*_pair(a, b))


def neg(x) -> Tensor:
    return _a.Neg()(x)


def pow(x, exponent: float) -> Tensor:  # noqa: A001 (mirrors torch.pow)
    return _a.Pow(exponent)(x)


def exp(x) -> Tensor:
    return _a.Exp()(x)


def log(x) -> Tensor:
    return _a.Log()(x)


def sqrt(x) -> Tensor:
    return _a.Sqrt()(x)


def tanh(x) -> Tensor:
    return _a.Tanh()(x)


def matmul(a, b) -> Tensor:
    return _a.MatMul()(a, b)


def linear(x, weight, bias=None) -> Tensor:
    """x @ weight.T + bias; x: (..., in), weight: (out, in), bias: (out,) -> (..., out)."""
    return _a.Linear()(x, weight) if bias is None else _a.Linear()(x, weight, bias)


def reshape(x, shape) -> Tensor:
    return _s.Reshape(shape)(x)


def transpose(x, axes=None) -> Tensor:
    return _s.Transpose(axes)(x)


def getitem(x, index) -> Tensor:
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return _s.GetItem(index)(x)


def take_rows(x, rows) -> Tensor:
    """x[rows] along axis 0 for distinct integer rows: (n, ...) -> (len(rows), ...)."""
    return _s.TakeRows(rows.data if isinstance(rows, Tensor) else rows)(x)


def scatter_rows(x, rows, num_rows: int, fill: float = 0.0) -> Tensor:
    """The inverse of take_rows: (len(rows), ...) -> (num_rows, ...), x at `rows` (distinct), `fill` elsewhere."""
    return _s.ScatterRows(rows.data if isinstance(rows, Tensor) else rows, num_rows, fill)(x)


def concat(tensors, axis: int = 0) -> Tensor:
    return _s.Concat(axis)(*tensors)


def where(condition, a, b) -> Tensor:
    """Elementwise `a` where condition else `b`; condition is a boolean array or Tensor (not differentiated)."""
    cond = condition.data if isinstance(condition, Tensor) else condition
    a, b = _pair(a, b)
    return _s.Where(cond)(a, b)


def masked_fill(x, mask, value: float) -> Tensor:
    """x with `value` wherever the boolean mask (broadcastable to x) is True."""
    return where(mask, _const(value, as_tensor(x)), x)


def sum(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return _r.Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims: bool = False) -> Tensor:
    return _r.Mean(axis, keepdims)(x)


def max(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return _r.Max(axis, keepdims)(x)


def relu(x) -> Tensor:
    return _nn.ReLU()(x)


def gelu(x) -> Tensor:
    return _nn.GELU()(x)


def bias_gelu(y, bias) -> Tensor:
    """gelu(y + bias) for a Linear's output y (..., n) computed without its bias (n,); one fused kernel on the CPU."""
    y, bias = as_tensor(y), as_tensor(bias)
    if _f.BiasGELU.supports(y.data, bias.data):
        return _f.BiasGELU()(y, bias)
    return gelu(add(y, bias))


def bias_dropout_residual_layer_norm(y, bias, residual, weight, ln_bias, eps: float, p: float,
                                     training: bool) -> Tensor:
    """layer_norm(dropout(y + bias) + residual): a BERT sub-block's end, after a Linear computed without its bias.

    y, residual: (..., hidden); bias, weight, ln_bias: (hidden,). Dropout only in training. One fused kernel each
    way for NumPy float32/float64; the same composition of ops otherwise.
    """
    p = p if training else 0.0
    tensors = [as_tensor(t) for t in (y, bias, residual, weight, ln_bias)]
    if _f.BiasDropoutResidualLayerNorm.supports(*(t.data for t in tensors)):
        return _f.BiasDropoutResidualLayerNorm(eps, p)(*tensors)
    y, bias, residual, weight, ln_bias = tensors
    return layer_norm(add(dropout(add(y, bias), p, training), residual), weight, ln_bias, eps)


def softmax(x, axis: int = -1) -> Tensor:
    return _nn.Softmax(axis)(x)


def log_softmax(x, axis: int = -1) -> Tensor:
    return _nn.LogSoftmax(axis)(x)


def layer_norm(x, weight, bias, eps: float = 1e-12) -> Tensor:
    """LayerNorm over the last axis; x: (..., hidden), weight/bias: (hidden,)."""
    return _nn.LayerNorm(eps)(x, weight, bias)


def dropout(x, p: float, training: bool) -> Tensor:
    if not training or p == 0.0:
        return x
    return _nn.Dropout(p)(x)


def embedding(ids, weight, padding_idx: int | None = None) -> Tensor:
    """weight[ids]; ids: integer array (any shape), weight: (num, dim) -> (*ids.shape, dim).

    padding_idx: a row that receives no gradient (torch.nn.Embedding's padding_idx).
    """
    ids = ids.data if isinstance(ids, Tensor) else ids
    return _nn.Embedding(ids, padding_idx)(weight)


def cross_entropy(logits, targets, ignore_index: int = -100) -> Tensor:
    """Mean cross-entropy; logits (N, C), integer targets (N,); targets equal to ignore_index are skipped."""
    targets = targets.data if isinstance(targets, Tensor) else targets
    return _nn.CrossEntropy(targets, ignore_index)(logits)


__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "tanh", "matmul", "linear",
    "reshape", "transpose", "getitem", "take_rows", "scatter_rows", "concat", "where", "masked_fill",
    "sum", "mean", "max",
    "relu", "gelu", "bias_gelu", "bias_dropout_residual_layer_norm",
    "softmax", "log_softmax", "layer_norm", "dropout", "embedding", "cross_entropy",
    "attention", "varlen_attention", "attention_probabilities", "varlen_attention_probabilities",
]

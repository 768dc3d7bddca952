"""Tensor's operators and methods, installed from the ops below them (DeZero's setup_variable).

autograd.py defines Tensor without importing any op, so every import points down the stack; `import
minitransfer.ops` calls `install()`, after which `a + b`, `2.0 * a`, `a @ b`, `x[i]`, `x.sum(axis)`, `x.T`, ...
build the same Functions as the ops' functions.
"""
from __future__ import annotations

from minitransfer.autograd import Tensor
from minitransfer.ops import arithmetic, reduce, shape


def _shape(args):
    """x.reshape(2, 3) and x.reshape((2, 3)) alike."""
    return args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


def install() -> None:
    operators = {
        "__add__": arithmetic.add, "__radd__": lambda self, other: arithmetic.add(other, self),
        "__sub__": arithmetic.sub, "__rsub__": lambda self, other: arithmetic.sub(other, self),
        "__mul__": arithmetic.mul, "__rmul__": lambda self, other: arithmetic.mul(other, self),
        "__truediv__": arithmetic.div, "__rtruediv__": lambda self, other: arithmetic.div(other, self),
        "__neg__": arithmetic.neg, "__pow__": arithmetic.pow, "__matmul__": arithmetic.matmul,
        "__getitem__": shape.getitem,
        "reshape": lambda self, *new_shape: shape.reshape(self, _shape(new_shape)),
        "transpose": lambda self, *axes: shape.transpose(self, _shape(axes)),
        "permute": lambda self, *axes: shape.transpose(self, _shape(axes)),
        "sum": reduce.sum, "mean": reduce.mean, "max": reduce.max,
        "exp": arithmetic.exp, "log": arithmetic.log, "sqrt": arithmetic.sqrt, "tanh": arithmetic.tanh,
        "T": property(lambda self: shape.transpose(self, None)),
    }
    for name, method in operators.items():
        setattr(Tensor, name, method)

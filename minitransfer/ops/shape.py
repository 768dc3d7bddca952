"""Ops that move elements without changing them: reshape, transpose/permute, indexing, concat, where."""
from __future__ import annotations

from minitransfer.autograd import Function, Tensor, as_tensor
from minitransfer.backend import get_array_module
from minitransfer.ops import costs
from minitransfer.ops.arithmetic import constant_like, operands, sum_to


def _array(x):
    return x.data if isinstance(x, Tensor) else x


class Reshape(Function):
    cost = costs.data_movement

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


def reshape(x, shape) -> Tensor:
    return Reshape(shape)(x)


class Transpose(Function):
    """Permute axes; axes=None reverses them (like ndarray.T)."""

    cost = costs.data_movement

    def __init__(self, axes=None):
        self.axes = tuple(axes) if axes else None

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        if self.axes is None:
            return gy.transpose()
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a % len(self.axes)] = i
        return gy.transpose(inverse)


def transpose(x, axes=None) -> Tensor:
    return Transpose(axes)(x)


class GetItem(Function):
    """x[index] for slices, integers, None, Ellipsis and integer arrays (gather); backward scatters-adds."""

    cost = costs.data_movement

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.in_shape, self.in_dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.in_shape, dtype=gy.dtype)
        index = self.index if isinstance(self.index, tuple) else (self.index,)
        if any(_is_array(i) for i in index):
            xp.add.at(gx, self.index, gy)  # repeated integer indices must add up
        else:
            gx[self.index] = gy
        return gx


def getitem(x, index) -> Tensor:
    index = tuple(_array(i) for i in index) if isinstance(index, tuple) else _array(index)
    return GetItem(index)(x)


def _is_array(i) -> bool:
    return hasattr(i, "shape") and hasattr(i, "dtype") or isinstance(i, list)


class Concat(Function):
    cost = costs.data_movement

    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, *xs):
        xp = get_array_module(*xs)
        self.sizes = [x.shape[self.axis] for x in xs]
        return xp.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        xp = get_array_module(gy)
        bounds = list(_cumsum(self.sizes))[:-1]
        return tuple(xp.split(gy, bounds, axis=self.axis))


def _cumsum(sizes):
    total = 0
    for s in sizes:
        total += s
        yield total


def concat(tensors, axis: int = 0) -> Tensor:
    return Concat(axis)(*tensors)


class Where(Function):
    """where(condition, a, b); the condition is a constant boolean array, not differentiated."""

    cost = costs.data_movement

    def __init__(self, condition):
        self.condition = condition

    def forward(self, a, b):
        xp = get_array_module(a, b)
        self.shapes = a.shape, b.shape
        return xp.where(self.condition, a, b)

    def backward(self, gy):
        xp = get_array_module(gy)
        zero = xp.zeros((), dtype=gy.dtype)
        ga = sum_to(xp.where(self.condition, gy, zero), self.shapes[0]) if self.needs_input_grad[0] else None
        gb = sum_to(xp.where(self.condition, zero, gy), self.shapes[1]) if self.needs_input_grad[1] else None
        return ga, gb


def where(condition, a, b) -> Tensor:
    """Elementwise `a` where condition else `b`; condition is a boolean array or Tensor (not differentiated)."""
    return Where(_array(condition))(*operands(a, b))


def masked_fill(x, mask, value: float) -> Tensor:
    """x with `value` wherever the boolean mask (broadcastable to x) is True."""
    return where(mask, constant_like(value, as_tensor(x)), x)


class TakeRows(Function):
    """x[rows] for distinct row indices (a gather along axis 0); backward writes each row's gradient back.

    Unlike GetItem's general integer indexing it needs no scatter-add: rows never repeat (packing, [CLS] rows).
    """

    cost = costs.data_movement

    def __init__(self, rows):
        self.rows = rows

    def forward(self, x):
        self.in_shape = x.shape
        return x[self.rows]

    def backward(self, gy):
        gx = get_array_module(gy).zeros(self.in_shape, dtype=gy.dtype)
        gx[self.rows] = gy
        return gx


def take_rows(x, rows) -> Tensor:
    """x[rows] along axis 0 for distinct integer rows: (n, ...) -> (len(rows), ...)."""
    return TakeRows(_array(rows))(x)


class ScatterRows(Function):
    """out (num_rows, ...) = fill everywhere but out[rows] = x, for distinct rows; backward gathers gy[rows]."""

    cost = costs.data_movement

    def __init__(self, rows, num_rows: int, fill: float = 0.0):
        self.rows, self.num_rows, self.fill = rows, num_rows, fill

    def forward(self, x):
        out = get_array_module(x).full((self.num_rows, *x.shape[1:]), self.fill, dtype=x.dtype)
        out[self.rows] = x
        return out

    def backward(self, gy):
        return gy[self.rows]


def scatter_rows(x, rows, num_rows: int, fill: float = 0.0) -> Tensor:
    """The inverse of take_rows: (len(rows), ...) -> (num_rows, ...), x at `rows` (distinct), `fill` elsewhere."""
    return ScatterRows(_array(rows), num_rows, fill)(x)

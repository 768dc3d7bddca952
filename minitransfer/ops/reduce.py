"""Reductions over axes: sum, mean, max (the gradient of max goes to the first maximal element)."""
from __future__ import annotations

from minitransfer.autograd import Function, Tensor
from minitransfer.backend import get_array_module
from minitransfer.ops import costs


def _normalize_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    return tuple(a % ndim for a in axes)


def _expand(gy, axes, keepdims):
    """Re-insert the reduced axes so gy broadcasts against the input."""
    if keepdims:
        return gy
    for a in sorted(axes):
        gy = get_array_module(gy).expand_dims(gy, a)
    return gy


class Sum(Function):
    cost = costs.per_element(1, 0, reduction=True)

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        self.axes = _normalize_axes(self.axis, x.ndim)
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        xp = get_array_module(gy)
        return xp.broadcast_to(_expand(gy, self.axes, self.keepdims), self.in_shape).copy()


def sum(x, axis=None, keepdims: bool = False) -> Tensor:
    return Sum(axis, keepdims)(x)


class Mean(Sum):
    cost = costs.mean

    def forward(self, x):
        y = super().forward(x)
        self.count = 1
        for a in self.axes:
            self.count *= x.shape[a]
        return y / self.count

    def backward(self, gy):
        return super().backward(gy / self.count)


def mean(x, axis=None, keepdims: bool = False) -> Tensor:
    return Mean(axis, keepdims)(x)


class Max(Function):
    cost = costs.per_element(1, 2, reduction=True)

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.x = x
        self.axes = _normalize_axes(self.axis, x.ndim)
        self.y = x.max(axis=self.axes, keepdims=True)
        return self.y if self.keepdims else self.y.reshape([n for i, n in enumerate(x.shape) if i not in self.axes])

    def backward(self, gy):
        xp = get_array_module(gy)
        hits = self.x == self.y
        # Only the first maximal element along the reduced axes gets the gradient (as torch.max(dim) does).
        flat = xp.moveaxis(hits, self.axes, tuple(range(-len(self.axes), 0)))
        lead = flat.shape[: flat.ndim - len(self.axes)]
        flat = flat.reshape(*lead, -1)
        first = xp.zeros_like(flat)
        xp.put_along_axis(first, flat.argmax(-1)[..., None], True, axis=-1)
        first = xp.moveaxis(first.reshape(hits.shape if not lead else (*lead, *[self.x.shape[a] for a in self.axes])),
                            tuple(range(-len(self.axes), 0)), self.axes)
        # moveaxis left `first` strided: a C-ordered mask keeps the gradient C-ordered (optimizers' fast path)
        return xp.ascontiguousarray(first) * _expand(gy, self.axes, self.keepdims)


def max(x, axis=None, keepdims: bool = False) -> Tensor:
    return Max(axis, keepdims)(x)

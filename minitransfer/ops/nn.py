"""Neural-network ops: activations, softmax, layer norm, dropout, embedding lookup, cross-entropy."""
from __future__ import annotations

from minitransfer import random
from minitransfer.autograd import Function
from minitransfer.backend import get_array_module
from minitransfer.kernels import dropout_cpu, gelu_cpu, layer_norm_cpu
from minitransfer.kernels import gelu as gelu_kernels


class ReLU(Function):
    def forward(self, x):
        self.positive = x > 0
        return x * self.positive

    def backward(self, gy):
        return gy * self.positive


class GELU(Function):
    """BERT's exact GELU, x * Phi(x) with the erf form (kernels/gelu_cpu.py for float32 NumPy arrays, which
    is vectorized; kernels/gelu.py otherwise)."""

    def forward(self, x):
        self.x = x
        self.kernels = gelu_cpu if gelu_cpu.supports(x) else gelu_kernels
        return self.kernels.gelu_forward(x)

    def backward(self, gy):
        return self.kernels.gelu_backward(self.x, gy)


class Softmax(Function):
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


class LogSoftmax(Function):
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


class LayerNorm(Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last axis. x: (..., hidden)."""

    def __init__(self, eps: float):
        self.eps = eps

    def forward(self, x, weight, bias):
        if layer_norm_cpu.supports(x):  # fused numba kernel: one pass each way, keeps only mean and rstd
            self.x, self.weight = x, weight
            y, self.mean, self.rstd = layer_norm_cpu.layer_norm_forward(x, weight, bias, self.eps)
            return y
        xp = get_array_module(x)
        mean = x.mean(axis=-1, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(axis=-1, keepdims=True)
        self.rstd = 1.0 / xp.sqrt(var + self.eps)
        self.xhat = centered * self.rstd
        self.weight = weight
        return self.xhat * weight + bias

    def backward(self, gy):
        if hasattr(self, "mean"):
            gx, gw, gb = layer_norm_cpu.layer_norm_backward(self.x, gy, self.weight, self.mean, self.rstd)
            return tuple(g if need else None for g, need in zip((gx, gw, gb), self.needs_input_grad))
        xhat, rstd = self.xhat, self.rstd
        gw = gb = gx = None
        if self.needs_input_grad[1]:
            gw = (gy * xhat).reshape(-1, xhat.shape[-1]).sum(axis=0)
        if self.needs_input_grad[2]:
            gb = gy.reshape(-1, gy.shape[-1]).sum(axis=0)
        if self.needs_input_grad[0]:
            g = gy * self.weight
            gx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
        return gx, gw, gb


class Dropout(Function):
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout)."""

    def __init__(self, p: float):
        self.p = p

    def forward(self, x):
        xp = get_array_module(x)
        if dropout_cpu.supports(x):  # counter-based mask: one pass, nothing stored but the seed
            self.seed = int(random.rng(xp).integers(0, 2**63 - 1))
            return dropout_cpu.dropout_apply(x, self.seed, self.p)
        keep = random.rng(xp).random(x.shape, dtype=x.dtype if x.dtype.kind == "f" else None) >= self.p
        self.mask = keep * x.dtype.type(1.0 / (1.0 - self.p))
        return x * self.mask

    def backward(self, gy):
        if hasattr(self, "seed"):
            return dropout_cpu.dropout_apply(gy, self.seed, self.p)
        return gy * self.mask


class Embedding(Function):
    """Rows of a (num_embeddings, dim) weight gathered by integer ids of any shape -> (*ids.shape, dim).

    The row `padding_idx` (if given) gets no gradient, as in torch.nn.Embedding: the pad vector stays fixed.
    """

    def __init__(self, ids, padding_idx: int | None = None):
        self.ids, self.padding_idx = ids, padding_idx

    def forward(self, weight):
        self.num_rows = weight.shape[0]
        return weight[self.ids]

    def backward(self, gy):
        xp = get_array_module(gy)
        gw = xp.zeros((self.num_rows, gy.shape[-1]), dtype=gy.dtype)
        flat_ids = self.ids.reshape(-1)
        flat_gy = gy.reshape(-1, gy.shape[-1])
        if xp.__name__ == "numpy":
            # Sort-and-reduce beats np.add.at by an order of magnitude for (tokens, hidden) gradients.
            order = flat_ids.argsort(kind="stable")
            sorted_ids = flat_ids[order]
            starts = xp.flatnonzero(xp.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
            gw[sorted_ids[starts]] = xp.add.reduceat(flat_gy[order], starts, axis=0)
        else:
            xp.add.at(gw, flat_ids, flat_gy)
        if self.padding_idx is not None:
            gw[self.padding_idx] = 0
        return gw


class CrossEntropy(Function):
    """Mean negative log-likelihood of integer targets under softmax(logits), skipping ignore_index.

    logits: (N, C), targets: (N,) integers. Returns a scalar; 0 when every target is ignored.
    """

    def __init__(self, targets, ignore_index: int = -100):
        self.targets, self.ignore_index = targets, ignore_index

    def forward(self, logits):
        xp = get_array_module(logits)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))
        valid = self.targets != self.ignore_index
        safe_targets = xp.where(valid, self.targets, 0)
        picked = xp.take_along_axis(log_probs, safe_targets[:, None], axis=-1)[:, 0]
        self.count = max(int(valid.sum()), 1)
        self.log_probs, self.valid, self.safe_targets = log_probs, valid, safe_targets
        return xp.asarray(-(picked * valid).sum() / self.count, dtype=logits.dtype)

    def backward(self, gy):
        xp = get_array_module(gy)
        grad = xp.exp(self.log_probs)
        rows = xp.arange(grad.shape[0])
        grad[rows, self.safe_targets] -= 1
        grad *= (self.valid[:, None] * (gy / self.count)).astype(grad.dtype)
        return grad

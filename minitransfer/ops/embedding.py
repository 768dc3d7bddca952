"""Embedding lookup: rows of a weight gathered by integer ids, with torch.nn.Embedding's padding_idx."""
from __future__ import annotations

from minitransfer.autograd import Function, Tensor
from minitransfer.backend import get_array_module
from minitransfer.ops import costs


class Embedding(Function):
    """Rows of a (num_embeddings, dim) weight gathered by integer ids of any shape -> (*ids.shape, dim).

    The row `padding_idx` (if given) gets no gradient, as in torch.nn.Embedding: the pad vector stays fixed.
    """

    cost = costs.embedding

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


def embedding(ids, weight, padding_idx: int | None = None) -> Tensor:
    """weight[ids]; ids: integer array (any shape), weight: (num, dim) -> (*ids.shape, dim).

    padding_idx: a row that receives no gradient (torch.nn.Embedding's padding_idx).
    """
    return Embedding(ids.data if isinstance(ids, Tensor) else ids, padding_idx)(weight)

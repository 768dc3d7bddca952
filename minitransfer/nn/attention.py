"""Multi-head self-attention around the one attention entry point, shared by BERT and DistilBERT."""
from __future__ import annotations

from minitransfer import ops
from minitransfer.autograd import Tensor
from minitransfer.nn.layers import Linear


def self_attention(x: Tensor, query: Linear, key: Linear, value: Linear, num_heads: int, key_padding_mask,
                   dropout_p: float, training: bool) -> Tensor:
    """Project x (B, S, H) to queries, keys and values, attend per head, merge the heads: (B, S, H).

    key_padding_mask: (B, S) with 1 for real tokens, 0 for padding (or None).
    """
    batch, seq, hidden = x.shape
    head_dim = hidden // num_heads

    def split(t: Tensor) -> Tensor:  # (B, S, H) -> (B, heads, S, head_dim)
        return t.reshape(batch, seq, num_heads, head_dim).transpose(0, 2, 1, 3)

    context = ops.attention(split(query(x)), split(key(x)), split(value(x)), key_padding_mask, dropout_p, training)
    return context.transpose(0, 2, 1, 3).reshape(batch, seq, hidden)

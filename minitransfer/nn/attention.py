"""Multi-head self-attention around the one attention entry point, shared by BERT and DistilBERT."""
from __future__ import annotations

from minitransfer import ops
from minitransfer.autograd import Tensor
from minitransfer.nn.layers import Linear
from minitransfer.nn.packing import PackedTokens


def self_attention(x: Tensor, query: Linear, key: Linear, value: Linear, num_heads: int, mask,
                   dropout_p: float, training: bool, attentions: list | None = None) -> Tensor:
    """Project x to queries, keys and values, attend per head, merge the heads; x's shape out.

    Packed: x (T, H) holds the real tokens and mask is their PackedTokens: each sequence attends to itself.
    Padded: x (B, S, H) and mask the (B, S) key padding mask, 1 for real tokens, 0 for padding (or None).
    attentions: a list to append this layer's probabilities (B, heads, S, S) to (output_attentions), or None.
    """
    if isinstance(mask, PackedTokens):
        tokens, hidden = x.shape

        def split_packed(t: Tensor) -> Tensor:  # (T, H) -> (T, heads, head_dim): a view, no copy
            return t.reshape(tokens, num_heads, hidden // num_heads)

        q, k = split_packed(query(x)), split_packed(key(x))
        if attentions is not None:
            attentions.append(mask.attention_to_padded(ops.varlen_attention_probabilities(q, k, mask.cu_seqlens)))
        context = ops.varlen_attention(q, k, split_packed(value(x)), mask.cu_seqlens, dropout_p, training)
        return context.reshape(tokens, hidden)
    batch, seq, hidden = x.shape
    head_dim = hidden // num_heads

    def split(t: Tensor) -> Tensor:  # (B, S, H) -> (B, heads, S, head_dim)
        return t.reshape(batch, seq, num_heads, head_dim).transpose(0, 2, 1, 3)

    q, k = split(query(x)), split(key(x))
    if attentions is not None:
        attentions.append(ops.attention_probabilities(q, k, mask))
    context = ops.attention(q, k, split(value(x)), mask, dropout_p, training)
    return context.transpose(0, 2, 1, 3).reshape(batch, seq, hidden)

"""Padding-free batches: the real tokens of a batch as rows of one (tokens, ...) array, and the way back.

A padded batch (batch, seq) whose attention_mask marks its real tokens is packed row by row: the real
tokens become rows 0..T-1, `cu_seqlens` (n_seqs + 1,) holds where each sequence starts (FlashAttention-2's
varlen layout), and `position_ids` each token's column, so a left-padded row, or one with a hole, gets
exactly the positions the padded computation gives it. Every layer but attention works on one token at a
time, so it runs on the T real rows only; attention takes cu_seqlens and lets each sequence attend to itself
(ops.varlen_attention). No pad token reaches a GEMM. `to_padded` puts per-token results back at their
(batch, seq) places, with a fill value elsewhere.

transformers' flattened form is the same thing with batch 1: input_ids (1, T) holding several sequences back
to back, their bounds given by cu_seq_lens_q or by position_ids restarting at 0 (DataCollatorWithFlattening).
"""
from __future__ import annotations

import numpy as np

from minitransfer import ops
from minitransfer.autograd import Tensor
from minitransfer.backend import get_array_module, to_numpy
from minitransfer.errors import InputError


class PackedTokens:
    """Where the real tokens of a (batch, seq) grid are, and how they split into sequences.

    rows: (T,) flat index b * seq + s of each real token, in order; cu_seqlens: (n_seqs + 1,) int64 on the
    host, sequence i is packed rows cu_seqlens[i]:cu_seqlens[i + 1]; position_ids: (T,) position of each token.
    """

    def __init__(self, rows, cu_seqlens: np.ndarray, position_ids, batch: int, seq: int):
        self.rows, self.cu_seqlens, self.position_ids = rows, cu_seqlens, position_ids
        self.batch, self.seq = batch, seq

    @classmethod
    def from_attention_mask(cls, attention_mask, shape: tuple[int, int], position_ids=None,
                            like=None) -> PackedTokens:
        """Pack the rows of a padded batch: each row is one sequence of its real tokens (mask 1).

        attention_mask: (batch, seq) of 0/1, or None (every token real); position_ids: (batch, seq) or None
        (then a token's position is its column, as in the padded computation).
        """
        batch, seq = shape
        xp = get_array_module(like if attention_mask is None else attention_mask)
        if attention_mask is None:
            rows = xp.arange(batch * seq)
            cu_seqlens = np.arange(0, batch * seq + 1, seq, dtype=np.int64)
        else:
            real = attention_mask != 0
            if bool(((attention_mask != 0) & (attention_mask != 1)).any()):
                raise InputError("attention_mask must hold only 0 (padding) and 1 (real token); "
                                 f"it holds {sorted(set(to_numpy(attention_mask).ravel().tolist()))[:6]}")
            lengths = to_numpy(real.sum(axis=1)).astype(np.int64)
            if (lengths == 0).any():
                empty = int(np.flatnonzero(lengths == 0)[0])
                raise InputError(f"row {empty} of the batch has no real token (its attention_mask is all 0): "
                                 "drop empty examples before batching")
            rows = xp.flatnonzero(real.reshape(-1))
            cu_seqlens = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        positions = rows % seq if position_ids is None else position_ids.reshape(-1)[rows]
        return cls(rows, cu_seqlens, positions, batch, seq)

    @classmethod
    def from_flattened(cls, tokens: int, position_ids=None, cu_seq_lens=None, like=None) -> PackedTokens:
        """transformers' flattened batch (1, tokens): bounds from cu_seq_lens, else from position_ids
        restarting at 0, else one sequence."""
        xp = get_array_module(like)
        if cu_seq_lens is not None:
            cu_seqlens = to_numpy(cu_seq_lens).astype(np.int64).reshape(-1)
            bad = cu_seqlens.size < 2 or cu_seqlens[0] != 0 or cu_seqlens[-1] != tokens
            if bad or (np.diff(cu_seqlens) <= 0).any():
                raise InputError(f"cu_seq_lens_q {cu_seqlens.tolist()[:8]} must start at 0, increase strictly and end "
                                 f"at the {tokens} tokens of input_ids (1, {tokens})")
        elif position_ids is not None:
            starts = np.flatnonzero(to_numpy(position_ids).reshape(-1) == 0)
            if not len(starts) or starts[0] != 0:
                raise InputError("position_ids of a flattened batch (1, tokens) must start at 0 and restart at 0 "
                                 "for each sequence (as DataCollatorWithFlattening makes them)")
            cu_seqlens = np.append(starts, tokens).astype(np.int64)
        else:
            cu_seqlens = np.array([0, tokens], dtype=np.int64)
        if position_ids is None:
            lengths = np.diff(cu_seqlens)
            positions = xp.asarray(np.arange(tokens) - np.repeat(cu_seqlens[:-1], lengths))
        else:
            positions = position_ids.reshape(-1)
        return cls(xp.arange(tokens), cu_seqlens, positions, 1, tokens)

    @property
    def num_tokens(self) -> int:
        return int(self.cu_seqlens[-1])

    @property
    def max_seqlen(self) -> int:
        return int(np.diff(self.cu_seqlens).max())

    def pack(self, values):
        """A (batch, seq) array -> its real tokens' entries (T,); None stays None."""
        return None if values is None else values.reshape(-1)[self.rows]

    def index_of(self, batch_rows, columns):
        """Packed row of each (batch row, column) position: (M,) ints; every position must be a real token."""
        xp = get_array_module(self.rows)
        flat = xp.asarray(batch_rows) * self.seq + xp.asarray(columns)
        index = xp.minimum(xp.searchsorted(self.rows, flat), len(self.rows) - 1)
        if bool((self.rows[index] != flat).any()):
            raise InputError("a position asked for is padding (attention_mask 0): only real tokens have outputs")
        return index

    def is_real(self, columns):
        """For one column per batch row (batch,): whether it is a real token; negative columns are not."""
        xp = get_array_module(self.rows)
        grid = xp.zeros(self.batch * self.seq, dtype=bool)
        grid[self.rows] = True
        columns = xp.asarray(columns)
        inside = (columns >= 0) & (columns < self.seq)
        flat = xp.arange(self.batch) * self.seq + xp.where(inside, columns, 0)
        return inside & grid[flat]

    def to_padded(self, x: Tensor, fill: float = 0.0) -> Tensor:
        """Per-token rows (T, ...) -> (batch, seq, ...), `fill` at padding."""
        padded = ops.scatter_rows(x, self.rows, self.batch * self.seq, fill)
        return padded.reshape(self.batch, self.seq, *x.shape[1:])

    def attention_to_padded(self, per_sequence: list):
        """Per-sequence attention probabilities [(heads, L_i, L_i)] -> (batch, heads, seq, seq), 0 off each
        sequence's own block (a flattened batch's sequences sit on the diagonal of its one row)."""
        xp = get_array_module(per_sequence[0])
        out = xp.zeros((self.batch, per_sequence[0].shape[0], self.seq, self.seq), dtype=per_sequence[0].dtype)
        rows = to_numpy(self.rows)
        for i, probs in enumerate(per_sequence):
            flat = rows[self.cu_seqlens[i]:self.cu_seqlens[i + 1]]
            b, cols = int(flat[0] // self.seq), flat % self.seq
            out[b][:, cols[:, None], cols[None, :]] = probs
        return out

    def first_tokens(self, x: Tensor) -> Tensor:
        """Each sequence's first real token ([CLS]) of per-token rows x (T, ...): (n_seqs, ...)."""
        xp = get_array_module(x.data)
        return ops.take_rows(x, xp.asarray(self.cu_seqlens[:-1]))


def pack_inputs(input_ids, attention_mask=None, position_ids=None, cu_seq_lens=None,
                padding_free: bool = True) -> PackedTokens | None:
    """How a model call's tokens are laid out: PackedTokens, or None for the padded path.

    A flattened batch (1, T) — cu_seq_lens given, or position_ids restarting at 0 with no padding — is packed
    whatever `padding_free` says: the padded path cannot keep its sequences apart. Otherwise the batch is
    packed by its attention_mask when padding_free is set.
    """
    batch, seq = input_ids.shape
    if cu_seq_lens is not None and batch != 1:
        raise InputError(f"cu_seq_lens_q describes a flattened batch: input_ids must have shape (1, tokens), "
                         f"got {input_ids.shape}")
    unpadded = attention_mask is None or bool((attention_mask != 0).all())
    if cu_seq_lens is not None or (batch == 1 and position_ids is not None and unpadded):
        if not unpadded:
            raise InputError("a flattened batch (cu_seq_lens_q given) has no padding: drop its attention_mask")
        return PackedTokens.from_flattened(seq, position_ids, cu_seq_lens, like=input_ids)
    if not padding_free:
        return None
    return PackedTokens.from_attention_mask(attention_mask, (batch, seq), position_ids, like=input_ids)


def first_tokens(hidden: Tensor, packed: PackedTokens | None) -> Tensor:
    """The [CLS] hidden state of each sequence, (n_seqs, H), from packed rows or a padded (B, S, H) batch."""
    return hidden[:, 0] if packed is None else packed.first_tokens(hidden)

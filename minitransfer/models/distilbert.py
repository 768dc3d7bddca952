"""DistilBERT (Sanh et al. 2019): BERT's encoder with half the layers, no token types and no pooler.

Attribute names follow transformers' DistilBertModel (`transformer.layer.0.attention.q_lin.weight`,
`sa_layer_norm`, `output_layer_norm`, `ffn.lin1`).
"""
from __future__ import annotations

from minitransfer import ops
from minitransfer.autograd import Tensor
from minitransfer.backend import get_array_module
from minitransfer.models.config import ModelConfig
from minitransfer.models.inputs import check_inputs
from minitransfer.models.outputs import ModelOutput, body_output, flattened_bounds
from minitransfer.models.pretrained import PreTrainedModel
from minitransfer.nn import Dropout, Embedding, LayerNorm, Linear, Module, ModuleList
from minitransfer.nn.attention import self_attention
from minitransfer.nn.layers import apply_layers, dense_activation, dense_dropout_residual_norm
from minitransfer.nn.packing import pack_inputs

ACTIVATIONS = {"gelu": ops.gelu, "relu": ops.relu}
LAYER_NORM_EPS = 1e-12  # fixed in transformers' DistilBERT, not a config key


class Embeddings(Module):
    """word + position embeddings, LayerNorm, dropout. ids (B, S) -> (B, S, dim)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        std = config.initializer_range
        self.word_embeddings = Embedding(config.vocab_size, config.dim, std, padding_idx=config.pad_token_id)
        self.position_embeddings = Embedding(config.max_position_embeddings, config.dim, std)
        self.LayerNorm = LayerNorm(config.dim, LAYER_NORM_EPS)
        self.dropout = Dropout(config.dropout)

    def forward(self, input_ids, position_ids=None) -> Tensor:
        """ids (B, S) -> (B, S, dim), or packed ids (T,) with their position_ids (T,) -> (T, dim)."""
        positions = get_array_module(input_ids).arange(input_ids.shape[-1]) if position_ids is None else position_ids
        return self.dropout(self.LayerNorm(self.word_embeddings(input_ids) + self.position_embeddings(positions)))


class MultiHeadSelfAttention(Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        dim, std = config.dim, config.initializer_range
        self.n_heads = config.n_heads
        self.q_lin = Linear(dim, dim, init_std=std)
        self.k_lin = Linear(dim, dim, init_std=std)
        self.v_lin = Linear(dim, dim, init_std=std)
        self.out_lin = Linear(dim, dim, init_std=std)
        self.dropout_p = config.attention_dropout

    def forward(self, x: Tensor, mask, attentions: list | None = None) -> Tensor:
        return self.out_lin(self.context(x, mask, attentions))

    def context(self, x: Tensor, mask, attentions: list | None = None) -> Tensor:
        """The heads' merged output before out_lin: x's shape, (T, dim) packed or (B, S, dim) padded."""
        return self_attention(x, self.q_lin, self.k_lin, self.v_lin, self.n_heads, mask, self.dropout_p,
                              self.training, attentions)


class FFN(Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dropout = Dropout(config.dropout)
        self.lin1 = Linear(config.dim, config.hidden_dim, init_std=config.initializer_range)
        self.lin2 = Linear(config.hidden_dim, config.dim, init_std=config.initializer_range)
        self.activation = ACTIVATIONS[config.activation]

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.lin2(self.hidden(x)))

    def hidden(self, x: Tensor) -> Tensor:
        """activation(lin1(x)): (B, S, hidden_dim)."""
        return dense_activation(self.lin1, x, self.activation)


class TransformerBlock(Module):
    """Post-LN block: x = LN(attn(x) + x); x = LN(ffn(x) + x).

    Packed x (T, dim) with mask = its PackedTokens, or padded x (B, S, dim) with mask = the (B, S) key padding mask.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attention = MultiHeadSelfAttention(config)
        self.sa_layer_norm = LayerNorm(config.dim, LAYER_NORM_EPS)
        self.ffn = FFN(config)
        self.output_layer_norm = LayerNorm(config.dim, LAYER_NORM_EPS)

    def forward(self, x: Tensor, mask, attentions: list | None = None) -> Tensor:
        # The same as the docstring's formula, with each Linear's bias, dropout and residual add fused into the norm.
        x = dense_dropout_residual_norm(self.attention.out_lin, self.attention.context(x, mask, attentions), x,
                                        self.sa_layer_norm)
        return dense_dropout_residual_norm(self.ffn.lin2, self.ffn.hidden(x), x, self.output_layer_norm,
                                           self.ffn.dropout)


class Transformer(Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.layer = ModuleList(TransformerBlock(config) for _ in range(config.n_layers))

    def forward(self, x: Tensor, mask, output_hidden_states: bool = False, output_attentions: bool = False):
        return apply_layers(self.layer, x, mask, output_hidden_states, output_attentions)


class DistilBertModel(PreTrainedModel):
    """The DistilBERT body. Call with input_ids (B, S)[, attention_mask (B, S), position_ids (B, S)], or a
    flattened batch: input_ids (1, T) with cu_seq_lens_q (or position_ids restarting at 0 per sequence).

    Returns ModelOutput(last_hidden_state (B, S, dim), zeros at padding[, hidden_states]). With
    config.padding_free (the default) only real tokens are computed (nn/packing.py).
    """

    model_type = "distilbert"
    base_model_prefix = "distilbert"

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.embeddings = Embeddings(config)
        self.transformer = Transformer(config)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                output_hidden_states: bool = False, output_attentions: bool = False, **flattened) -> ModelOutput:
        return body_output(*self.encode(input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states,
                                        output_attentions, **flattened))

    def encode(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
               output_hidden_states: bool = False, output_attentions: bool = False, **flattened):
        """(hidden, packed, extras): the real tokens' hidden states (T, dim) and their PackedTokens, or on the
        padded path (padding_free=False) hidden (B, S, dim) and None; extras: hidden_states / attentions if asked."""
        c = self.config
        del token_type_ids  # our tokenizer returns them for every WordPiece vocab; DistilBERT has no token types
        ids, mask, _, positions = check_inputs(input_ids, attention_mask, None, vocab_size=c.vocab_size,
                                               max_positions=c.max_position_embeddings, type_vocab_size=None,
                                               device=self.device, position_ids=position_ids)
        packed = pack_inputs(ids, mask, positions, flattened_bounds(flattened), c.padding_free)
        if packed is None:
            hidden, extras = self.transformer(self.embeddings(ids, positions), mask, output_hidden_states,
                                              output_attentions)
        else:
            hidden = self.embeddings(packed.pack(ids), packed.position_ids)
            hidden, extras = self.transformer(hidden, packed, output_hidden_states, output_attentions)
        return hidden, packed, extras

    def embedding_layers(self) -> list[Module]:
        return [self.embeddings]

    def encoder_layers(self) -> list[Module]:
        return list(self.transformer.layer)

    def get_input_embeddings(self) -> Embedding:
        return self.embeddings.word_embeddings

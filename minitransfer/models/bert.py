"""BERT (Devlin et al. 2019): embeddings, a post-LayerNorm transformer encoder, and the pooler.

Attribute names follow transformers' BertModel exactly, so `named_parameters()` yields the checkpoint's
own names (`encoder.layer.0.attention.self.query.weight`).
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


class BertEmbeddings(Module):
    """word + position + token-type embeddings, then LayerNorm and dropout. ids (B, S) -> (B, S, H)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        std = config.initializer_range
        self.word_embeddings = Embedding(config.vocab_size, config.hidden_size, std, padding_idx=config.pad_token_id)
        self.position_embeddings = Embedding(config.max_position_embeddings, config.hidden_size, std)
        self.token_type_embeddings = Embedding(config.type_vocab_size, config.hidden_size, std)
        self.LayerNorm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids=None, position_ids=None) -> Tensor:
        """ids (B, S) -> (B, S, H), or packed ids (T,) with their position_ids (T,) -> (T, H)."""
        xp = get_array_module(input_ids)
        positions = xp.arange(input_ids.shape[-1]) if position_ids is None else position_ids
        if token_type_ids is None:
            token_type_ids = xp.zeros_like(input_ids)
        x = (self.word_embeddings(input_ids) + self.position_embeddings(positions)
             + self.token_type_embeddings(token_type_ids))
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(Module):
    """Multi-head self-attention projections around the one attention entry point (ops.attention)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        hidden, std = config.hidden_size, config.initializer_range
        self.num_heads = config.num_attention_heads
        self.query = Linear(hidden, hidden, init_std=std)
        self.key = Linear(hidden, hidden, init_std=std)
        self.value = Linear(hidden, hidden, init_std=std)
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, x: Tensor, mask, attentions: list | None = None) -> Tensor:
        return self_attention(x, self.query, self.key, self.value, self.num_heads, mask, self.dropout_p,
                              self.training, attentions)


class BertSelfOutput(Module):
    """dense → dropout → LayerNorm(· + residual); BertOutput is the same with the FFN's input width."""

    def __init__(self, config: ModelConfig, in_features: int | None = None):
        super().__init__()
        in_features = in_features or config.hidden_size
        self.dense = Linear(in_features, config.hidden_size, init_std=config.initializer_range)
        self.LayerNorm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: Tensor, residual: Tensor) -> Tensor:
        return dense_dropout_residual_norm(self.dense, hidden, residual, self.LayerNorm, self.dropout)


class BertAttention(Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, x: Tensor, mask, attentions: list | None = None) -> Tensor:
        return self.output(self.self(x, mask, attentions), x)


class BertIntermediate(Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.intermediate_size, init_std=config.initializer_range)
        self.activation = ACTIVATIONS[config.hidden_act]

    def forward(self, x: Tensor) -> Tensor:
        return dense_activation(self.dense, x, self.activation)


class BertOutput(BertSelfOutput):
    def __init__(self, config: ModelConfig):
        super().__init__(config, in_features=config.intermediate_size)


class BertLayer(Module):
    """Post-LN block: x = LN(x + attn(x)); x = LN(x + ffn(x)).

    Packed x (T, H) with mask = its PackedTokens, or padded x (B, S, H) with mask = the (B, S) key padding mask.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, x: Tensor, mask, attentions: list | None = None) -> Tensor:
        x = self.attention(x, mask, attentions)
        return self.output(self.intermediate(x), x)


class BertEncoder(Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.layer = ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, x: Tensor, mask, output_hidden_states: bool = False, output_attentions: bool = False):
        return apply_layers(self.layer, x, mask, output_hidden_states, output_attentions)


class BertPooler(Module):
    """tanh(dense(hidden state of [CLS])): the [CLS] rows (B, H) -> (B, H)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size, init_std=config.initializer_range)

    def forward(self, cls_hidden: Tensor) -> Tensor:
        return ops.tanh(self.dense(cls_hidden))


class BertModel(PreTrainedModel):
    """The BERT body. Call with input_ids (B, S)[, attention_mask (B, S), token_type_ids (B, S), position_ids (B, S)],
    or a flattened batch: input_ids (1, T) with cu_seq_lens_q (or position_ids restarting at 0 per sequence).

    Returns ModelOutput(last_hidden_state (B, S, H), zeros at padding; pooler_output (B, H) if the pooler is
    kept, one row per sequence; hidden_states if asked). With config.padding_free (the default) only real tokens
    are computed (nn/packing.py).
    """

    model_type = "bert"
    base_model_prefix = "bert"

    def __init__(self, config: ModelConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                output_hidden_states: bool = False, output_attentions: bool = False, **flattened) -> ModelOutput:
        hidden, packed, extras = self.encode(input_ids, attention_mask, token_type_ids, position_ids,
                                             output_hidden_states, output_attentions, **flattened)
        out = body_output(hidden, packed, extras)
        if self.pooler is not None:
            out.pooler_output = self.pooler(hidden[:, 0] if packed is None else packed.first_tokens(hidden))
        return out

    def encode(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
               output_hidden_states: bool = False, output_attentions: bool = False, **flattened):
        """(hidden, packed, extras): the real tokens' hidden states (T, H) and their PackedTokens, or on the
        padded path (padding_free=False) hidden (B, S, H) and None; extras: hidden_states / attentions if asked."""
        c = self.config
        ids, mask, types, positions = check_inputs(input_ids, attention_mask, token_type_ids, vocab_size=c.vocab_size,
                                                   max_positions=c.max_position_embeddings,
                                                   type_vocab_size=c.type_vocab_size, device=self.device,
                                                   position_ids=position_ids)
        packed = pack_inputs(ids, mask, positions, flattened_bounds(flattened), c.padding_free)
        if packed is None:
            hidden = self.embeddings(ids, types, positions)
            hidden, extras = self.encoder(hidden, mask, output_hidden_states, output_attentions)
        else:
            hidden = self.embeddings(packed.pack(ids), packed.pack(types), packed.position_ids)
            hidden, extras = self.encoder(hidden, packed, output_hidden_states, output_attentions)
        return hidden, packed, extras

    def embedding_layers(self) -> list[Module]:
        return [self.embeddings]

    def encoder_layers(self) -> list[Module]:
        return list(self.encoder.layer)

    def get_input_embeddings(self) -> Embedding:
        return self.embeddings.word_embeddings

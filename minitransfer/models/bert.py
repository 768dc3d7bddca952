"""BERT (Devlin et al. 2019): embeddings, post-LN transformer blocks, the pooler, and BERT's task heads.

A block is its math: x = LN(x + dropout(attn(x))); x = LN(x + dropout(ffn(x))). Each LN(x + dropout(dense(h)))
is BertSelfOutput / BertOutput: one fused kernel (nn.add_norm) adds the dense's bias, drops out, adds the residual
and normalizes. Attribute names follow transformers' BertModel exactly, so `named_parameters()` yields the
checkpoint's own names (`encoder.layer.0.attention.self.query.weight`).
"""
from __future__ import annotations

import numpy as np

from minitransfer import ops
from minitransfer.autograd import Tensor
from minitransfer.backend import get_array_module
from minitransfer.models.config import ModelConfig
from minitransfer.models.encoder import ACTIVATIONS, Encoder, EncoderModel
from minitransfer.models.heads import MaskedLM, QuestionAnswering, SequenceClassification, TokenClassification
from minitransfer.nn import Dropout, Embedding, LayerNorm, Linear, Module, Parameter
from minitransfer.nn.attention import self_attention
from minitransfer.nn.layers import add_norm, dense_activation


class BertEmbeddings(Module):
    """word + position + token-type embeddings, then LayerNorm and dropout."""

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
    """The heads' merged attention output, before the output dense: x's shape, (T, H) packed or (B, S, H)."""

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
    """LN(x + dropout(dense(h))): the end of a sub-block; BertOutput is the same with the FFN's input width."""

    def __init__(self, config: ModelConfig, in_features: int | None = None):
        super().__init__()
        self.dense = Linear(in_features or config.hidden_size, config.hidden_size, init_std=config.initializer_range)
        self.LayerNorm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, h: Tensor, x: Tensor) -> Tensor:
        return add_norm(self.LayerNorm, x, self.dense.bias_later(h), self.dropout)


class BertAttention(Module):
    """LN(x + dropout(attn(x))), attn = self-attention and the output dense."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, x: Tensor, mask, attentions: list | None = None) -> Tensor:
        return self.output(self.self(x, mask, attentions), x)


class BertIntermediate(Module):
    """The FFN's first half: activation(dense(x)), (..., H) -> (..., intermediate_size)."""

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
    """Post-LN block: x = LN(x + dropout(attn(x))); x = LN(x + dropout(ffn(x))), ffn = output.dense ∘ intermediate.

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


class BertPooler(Module):
    """tanh(dense(hidden state of [CLS])): the [CLS] rows (B, H) -> (B, H)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size, init_std=config.initializer_range)

    def forward(self, cls_hidden: Tensor) -> Tensor:
        return ops.tanh(self.dense(cls_hidden))


class BertModel(EncoderModel):
    """The BERT body (models/encoder.py says how it is called and what it returns)."""

    model_type = base_model_prefix = "bert"

    def __init__(self, config: ModelConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = Encoder(BertLayer(config) for _ in range(config.num_hidden_layers))
        self.pooler = BertPooler(config) if add_pooling_layer else None


# ---- task heads (models/heads.py computes their outputs and losses) ----
NO_POOLER = {"add_pooling_layer": False}  # the pooler belongs to sequence classification only


def classifier_dropout(config: ModelConfig) -> float:
    return config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob


class BertForSequenceClassification(SequenceClassification):
    """pooler → dropout → classifier."""

    model_type = base_model_prefix = "bert"
    body_class = BertModel

    def build_head(self) -> None:
        c = self.config
        self.dropout = Dropout(classifier_dropout(c))
        self.classifier = Linear(c.hidden_size, c.num_labels, init_std=c.initializer_range)

    def pool(self, cls_hidden: Tensor) -> Tensor:
        return self.bert.pooler(cls_hidden)


class BertForTokenClassification(TokenClassification):
    model_type = base_model_prefix = "bert"
    body_class, body_options = BertModel, NO_POOLER

    def build_head(self) -> None:
        c = self.config
        self.dropout = Dropout(classifier_dropout(c))
        self.classifier = Linear(c.hidden_size, c.num_labels, init_std=c.initializer_range)


class BertForQuestionAnswering(QuestionAnswering):
    model_type = base_model_prefix = "bert"
    body_class, body_options = BertModel, NO_POOLER

    def build_head(self) -> None:
        self.qa_outputs = Linear(self.config.hidden_size, 2, init_std=self.config.initializer_range)


class BertPredictionHeadTransform(Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size, init_std=config.initializer_range)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.LayerNorm = LayerNorm(config.hidden_size, config.layer_norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.LayerNorm(self.activation(self.dense(x)))


class BertLMPredictionHead(Module):
    """transform → decoder, the decoder's weight tied to the word embeddings and its bias to `bias`."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.bias = Parameter(np.zeros(config.vocab_size, np.float32))
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = Linear(config.hidden_size, config.vocab_size, init_std=config.initializer_range)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.transform(x))


class BertOnlyMLMHead(Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)

    def forward(self, x: Tensor) -> Tensor:
        return self.predictions(x)


class BertForMaskedLM(MaskedLM):
    """BERT with its pretraining head `cls.predictions` (dense → GELU → LayerNorm → decoder)."""

    model_type = base_model_prefix = "bert"
    body_class, body_options = BertModel, NO_POOLER
    tied_weights = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
                    "cls.predictions.decoder.bias": "cls.predictions.bias"}

    def build_head(self) -> None:
        self.cls = BertOnlyMLMHead(self.config)

    def transform(self, hidden: Tensor) -> Tensor:
        return self.cls.predictions.transform(hidden)

    @property
    def decoder(self) -> Linear:
        return self.cls.predictions.decoder

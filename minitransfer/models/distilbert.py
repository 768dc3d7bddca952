"""DistilBERT (Sanh et al. 2019): BERT's blocks with half the layers, no token types and no pooler; its task heads.

A block is its math: x = LN(x + attn(x)); x = LN(x + dropout(ffn(x))). attn and ffn return their output with the
last Linear's bias still to add (nn.BiasLater), so each Add & Norm is one fused kernel (nn.add_norm). Attribute
names follow transformers' DistilBertModel (`transformer.layer.0.attention.q_lin.weight`, `sa_layer_norm`,
`output_layer_norm`, `ffn.lin1`).
"""
from __future__ import annotations

from minitransfer import ops
from minitransfer.autograd import Tensor
from minitransfer.backend import get_array_module
from minitransfer.models.config import ModelConfig
from minitransfer.models.encoder import ACTIVATIONS, Encoder, EncoderModel
from minitransfer.models.heads import MaskedLM, QuestionAnswering, SequenceClassification, TokenClassification
from minitransfer.nn import Dropout, Embedding, LayerNorm, Linear, Module
from minitransfer.nn.attention import self_attention
from minitransfer.nn.layers import BiasLater, add_norm, dense_activation

LAYER_NORM_EPS = 1e-12  # fixed in transformers' DistilBERT, not a config key


class Embeddings(Module):
    """word + position embeddings, LayerNorm, dropout."""

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
    """out_lin(the heads' merged attention output): x's shape, (T, dim) packed or (B, S, dim) padded."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        dim, std = config.dim, config.initializer_range
        self.n_heads = config.n_heads
        self.q_lin = Linear(dim, dim, init_std=std)
        self.k_lin = Linear(dim, dim, init_std=std)
        self.v_lin = Linear(dim, dim, init_std=std)
        self.out_lin = Linear(dim, dim, init_std=std)
        self.dropout_p = config.attention_dropout

    def forward(self, x: Tensor, mask, attentions: list | None = None) -> BiasLater:
        heads = self_attention(x, self.q_lin, self.k_lin, self.v_lin, self.n_heads, mask, self.dropout_p,
                               self.training, attentions)
        return self.out_lin.bias_later(heads)


class FFN(Module):
    """lin2(activation(lin1(x))): (..., dim) -> (..., dim); the dropout after it is applied by the Add & Norm."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dropout = Dropout(config.dropout)
        self.lin1 = Linear(config.dim, config.hidden_dim, init_std=config.initializer_range)
        self.lin2 = Linear(config.hidden_dim, config.dim, init_std=config.initializer_range)
        self.activation = ACTIVATIONS[config.activation]

    def forward(self, x: Tensor) -> BiasLater:
        return self.lin2.bias_later(dense_activation(self.lin1, x, self.activation))


class TransformerBlock(Module):
    """Post-LN block: x = LN(x + attn(x)); x = LN(x + dropout(ffn(x))).

    Packed x (T, dim) with mask = its PackedTokens, or padded x (B, S, dim) with mask = the (B, S) key padding mask.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attention = MultiHeadSelfAttention(config)
        self.sa_layer_norm = LayerNorm(config.dim, LAYER_NORM_EPS)
        self.ffn = FFN(config)
        self.output_layer_norm = LayerNorm(config.dim, LAYER_NORM_EPS)

    def forward(self, x: Tensor, mask, attentions: list | None = None) -> Tensor:
        x = add_norm(self.sa_layer_norm, x, self.attention(x, mask, attentions))
        return add_norm(self.output_layer_norm, x, self.ffn(x), self.ffn.dropout)


class DistilBertModel(EncoderModel):
    """The DistilBERT body (models/encoder.py says how it is called and what it returns; it has no pooler)."""

    model_type = base_model_prefix = "distilbert"
    encoder_name, token_types = "transformer", False

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.embeddings = Embeddings(config)
        self.transformer = Encoder(TransformerBlock(config) for _ in range(config.n_layers))


# ---- task heads (models/heads.py computes their outputs and losses) ----
class DistilBertForSequenceClassification(SequenceClassification):
    """[CLS] → pre_classifier → ReLU → dropout → classifier."""

    model_type = base_model_prefix = "distilbert"
    body_class = DistilBertModel

    def build_head(self) -> None:
        c = self.config
        self.pre_classifier = Linear(c.dim, c.dim, init_std=c.initializer_range)
        self.classifier = Linear(c.dim, c.num_labels, init_std=c.initializer_range)
        self.dropout = Dropout(c.seq_classif_dropout)

    def pool(self, cls_hidden: Tensor) -> Tensor:
        return ops.relu(self.pre_classifier(cls_hidden))


class DistilBertForTokenClassification(TokenClassification):
    model_type = base_model_prefix = "distilbert"
    body_class = DistilBertModel

    def build_head(self) -> None:
        self.dropout = Dropout(self.config.dropout)
        self.classifier = Linear(self.config.dim, self.config.num_labels, init_std=self.config.initializer_range)


class DistilBertForQuestionAnswering(QuestionAnswering):
    """dropout → qa_outputs."""

    model_type = base_model_prefix = "distilbert"
    body_class = DistilBertModel

    def build_head(self) -> None:
        self.dropout = Dropout(self.config.qa_dropout)
        self.qa_outputs = Linear(self.config.dim, 2, init_std=self.config.initializer_range)

    def head_input(self, hidden: Tensor) -> Tensor:
        return self.dropout(hidden)


class DistilBertForMaskedLM(MaskedLM):
    """DistilBERT with its pretraining head: vocab_transform → GELU → vocab_layer_norm → vocab_projector."""

    model_type = base_model_prefix = "distilbert"
    body_class = DistilBertModel
    tied_weights = {"vocab_projector.weight": "distilbert.embeddings.word_embeddings.weight"}

    def build_head(self) -> None:
        c = self.config
        self.vocab_transform = Linear(c.dim, c.dim, init_std=c.initializer_range)
        self.activation = ACTIVATIONS[c.activation]
        self.vocab_layer_norm = LayerNorm(c.dim, LAYER_NORM_EPS)
        self.vocab_projector = Linear(c.dim, c.vocab_size, init_std=c.initializer_range)

    def transform(self, hidden: Tensor) -> Tensor:
        return self.vocab_layer_norm(self.activation(self.vocab_transform(hidden)))

    @property
    def decoder(self) -> Linear:
        return self.vocab_projector

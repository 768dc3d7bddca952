"""Masked-language-model heads, the pretraining heads kept for fill-mask and domain adaptation.

BERT: `cls.predictions` = dense → GELU → LayerNorm → decoder, the decoder weight tied to the word
embeddings and its bias to `cls.predictions.bias`. DistilBERT: vocab_transform → GELU → vocab_layer_norm
→ vocab_projector, tied the same way.
"""
from __future__ import annotations

import numpy as np

from minitransfer import ops
from minitransfer.autograd import Tensor
from minitransfer.backend import get_array_module
from minitransfer.errors import CheckpointError
from minitransfer.models.bert import ACTIVATIONS, BertModel
from minitransfer.models.config import ModelConfig
from minitransfer.models.distilbert import LAYER_NORM_EPS, DistilBertModel
from minitransfer.models.outputs import ModelOutput, label_array, padded_extras
from minitransfer.models.pretrained import PreTrainedModel
from minitransfer.nn import LayerNorm, Linear, Module, Parameter


class MaskedLMMixin:
    """Shared by both MLM models: the loss, and refusing to start fill-mask from a random head."""

    def mlm_output(self, logits: Tensor, packed, labels, extras: dict) -> ModelOutput:
        """logits: (T, vocab) on the packed real tokens, or (B, S, vocab) when packed is None (padded path)."""
        out = ModelOutput(logits=logits if packed is None else packed.to_padded(logits),
                          **padded_extras(packed, extras))
        if labels is not None:
            labels = label_array(labels, logits)
            if packed is not None:
                labels = packed.pack(get_array_module(logits.data).asarray(labels))
            out.loss = ops.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        return out

    def check_new_head(self, missing, source, allow_new_head) -> None:
        if missing and not allow_new_head:
            raise CheckpointError(
                f"{source} has no masked-LM head ({', '.join(missing)} missing): it was saved without its "
                "pretraining head (sentence-transformers checkpoints such as all-MiniLM-L6-v2 are), so fill-mask "
                "would be random. Train a head first (`minitransfer train mlm`), or pass allow_new_head=True to "
                "start one from random weights."
            )


class BertPredictionHeadTransform(Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size, init_std=config.initializer_range)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.LayerNorm = LayerNorm(config.hidden_size, config.layer_norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.LayerNorm(self.activation(self.dense(x)))


class BertLMPredictionHead(Module):
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


class BertForMaskedLM(MaskedLMMixin, PreTrainedModel):
    """BERT with its MLM head. Returns ModelOutput(logits (B, S, vocab)[, loss if labels (B, S) given])."""

    model_type = "bert"
    base_model_prefix = "bert"
    is_head_model = True
    tied_weights = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
                    "cls.predictions.decoder.bias": "cls.predictions.bias"}

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.tie_weights()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                output_hidden_states: bool = False, output_attentions: bool = False, **flattened):
        hidden, packed, extras = self.bert.encode(input_ids, attention_mask, token_type_ids, position_ids,
                                                  output_hidden_states, output_attentions, **flattened)
        return self.mlm_output(self.cls(hidden), packed, labels, extras)


class DistilBertForMaskedLM(MaskedLMMixin, PreTrainedModel):
    """DistilBERT with its MLM head. Returns ModelOutput(logits (B, S, vocab)[, loss])."""

    model_type = "distilbert"
    base_model_prefix = "distilbert"
    is_head_model = True
    tied_weights = {"vocab_projector.weight": "distilbert.embeddings.word_embeddings.weight"}

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        std = config.initializer_range
        self.distilbert = DistilBertModel(config)
        self.vocab_transform = Linear(config.dim, config.dim, init_std=std)
        self.activation = ACTIVATIONS[config.activation]
        self.vocab_layer_norm = LayerNorm(config.dim, LAYER_NORM_EPS)
        self.vocab_projector = Linear(config.dim, config.vocab_size, init_std=std)
        self.tie_weights()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                output_hidden_states: bool = False, output_attentions: bool = False, **flattened):
        hidden, packed, extras = self.distilbert.encode(input_ids, attention_mask, None, position_ids,
                                                        output_hidden_states, output_attentions, **flattened)
        hidden = self.vocab_layer_norm(self.activation(self.vocab_transform(hidden)))
        return self.mlm_output(self.vocab_projector(hidden), packed, labels, extras)

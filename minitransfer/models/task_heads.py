"""Task heads on a pretrained body, as transformers builds them.

- sequence classification: BERT pooler → dropout → classifier; DistilBERT [CLS] → pre_classifier → ReLU
  → dropout → classifier. Cross-entropy loss (mean squared error when num_labels == 1).
- token classification: dropout → classifier on every token.
- question answering: qa_outputs (hidden → 2) giving start/end logits; loss = mean of both cross-entropies.

Loading a pretrained body into one of these drops the pretraining head and initializes the new head
(normal, std = initializer_range); `from_pretrained` reports both by name. `replace_head` swaps the head
of a live model, and `from_body` puts a fresh head on the body of any loaded model.
"""
from __future__ import annotations

import numpy as np

from minitransfer import ops
from minitransfer.autograd import Tensor
from minitransfer.backend import get_array_module
from minitransfer.errors import InputError
from minitransfer.models.bert import BertModel
from minitransfer.models.config import ModelConfig
from minitransfer.models.distilbert import DistilBertModel
from minitransfer.models.outputs import ModelOutput, label_array, padded_extras
from minitransfer.models.pretrained import PreTrainedModel
from minitransfer.nn import Dropout, Linear
from minitransfer.nn.packing import first_tokens


class TaskModel(PreTrainedModel):
    """A body under `base_model_prefix` plus a head built by `build_head`."""

    is_head_model = True
    with_pooler = False  # BERT's pooler is part of the classification recipe only

    def __init__(self, config: ModelConfig):
        if config.model_type != self.model_type:
            raise ValueError(f"{type(self).__name__} needs a {self.model_type!r} config, got {config.model_type!r}")
        super().__init__(config)
        if config.model_type == "bert":
            body = BertModel(config, add_pooling_layer=self.with_pooler)
        else:
            body = DistilBertModel(config)
        setattr(self, self.base_model_prefix, body)
        self.build_head()

    @property
    def body(self) -> PreTrainedModel:
        return getattr(self, self.base_model_prefix)

    def build_head(self) -> None:
        raise NotImplementedError

    def head_parameter_names(self) -> list[str]:
        return [n for n, _ in self.named_parameters() if not n.startswith(self.base_model_prefix + ".")]

    def replace_head(self, **config_overrides) -> TaskModel:
        """Swap in a freshly initialized head (e.g. replace_head(num_labels=3)); the body is kept."""
        self.config = self.config.update(config_overrides)
        for name in list(self._modules):
            if name != self.base_model_prefix:
                delattr(self, name)
        self.build_head()
        return self

    @classmethod
    def from_body(cls, model: PreTrainedModel, **config_overrides) -> TaskModel:
        """A new task model with a copy of the body of `model` (a body or any head model) and a fresh head."""
        body = model if isinstance(model, (BertModel, DistilBertModel)) else getattr(model, model.base_model_prefix)
        config = body.config.update(config_overrides)
        new = cls.for_model_type(config.model_type)(config)
        state = {f"{config.model_type}.{k}": v for k, v in body.state_dict().items()}
        new.load_state_dict(state, strict=False)
        return new

    @classmethod
    def for_model_type(cls, model_type: str) -> type:
        """The concrete class of this task for a body type, e.g. QuestionAnswering → DistilBertForQuestionAnswering."""
        if cls.model_type == model_type:
            return cls
        task = next(c for c in cls.__mro__ if c.__base__ is TaskModel)
        return next(sub for sub in task.__subclasses__() if sub.model_type == model_type)


class SequenceClassification(TaskModel):
    """logits (B, num_labels) from the [CLS] position; labels (B,) ints (or floats when num_labels == 1)."""

    with_pooler = True

    def build_head(self) -> None:
        c = self.config
        std = c.initializer_range
        if c.model_type == "bert":
            p = c.classifier_dropout if c.classifier_dropout is not None else c.hidden_dropout_prob
            self.dropout = Dropout(p)
            self.classifier = Linear(c.hidden_size, c.num_labels, init_std=std)
        else:
            self.pre_classifier = Linear(c.dim, c.dim, init_std=std)
            self.classifier = Linear(c.dim, c.num_labels, init_std=std)
            self.dropout = Dropout(c.seq_classif_dropout)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                output_hidden_states: bool = False, output_attentions: bool = False, **flattened) -> ModelOutput:
        hidden, packed, extras = self.body.encode(input_ids, attention_mask, token_type_ids, position_ids,
                                                  output_hidden_states, output_attentions, **flattened)
        cls_hidden = first_tokens(hidden, packed)
        if self.config.model_type == "bert":
            logits = self.classifier(self.dropout(self.body.pooler(cls_hidden)))
        else:
            logits = self.classifier(self.dropout(ops.relu(self.pre_classifier(cls_hidden))))
        result = ModelOutput(logits=logits, **padded_extras(packed, extras))
        if labels is not None:
            labels = label_array(labels, logits)
            if self.config.num_labels == 1:
                diff = logits.reshape(-1) - Tensor(labels.astype(logits.dtype))
                result.loss = (diff * diff).mean()
            else:
                result.loss = ops.cross_entropy(logits, labels)
        return result


class TokenClassification(TaskModel):
    """logits (B, S, num_labels); labels (B, S) ints with -100 on positions to skip."""

    def build_head(self) -> None:
        c = self.config
        p = c.hidden_dropout_prob if c.model_type == "bert" else c.dropout
        if c.model_type == "bert" and c.classifier_dropout is not None:
            p = c.classifier_dropout
        self.dropout = Dropout(p)
        self.classifier = Linear(c.hidden, c.num_labels, init_std=c.initializer_range)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                output_hidden_states: bool = False, output_attentions: bool = False, **flattened) -> ModelOutput:
        hidden, packed, extras = self.body.encode(input_ids, attention_mask, token_type_ids, position_ids,
                                                  output_hidden_states, output_attentions, **flattened)
        logits = self.classifier(self.dropout(hidden))  # (T, num_labels) packed, (B, S, num_labels) padded
        result = ModelOutput(logits=logits if packed is None else packed.to_padded(logits),
                             **padded_extras(packed, extras))
        if labels is not None:
            labels = label_array(labels, logits)
            if packed is not None:  # the loss over real tokens only (padding carries -100 anyway)
                labels = packed.pack(get_array_module(logits.data).asarray(labels))
            result.loss = ops.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        return result


class QuestionAnswering(TaskModel):
    """start_logits, end_logits (B, S); start_positions/end_positions (B,) token indices (0 = [CLS])."""

    def build_head(self) -> None:
        c = self.config
        if c.model_type == "distilbert":
            self.dropout = Dropout(c.qa_dropout)
        self.qa_outputs = Linear(c.hidden, 2, init_std=c.initializer_range)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                start_positions=None, end_positions=None, output_hidden_states: bool = False,
                output_attentions: bool = False, **flattened) -> ModelOutput:
        hidden, packed, extras = self.body.encode(input_ids, attention_mask, token_type_ids, position_ids,
                                                  output_hidden_states, output_attentions, **flattened)
        if self.config.model_type == "distilbert":
            hidden = self.dropout(hidden)
        logits = self.qa_outputs(hidden)  # (T, 2) packed, (B, S, 2) padded
        if packed is not None:
            if packed.batch != len(packed.cu_seqlens) - 1:
                raise InputError("question answering needs one window per row of a padded batch, not a flattened "
                                 "batch: its logits are read per row")
            # Padding gets the lowest float, so the start/end softmax runs over real tokens only (transformers'
            # padded softmax includes pad positions); logits on real tokens are the padded path's.
            logits = packed.to_padded(logits, fill=float(np.finfo(logits.dtype).min))
        result = ModelOutput(start_logits=logits[..., 0], end_logits=logits[..., 1], **padded_extras(packed, extras))
        if start_positions is not None and end_positions is not None:
            seq = logits.shape[1]
            losses = []
            for name, positions in (("start", start_positions), ("end", end_positions)):
                positions = label_array(positions, logits).copy()  # changed below: never the caller's array
                # As transformers: clamp to [0, seq] and ignore seq, so a position past the window adds no loss.
                positions = positions.clip(0, seq)
                positions[positions == seq] = -100
                if packed is not None:  # a position on padding has probability 0 here: it adds no loss either
                    positions[~packed.is_real(positions)] = -100
                losses.append(ops.cross_entropy(result[f"{name}_logits"], positions))
            result.loss = (losses[0] + losses[1]) * 0.5
        return result


class BertForSequenceClassification(SequenceClassification):
    model_type = base_model_prefix = "bert"


class DistilBertForSequenceClassification(SequenceClassification):
    model_type = base_model_prefix = "distilbert"


class BertForTokenClassification(TokenClassification):
    model_type = base_model_prefix = "bert"


class DistilBertForTokenClassification(TokenClassification):
    model_type = base_model_prefix = "distilbert"


class BertForQuestionAnswering(QuestionAnswering):
    model_type = base_model_prefix = "bert"


class DistilBertForQuestionAnswering(QuestionAnswering):
    model_type = base_model_prefix = "distilbert"

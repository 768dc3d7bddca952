"""Task heads on a pretrained body, each written once: its forward and its loss, as transformers computes them.

What differs between architectures, the head's layers (`build_head`) and where its input comes from, each
architecture's file says (bert.py, distilbert.py): BertForSequenceClassification, DistilBertForMaskedLM, ...

- sequence classification: logits from each sequence's first token ([CLS]); cross-entropy (mean squared error
  when num_labels == 1).
- token classification: logits on every token; cross-entropy over the labels that are not -100.
- question answering: start/end logits from qa_outputs (hidden → 2); loss = mean of both cross-entropies.
- masked LM: the pretraining head, its decoder tied to the word embeddings; cross-entropy over labels not -100.

Loading a pretrained body into one of these drops the pretraining head and initializes the new head
(normal, std = initializer_range); `from_pretrained` reports both by name. `replace_head` swaps the head
of a live model, and `from_body` puts a fresh head on the body of any loaded model.
"""
from __future__ import annotations

import numpy as np

from minitransfer import ops
from minitransfer.autograd import Tensor
from minitransfer.backend import get_array_module
from minitransfer.errors import CheckpointError, InputError
from minitransfer.models.config import ModelConfig
from minitransfer.models.inputs import label_array
from minitransfer.models.outputs import ModelOutput, padded_extras, per_token_output
from minitransfer.models.pretrained import PreTrainedModel
from minitransfer.nn import Module
from minitransfer.nn.packing import first_tokens


class TaskModel(PreTrainedModel):
    """A body (`body_class`, built with `body_options`, under `base_model_prefix`) plus the head `build_head` makes."""

    is_head_model = True
    body_class: type
    body_options: dict = {}

    def __init__(self, config: ModelConfig):
        if config.model_type != self.model_type:
            raise ValueError(f"{type(self).__name__} needs a {self.model_type!r} config, got {config.model_type!r}")
        super().__init__(config)
        setattr(self, self.base_model_prefix, self.body_class(config, **self.body_options))
        self.build_head()
        self.tie_weights()

    def build_head(self) -> None:
        raise NotImplementedError

    def replace_head(self, **config_overrides) -> TaskModel:
        """Swap in a freshly initialized head (e.g. replace_head(num_labels=3)); the body is kept."""
        self.config = self.config.update(config_overrides)
        for name in list(self._modules):
            if name != self.base_model_prefix:
                delattr(self, name)
        self.build_head()
        self.tie_weights()
        return self

    @classmethod
    def from_body(cls, model: PreTrainedModel, **config_overrides) -> TaskModel:
        """A new task model with a copy of the body of `model` (a body or any head model) and a fresh head."""
        config = model.body.config.update(config_overrides)
        new = cls.for_model_type(config.model_type)(config)
        new.load_state_dict({f"{new.base_model_prefix}.{k}": v for k, v in model.body.state_dict().items()},
                            strict=False)
        return new

    @classmethod
    def for_model_type(cls, model_type: str) -> type:
        """The concrete class of this task for a body type, e.g. QuestionAnswering → DistilBertForQuestionAnswering."""
        if cls.model_type == model_type:
            return cls
        task = next(c for c in cls.__mro__ if c.__base__ is TaskModel)
        return next(sub for sub in task.__subclasses__() if sub.model_type == model_type)


class SequenceClassification(TaskModel):
    """logits (B, num_labels) = classifier(dropout(pool([CLS]))); labels (B,) ints (floats when num_labels == 1)."""

    def pool(self, cls_hidden: Tensor) -> Tensor:
        """[CLS] hidden states (n, H) → the classifier's input (n, H): BERT's pooler, DistilBERT's pre_classifier."""
        raise NotImplementedError

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                output_hidden_states: bool = False, output_attentions: bool = False, **flattened) -> ModelOutput:
        hidden, packed, extras = self.body.encode(input_ids, attention_mask, token_type_ids, position_ids,
                                                  output_hidden_states, output_attentions, **flattened)
        logits = self.classifier(self.dropout(self.pool(first_tokens(hidden, packed))))
        out = ModelOutput(logits=logits, **padded_extras(packed, extras))
        if labels is not None:
            labels = label_array(labels, logits)
            if self.config.num_labels == 1:
                diff = logits.reshape(-1) - Tensor(labels.astype(logits.dtype))
                out.loss = (diff * diff).mean()
            else:
                out.loss = ops.cross_entropy(logits, labels)
        return out


class TokenClassification(TaskModel):
    """logits (B, S, num_labels) = classifier(dropout(hidden)); labels (B, S) ints, -100 on positions to skip."""

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                output_hidden_states: bool = False, output_attentions: bool = False, **flattened) -> ModelOutput:
        hidden, packed, extras = self.body.encode(input_ids, attention_mask, token_type_ids, position_ids,
                                                  output_hidden_states, output_attentions, **flattened)
        return per_token_output(self.classifier(self.dropout(hidden)), packed, labels, extras)


class QuestionAnswering(TaskModel):
    """start_logits, end_logits (B, S) from qa_outputs(head_input(hidden)); start_positions / end_positions (B,)
    token indices (0 = [CLS])."""

    def head_input(self, hidden: Tensor) -> Tensor:
        """What qa_outputs reads: the hidden states (BERT), or them after dropout (DistilBERT)."""
        return hidden

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                start_positions=None, end_positions=None, output_hidden_states: bool = False,
                output_attentions: bool = False, **flattened) -> ModelOutput:
        hidden, packed, extras = self.body.encode(input_ids, attention_mask, token_type_ids, position_ids,
                                                  output_hidden_states, output_attentions, **flattened)
        logits = self.qa_outputs(self.head_input(hidden))  # (T, 2) packed, (B, S, 2) padded
        if packed is not None:
            if packed.batch != len(packed.cu_seqlens) - 1:
                raise InputError("question answering needs one window per row of a padded batch, not a flattened "
                                 "batch: its logits are read per row")
            # Padding gets the lowest float, so the start/end softmax runs over real tokens only (transformers'
            # padded softmax includes pad positions); logits on real tokens are the padded path's.
            logits = packed.to_padded(logits, fill=float(np.finfo(logits.dtype).min))
        out = ModelOutput(start_logits=logits[..., 0], end_logits=logits[..., 1], **padded_extras(packed, extras))
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
                losses.append(ops.cross_entropy(out[f"{name}_logits"], positions))
            out.loss = (losses[0] + losses[1]) * 0.5
        return out


class MaskedLM(TaskModel):
    """logits (B, S, vocab) = predict(hidden); labels (B, S): the token ids to predict, -100 elsewhere."""

    decoder: Module  # the Linear from transformed hidden states to vocabulary logits (weight tied to the embeddings)

    def transform(self, hidden: Tensor) -> Tensor:
        """The pretraining head before its decoder (dense → activation → LayerNorm): (..., H) → (..., H)."""
        raise NotImplementedError

    def predict(self, hidden: Tensor) -> Tensor:
        """Hidden states (..., H) → vocabulary logits (..., vocab)."""
        return self.decoder(self.transform(hidden))

    def logits_at(self, batch: dict, rows, cols, token_ids=None) -> Tensor:
        """Logits at positions (rows[i], cols[i]): (M, vocab), or (M, len(token_ids)) for those words only; equal to
        self(**batch).logits[rows, cols][:, token_ids] without the decoder (which costs as much per token as
        MiniLM's whole encoder) running anywhere else. Prompts and the bias probe read a few words at one [MASK]."""
        hidden, packed, _ = self.body.encode(batch["input_ids"], batch.get("attention_mask"),
                                             batch.get("token_type_ids"))
        at = (rows, cols) if packed is None else packed.index_of(rows, cols)  # packed: rows of real tokens (T, H)
        picked = self.transform(ops.getitem(hidden, at))
        if token_ids is None:
            return self.decoder(picked)
        weight, bias = self.decoder.weight, self.decoder.bias
        token_ids = get_array_module(weight.data).asarray(token_ids)
        return ops.linear(picked, ops.getitem(weight, token_ids), ops.getitem(bias, token_ids))

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, labels=None,
                output_hidden_states: bool = False, output_attentions: bool = False, **flattened) -> ModelOutput:
        hidden, packed, extras = self.body.encode(input_ids, attention_mask, token_type_ids, position_ids,
                                                  output_hidden_states, output_attentions, **flattened)
        transformed = self.transform(hidden)
        out = per_token_output(self.decoder(transformed), packed, None, extras)
        if labels is not None:
            out.loss = self.masked_lm_loss(transformed, labels, packed)
        return out

    def masked_lm_loss(self, transformed: Tensor, labels, packed) -> Tensor:
        """Mean cross-entropy over the tokens whose label is not -100, as transformers computes it, but with the
        decoder applied again to those rows only (~15% of tokens) for the loss: the full logits are still returned
        (with their graph), yet backward runs the decoder's two GEMMs over the labelled rows alone, not all tokens.
        transformed (T, H) packed or (B, S, H); labels (B, S)."""
        labels = label_array(labels, transformed)
        flat = (labels if packed is None else packed.pack(labels)).reshape(-1)
        xp = get_array_module(flat)
        rows = xp.flatnonzero(flat != -100)
        if rows.size == 0:  # nothing to predict: the loss is 0, as cross_entropy gives with every target ignored
            return ops.cross_entropy(self.decoder(transformed).reshape(flat.size, -1), flat)
        picked = ops.take_rows(transformed.reshape(flat.size, transformed.shape[-1]), rows)
        return ops.cross_entropy(self.decoder(picked), flat[rows])

    def check_new_head(self, missing, source, allow_new_head) -> None:
        if missing and not allow_new_head:
            raise CheckpointError(
                f"{source} has no masked-LM head ({', '.join(missing)} missing): it was saved without its "
                "pretraining head (sentence-transformers checkpoints such as all-MiniLM-L6-v2 are), so fill-mask "
                "would be random. Train a head first (`minitransfer train mlm`), or pass allow_new_head=True to "
                "start one from random weights."
            )

"""feature-extraction: the encoder's last hidden state per text, as transformers' feature-extraction pipeline.

    extract = pipeline("feature-extraction", model="minilm")
    extract("a charming journey")                        # nested lists, [1, seq, hidden]
    extract(["a", "b c"], return_tensors=True)           # one (1, seq_i, hidden) float32 array per text

Each text keeps its own length ([CLS] ... [SEP]), also in a batch (transformers returns a batched text padded to
the batch's longest). A model with a head gives its body's hidden states.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from minitransfer.errors import InputError
from minitransfer.models import AutoModel, PreTrainedModel
from minitransfer.pipelines.base import Pipeline

TOKENIZER_OPTIONS = ("truncation", "max_length")


class FeatureExtractionPipeline(Pipeline):
    """Hidden states (1, seq, hidden) of the encoder's last layer."""

    task = "feature-extraction"
    option_names = ("truncation", "tokenize_kwargs", "return_tensors")
    auto_class, model_kind, new_head_allowed = AutoModel, PreTrainedModel, None
    needs = "a BERT or DistilBERT model"

    def __init__(self, model, tokenizer, **kwargs):
        body = getattr(model, model.base_model_prefix) if model.is_head_model else model
        super().__init__(body, tokenizer, **kwargs)

    def __call__(self, inputs: str | list[str], batch_size: int | None = None, **options) -> Any:
        """inputs: a str or a list of str. Options: return_tensors (False: nested lists; True: NumPy arrays),
        truncation, tokenize_kwargs ({"truncation": True, "max_length": 128})."""
        if isinstance(inputs, list):
            if not inputs:
                raise InputError("inputs is an empty list: pass at least one text")
            return self.run(inputs, options, batch_size)
        return self.run([inputs], options, batch_size)[0]

    def sanitize(self, **options) -> dict[str, Any]:
        kwargs = dict(options.get("tokenize_kwargs") or {})
        if set(kwargs) - set(TOKENIZER_OPTIONS):
            raise InputError(f"tokenize_kwargs takes {TOKENIZER_OPTIONS}, got {sorted(kwargs)}")
        if options.get("truncation") is not None:
            if "truncation" in kwargs:
                raise InputError("truncation is given twice: as an option and in tokenize_kwargs")
            kwargs["truncation"] = options["truncation"]
        out = {"tokenize_kwargs": kwargs} if kwargs else {}
        if options.get("return_tensors") is not None:
            out["return_tensors"] = bool(options["return_tensors"])
        return out

    def preprocess(self, item, options):
        if not isinstance(item, str):
            raise InputError(f"feature-extraction takes a str or a list of str, got {type(item).__name__}")
        return self.tokenize(item, **options.get("tokenize_kwargs", {})), None

    def forward(self, batch, lengths):
        hidden = self.model(**batch).last_hidden_state.numpy()
        return [hidden[i, :n].copy() for i, n in enumerate(lengths)]

    def postprocess(self, state, outputs, options) -> np.ndarray | list:
        hidden = outputs[0][None]  # (1, seq, hidden), as transformers' one-text batch
        return hidden if options.get("return_tensors") else hidden.tolist()

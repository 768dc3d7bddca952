"""text-classification (alias sentiment-analysis): a label and its probability per text, as transformers 5 gives them.

    classify = pipeline("text-classification", model="runs/sst2")
    classify("a charming journey")                     # [{"label": "positive", "score": 0.98}]
    classify(["a charming journey", "bleak"])          # [{...}, {...}]: one dict per text
    classify("a charming journey", top_k=None)         # every label, best first: [{...}, {...}]
    classify({"text": "He left.", "text_pair": "He is gone."})      # a pair: a dict (not in a list)

The nesting is transformers' own: a str without top_k gives a list of one dict; with top_k (also top_k=1) the
sorted list of that text's labels; a list gives one such result per text. A pipeline built with top_k=... keeps
transformers' quirk: a str called without top_k is wrapped in one more list.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from minitransfer.errors import InputError
from minitransfer.models import AutoModelForSequenceClassification
from minitransfer.models.heads import SequenceClassification
from minitransfer.pipelines.base import Pipeline, check_positive_int

FUNCTIONS = ("softmax", "sigmoid", "none")
TOKENIZER_OPTIONS = ("truncation", "max_length")


class TextClassificationPipeline(Pipeline):
    """Scores of a sequence classifier's labels: softmax over the labels (sigmoid when num_labels == 1, and for
    config.problem_type "multi_label_classification"; none for "regression"), labels from config.id2label."""

    task = "text-classification"
    option_names = ("top_k", "function_to_apply", *TOKENIZER_OPTIONS)
    auto_class, model_kind, new_head_allowed = AutoModelForSequenceClassification, SequenceClassification, False
    needs = "a fine-tuned sequence classifier (`minitransfer train classification` makes one)"

    def __call__(self, inputs: str | dict | list, batch_size: int | None = None,
                 **options) -> list[dict[str, Any]] | list[list[dict[str, Any]]] | dict[str, Any]:
        """inputs: a str, a {"text", "text_pair"} dict, or a list of those. Options: top_k (1; None: every label),
        function_to_apply ("softmax", "sigmoid", "none"; default by config), truncation, max_length."""
        if isinstance(inputs, list):
            if not inputs:
                raise InputError("inputs is an empty list: pass at least one text")
            return self.run(inputs, options, batch_size)
        result = self.run([inputs], options, batch_size)[0]
        return [result] if isinstance(inputs, str) and "top_k" not in options else result

    def sanitize(self, **options) -> dict[str, Any]:
        out = {name: options[name] for name in TOKENIZER_OPTIONS if name in options}
        if "top_k" in options:  # given (even top_k=1): a sorted list per text instead of one dict
            top_k = options["top_k"]
            out["top_k"] = None if top_k is None else check_positive_int("top_k", top_k)
            out["sorted_list"] = True
        function = options.get("function_to_apply")
        if function is not None:
            if str(function).lower() not in FUNCTIONS:
                raise InputError(f"function_to_apply must be one of {FUNCTIONS}, got {function!r}")
            out["function_to_apply"] = str(function).lower()
        return out

    def preprocess(self, item, options):
        kwargs = {name: options[name] for name in TOKENIZER_OPTIONS if name in options}
        if isinstance(item, str):
            return self.tokenize(item, **kwargs), None
        if isinstance(item, dict):
            extra = sorted(set(item) - {"text", "text_pair"})
            if "text" not in item or extra:
                raise InputError(f"a text pair is a dict {{'text': ..., 'text_pair': ...}}, got keys {sorted(item)}")
            return self.tokenize(item["text"], item.get("text_pair"), **kwargs), None
        raise InputError(f"text-classification takes a str, a {{'text', 'text_pair'}} dict or a list of those, got "
                         f"{type(item).__name__}" + (": send a text pair as a dict" if isinstance(item, list) else ""))

    def forward(self, batch, lengths):
        return list(self.model(**batch).logits.numpy())

    def postprocess(self, state, outputs, options):
        logits = outputs[0].astype(np.float64)
        function = options.get("function_to_apply") or self._default_function()
        if function == "softmax":
            scores = np.exp(logits - logits.max())
            scores /= scores.sum()
        elif function == "sigmoid":
            scores = 1.0 / (1.0 + np.exp(-logits))
        else:
            scores = logits
        names = self._label_names()
        if not options.get("sorted_list"):
            best = int(scores.argmax())
            return {"label": names[best], "score": float(scores[best])}
        ranked = sorted(({"label": names[i], "score": float(s)} for i, s in enumerate(scores)),
                        key=lambda d: d["score"], reverse=True)
        top_k = options.get("top_k", 1)
        return ranked if top_k is None else ranked[:top_k]

    def _default_function(self) -> str:
        """transformers' default: none for regression, sigmoid for multi-label or one label, softmax otherwise."""
        config = self.model.config
        problem = getattr(config, "problem_type", None)
        if problem == "regression":
            return "none"
        if problem == "multi_label_classification" or config.num_labels == 1:
            return "sigmoid"
        return "softmax"

    def _label_names(self) -> dict[int, str]:
        config = self.model.config
        names = getattr(config, "id2label", None) or {}
        return {i: names.get(i, f"LABEL_{i}") for i in range(config.num_labels)}

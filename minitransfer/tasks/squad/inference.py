"""Run a question-answering model over SQuAD windows, and answer one question about a context of any length.

    start, end = run_model(model, features)                         # (n_windows, max_length) each
    answer("Who led the brotherhood?", context, model, tok)         # {"answer": "an abbot", "score": .., ...}

`model` is any callable taking input_ids, attention_mask, token_type_ids (batch, seq) and returning a
ModelOutput with start_logits and end_logits (batch, seq), as Tensors or arrays — e.g. a
BertForQuestionAnswering in eval mode (call model.eval() first, so dropout is off).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from minitransfer.autograd import no_grad
from minitransfer.backend import to_numpy
from minitransfer.errors import InputError
from minitransfer.tasks.squad.data import SquadExample
from minitransfer.tasks.squad.features import SquadFeatures, prepare_eval_features
from minitransfer.tasks.squad.postprocess import postprocess_predictions


def _array(x: Any) -> np.ndarray:
    return to_numpy(getattr(x, "data", x))  # a Tensor's array, or an array as is


def run_model(model, features: SquadFeatures, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """start_logits, end_logits (n_windows, max_length) float32 of `model` on every window, without gradients.

    Each batch is cut to its longest window (the rest is padding, which attention ignores), so short
    windows cost less; logits of the cut-off padding are -inf.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    n, max_length = features.input_ids.shape
    start_logits = np.full((n, max_length), -np.inf, dtype=np.float32)
    end_logits = np.full((n, max_length), -np.inf, dtype=np.float32)
    lengths = features.attention_mask.sum(axis=1)
    with no_grad():
        for begin in range(0, n, batch_size):
            rows = slice(begin, begin + batch_size)
            width = int(lengths[rows].max())
            inputs = {name: array[:, :width] for name, array in features.model_inputs(rows).items()}
            out = model(**inputs)
            for name, target in (("start_logits", start_logits), ("end_logits", end_logits)):
                logits = _array(out[name])
                if logits.shape != inputs["input_ids"].shape:
                    raise InputError(f"the model's {name} have shape {logits.shape}; expected (batch, seq) = "
                                     f"{inputs['input_ids'].shape}")
                target[rows, :width] = logits
    return start_logits, end_logits


def answer(question: str, context: str, model, tokenizer, max_length: int = 384, doc_stride: int = 128,
           max_answer_length: int = 30, batch_size: int = 32) -> dict[str, Any]:
    """The best answer span to `question` in `context`, over all windows of a long context.

    Returns {"answer": text, "score": start_logit + end_logit, "probability": softmax of the score over the
    n-best spans, "start": character offset, "end": character offset (exclusive)} with
    context[start:end] == answer; answer "" (score -inf, start = end = -1) when no span qualifies.
    Raises InputError for an empty question or context, or a question too long for max_length.
    """
    for name, text in (("question", question), ("context", context)):
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"the {name} is empty; pass a non-empty string")
    examples = [SquadExample(id="0", title="", context=context, question=question)]
    features = prepare_eval_features(examples, tokenizer, max_length=max_length, doc_stride=doc_stride)
    start_logits, end_logits = run_model(model, features, batch_size)
    _, nbest = postprocess_predictions(examples, features, start_logits, end_logits,
                                       max_answer_length=max_answer_length, return_nbest=True)
    if not nbest["0"]:
        return {"answer": "", "score": float("-inf"), "probability": 0.0, "start": -1, "end": -1}
    best = nbest["0"][0]
    return {"answer": best["text"], "score": best["score"], "probability": best["probability"],
            "start": best["start"], "end": best["end"]}

"""Sequence classification as a task: tokenized features from a ClassificationDataset, and its metrics."""
from __future__ import annotations

from minitransfer.errors import InputError
from minitransfer.tasks.batching import ArrayDataset
from minitransfer.tasks.classification_data import ClassificationDataset
from minitransfer.tasks.metrics import classification_metrics


def encode_classification(dataset: ClassificationDataset, tokenizer, max_length: int = 128) -> ArrayDataset:
    """Tokenize texts (and pairs) with truncation to max_length; labels (n,).

    Returns an ArrayDataset padded to the longest example; batches are trimmed to their own longest
    row, so padding stays dynamic.
    """
    if len(dataset) == 0:
        raise InputError(f"{dataset.source}: no examples to encode")
    pairs = dataset.text_pairs() if dataset.has_pairs else None
    enc = tokenizer(dataset.texts(), pairs, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    arrays = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
    arrays["labels"] = dataset.labels()
    return ArrayDataset(arrays)


def make_compute_metrics(label_names: list[str]):
    """compute_metrics for the Trainer: accuracy, macro-F1, and F1 of the last class when binary."""

    def compute(eval_pred) -> dict:  # an EvalPrediction: (logits (n, num_labels), labels (n,))
        logits, labels = eval_pred
        preds = logits.argmax(-1)
        full = classification_metrics(preds, labels, label_names)
        metrics = {"accuracy": full["accuracy"], "macro_f1": full["macro_f1"]}
        if len(label_names) == 2:  # the positive class (spam, paraphrase, positive) is the last label
            metrics["f1"] = full["per_class"][label_names[1]]["f1"]
        return metrics

    return compute

"""Classification metrics over label ids: accuracy, per-class precision/recall/F1, macro-F1 (pure NumPy), and the
Trainer's compute_metrics built from them.

A ratio with a zero denominator is 0.0, never NaN (as sklearn's zero_division=0): a class that is never
predicted has precision 0, a class that never occurs has recall 0.
"""
from __future__ import annotations

import numpy as np

from minitransfer.backend import to_numpy
from minitransfer.errors import InputError


def _check(preds, labels) -> tuple[np.ndarray, np.ndarray]:
    """preds and labels as equal-length 1-D integer NumPy arrays, shape (n,)."""
    preds, labels = np.asarray(to_numpy(preds)), np.asarray(to_numpy(labels))
    if preds.ndim != 1 or labels.ndim != 1:
        raise InputError(f"preds and labels must be label ids of shape (n,), got {preds.shape} and {labels.shape}; "
                         "take logits.argmax(-1) first")
    if preds.shape != labels.shape:
        raise InputError(f"preds and labels differ in length: {preds.shape[0]} vs {labels.shape[0]}")
    if preds.size == 0:
        raise InputError("no predictions to score (preds and labels are empty)")
    for name, a in (("preds", preds), ("labels", labels)):
        if not np.issubdtype(a.dtype, np.integer):
            raise InputError(f"{name} must be integer label ids, got dtype {a.dtype}")
    return preds, labels


def _ratio(num: int, den: int) -> float:
    return float(num) / den if den else 0.0


def accuracy(preds, labels) -> float:
    """Fraction of predictions equal to the label; preds, labels: (n,) label ids."""
    preds, labels = _check(preds, labels)
    return float(np.mean(preds == labels))


def precision_recall_f1(preds, labels, positive: int = 1) -> tuple[float, float, float]:
    """(precision, recall, F1) of class `positive` against the rest; preds, labels: (n,) label ids."""
    preds, labels = _check(preds, labels)
    predicted, actual = preds == positive, labels == positive
    true_pos = int(np.sum(predicted & actual))
    precision = _ratio(true_pos, int(np.sum(predicted)))
    recall = _ratio(true_pos, int(np.sum(actual)))
    f1 = 2 * precision * recall / (precision + recall) if true_pos else 0.0
    return precision, recall, f1


def macro_f1(preds, labels, num_labels: int | None = None) -> float:
    """Unweighted mean of per-class F1.

    Classes: 0 .. num_labels-1 when given, else those that occur in preds or labels (sklearn's default).
    """
    preds, labels = _check(preds, labels)
    classes = range(num_labels) if num_labels is not None else np.union1d(preds, labels)
    return float(np.mean([precision_recall_f1(preds, labels, int(c))[2] for c in classes]))


def classification_metrics(preds, labels, label_names: list[str]) -> dict:
    """Accuracy, macro-F1 and per-class precision/recall/F1/support keyed by label name.

    Returns {"accuracy": float, "macro_f1": float, "per_class": {name: {"precision", "recall", "f1", "support"}}}.
    macro_f1 averages over the classes that occur in preds or labels, so a label the eval set never mentions
    does not pull it down; per_class lists every name (support 0 for an absent class).
    """
    preds, labels = _check(preds, labels)
    largest = int(max(preds.max(), labels.max()))
    if largest >= len(label_names) or min(preds.min(), labels.min()) < 0:
        raise InputError(f"label ids must lie in 0..{len(label_names) - 1} for labels {label_names}, "
                         f"found ids {sorted(set(np.union1d(preds, labels).tolist()))}")
    per_class = {}
    for i, name in enumerate(label_names):
        precision, recall, f1 = precision_recall_f1(preds, labels, i)
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(np.sum(labels == i))}
    return {"accuracy": accuracy(preds, labels), "macro_f1": macro_f1(preds, labels), "per_class": per_class}


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

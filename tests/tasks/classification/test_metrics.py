"""Metrics against values computed by hand on small arrays (sklearn is not a dependency)."""
import numpy as np
import pytest

from minitransfer.errors import InputError
from minitransfer.tasks.classification.metrics import accuracy, classification_metrics, macro_f1, precision_recall_f1

# Hand-counted confusion, positive = 1:
#   labels 1 1 1 1 0 0 0 0 0 0
#   preds  1 1 1 0 1 1 0 0 0 0   → TP 3, FN 1, FP 2, TN 4
LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
PREDS = np.array([1, 1, 1, 0, 1, 1, 0, 0, 0, 0])


def test_accuracy():
    assert accuracy(PREDS, LABELS) == pytest.approx(7 / 10)
    assert accuracy([2, 0], [2, 0]) == 1.0


def test_precision_recall_f1_binary():
    p, r, f1 = precision_recall_f1(PREDS, LABELS)
    assert (p, r) == (pytest.approx(3 / 5), pytest.approx(3 / 4))
    assert f1 == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))  # 2TP / (2TP + FP + FN) = 6/9
    # Class 0 as positive: TP 4, FP 1, FN 2.
    p, r, f1 = precision_recall_f1(PREDS, LABELS, positive=0)
    assert (p, r, f1) == (pytest.approx(4 / 5), pytest.approx(4 / 6), pytest.approx(8 / 11))


def test_class_never_predicted_is_zero_not_nan():
    p, r, f1 = precision_recall_f1([0, 0, 0], [1, 0, 1], positive=1)
    assert (p, r, f1) == (0.0, 0.0, 0.0)


def test_class_never_present_is_zero_not_nan():
    p, r, f1 = precision_recall_f1([1, 0], [0, 0], positive=1)  # predicted once, never true
    assert (p, r, f1) == (0.0, 0.0, 0.0)


def test_macro_f1():
    assert macro_f1(PREDS, LABELS) == pytest.approx((6 / 9 + 8 / 11) / 2)
    # Three classes: labels [0,1,2,2], preds [0,2,2,1] → F1 class0 = 1, class1 = 0, class2 = 2*1/(2+1+1) = 0.5.
    assert macro_f1([0, 2, 2, 1], [0, 1, 2, 2]) == pytest.approx(1.5 / 3)
    # num_labels adds an absent class with F1 0.
    assert macro_f1([0, 1], [0, 1], num_labels=3) == pytest.approx(2 / 3)
    assert macro_f1([0, 1], [0, 1]) == 1.0


def test_classification_metrics():
    m = classification_metrics(PREDS, LABELS, ["negative", "positive"])
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["macro_f1"] == pytest.approx((6 / 9 + 8 / 11) / 2)
    assert m["per_class"]["positive"] == {"precision": pytest.approx(0.6), "recall": pytest.approx(0.75),
                                          "f1": pytest.approx(6 / 9), "support": 4}
    assert m["per_class"]["negative"]["support"] == 6


def test_classification_metrics_absent_class():
    m = classification_metrics(np.array([0, 0]), np.array([0, 0]), ["ham", "spam"])
    assert m["per_class"]["spam"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["macro_f1"] == 1.0  # only classes that occur are averaged


@pytest.mark.parametrize("preds, labels, message", [
    (np.zeros((2, 2), dtype=int), np.array([0, 1]), r"shape \(n,\).*argmax"),
    (np.array([0, 1, 1]), np.array([0, 1]), "differ in length: 3 vs 2"),
    (np.array([], dtype=int), np.array([], dtype=int), "no predictions"),
    (np.array([0.0, 1.0]), np.array([0, 1]), "preds must be integer label ids"),
])
def test_bad_inputs(preds, labels, message):
    with pytest.raises(InputError, match=message):
        accuracy(preds, labels)


def test_classification_metrics_id_out_of_range():
    with pytest.raises(InputError, match=r"label ids must lie in 0\.\.1"):
        classification_metrics(np.array([0, 2]), np.array([0, 1]), ["a", "b"])

"""Sentence and sentence-pair classification (SST-2, MRPC, SMS Spam, any CSV / JSONL).

    train = read_classification_file("sst2/train.tsv")        # data.py: format sniffed, label ids fixed
    encode_classification(train, tokenizer, max_length=128)    # features.py: an ArrayDataset for the Trainer
    make_compute_metrics(train.label_names)                    # metrics.py: accuracy, macro-F1, F1
    train_classification(model, "train.tsv", "dev.tsv", args)  # recipe.py: fine-tune, keep the best model
"""
from minitransfer.tasks.classification.data import (
    ClassificationDataset,
    Example,
    detect_format,
    read_classification_file,
)
from minitransfer.tasks.classification.features import encode_classification
from minitransfer.tasks.classification.metrics import (
    accuracy,
    classification_metrics,
    macro_f1,
    make_compute_metrics,
    precision_recall_f1,
)
from minitransfer.tasks.classification.recipe import (
    Recipe,
    evaluate_classifier,
    load_classifier,
    predict_texts,
    train_classification,
)

__all__ = [
    "ClassificationDataset", "Example", "Recipe", "accuracy", "classification_metrics", "detect_format",
    "encode_classification", "evaluate_classifier", "load_classifier", "macro_f1", "make_compute_metrics",
    "precision_recall_f1", "predict_texts", "read_classification_file", "train_classification",
]

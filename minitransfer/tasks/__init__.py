"""Tasks: data readers and metrics (classification here; other tasks add their own modules)."""
from minitransfer.tasks.classification_data import (
    ClassificationDataset,
    Example,
    detect_format,
    read_classification_file,
    shipped_data_path,
)
from minitransfer.tasks.metrics import accuracy, classification_metrics, macro_f1, precision_recall_f1

__all__ = [
    "ClassificationDataset", "Example", "accuracy", "classification_metrics", "detect_format", "macro_f1",
    "precision_recall_f1", "read_classification_file", "shipped_data_path",
]

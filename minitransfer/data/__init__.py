"""Data below the Trainer: datasets of features, batches with dynamic padding, collators, BERT's masking, a
feature cache, and the data files shipped with the package (sst2/, squad/, movie_reviews/ beside this file)."""
from minitransfer.data.batching import ArrayDataset, pad_collate
from minitransfer.data.collators import (
    DataCollatorForLanguageModeling,
    DataCollatorForTokenClassification,
    DataCollatorWithFlattening,
    DataCollatorWithPadding,
    default_data_collator,
)
from minitransfer.data.masking import MLMMasker
from minitransfer.data.shipped import shipped_data_path

__all__ = [
    "ArrayDataset", "DataCollatorForLanguageModeling", "DataCollatorForTokenClassification",
    "DataCollatorWithFlattening", "DataCollatorWithPadding", "MLMMasker", "default_data_collator", "pad_collate",
    "shipped_data_path",
]

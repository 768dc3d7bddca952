"""Sequence classification features: a ClassificationDataset tokenized into model inputs and labels."""
from __future__ import annotations

from minitransfer.data.batching import ArrayDataset
from minitransfer.errors import InputError
from minitransfer.tasks.classification.data import ClassificationDataset


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

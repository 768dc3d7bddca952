"""Datasets of tokenized features, and the batches the Trainer cuts from them (dynamic padding).

A dataset is anything with `__len__` and `__getitem__(i) -> dict[str, array | int]` (one example's
unpadded features), or an `ArrayDataset` of equal-length arrays, which slices whole batches at once.
An epoch's batches are a pure function of (seed, epoch), so a resumed run replays them exactly.
"""
from __future__ import annotations

import numpy as np

from minitransfer import backend
from minitransfer.errors import InputError

SEQUENCE_KEYS = ("input_ids", "attention_mask", "token_type_ids")
LABEL_PAD = -100  # cross_entropy's ignore_index, for token-level labels


class ArrayDataset:
    """Features already padded to one length: dict of arrays whose first axis is the example."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        lengths = {k: len(v) for k, v in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise InputError(f"feature arrays differ in length: {lengths}")
        self.arrays = arrays

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.arrays.items()}

    def batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return trim_padding({k: v[indices] for k, v in self.arrays.items()})


def trim_padding(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Cut columns that are padding in every row (dynamic padding for pre-padded arrays)."""
    if "attention_mask" not in batch:
        return batch
    longest = int(batch["attention_mask"].sum(axis=1).max())
    if longest == batch["attention_mask"].shape[1]:
        return batch
    def is_sequence(key, value):
        return key in SEQUENCE_KEYS or (key == "labels" and value.ndim == 2)

    return {k: (v[:, :longest] if is_sequence(k, v) else v) for k, v in batch.items()}


def pad_collate(features: list[dict], pad_token_id: int = 0) -> dict[str, np.ndarray]:
    """Pad a list of single-example features to the longest sequence in the batch.

    input_ids pad with pad_token_id, attention_mask/token_type_ids with 0, token-level labels with -100;
    scalar fields (labels, positions) are stacked. Returns int64 arrays (batch, seq).
    """
    if not features:
        raise InputError("cannot make a batch of zero examples")
    longest = max(len(f["input_ids"]) for f in features)
    batch = {}
    for key in features[0]:
        values = [f[key] for f in features]
        if key in SEQUENCE_KEYS or (key == "labels" and np.ndim(values[0]) == 1):
            fill = pad_token_id if key == "input_ids" else (LABEL_PAD if key == "labels" else 0)
            out = np.full((len(values), longest), fill, dtype=np.int64)
            for row, v in zip(out, values):
                row[: len(v)] = v
            batch[key] = out
        else:
            batch[key] = np.asarray(values)
    return batch


def batch_to_device(batch: dict, device: str) -> dict:
    """The batch's arrays on `device` (the model's); on "cpu" the batch as it is."""
    return batch if device == "cpu" else {k: backend.to_device(v, device) for k, v in batch.items()}


def epoch_order(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled example order of one epoch: a pure function of (seed, epoch), so resuming can replay it."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def example_lengths(dataset) -> np.ndarray:
    """Real (unpadded) token count of every example: (num_examples,) int64."""
    if hasattr(dataset, "arrays") and "attention_mask" in dataset.arrays:
        return np.asarray(dataset.arrays["attention_mask"]).sum(axis=1).astype(np.int64)
    return np.array([len(dataset[i]["input_ids"]) for i in range(len(dataset))], dtype=np.int64)


def length_grouped_order(lengths: np.ndarray, batch_size: int, seed: int, epoch: int,
                         megabatch_batches: int = 50) -> np.ndarray:
    """A shuffled order whose consecutive batch_size chunks hold examples of similar length (transformers'
    group_by_length): shuffle, cut into megabatches of `megabatch_batches` batches, sort each by length
    (longest first), and put the megabatch holding the longest example first so a too-large batch fails at
    step one. Batches stay random across the epoch, but dynamic padding pads to ~its own length, not to the
    longest of 32 random sentences (SST-2: 40 tokens padded per row at random, ~14 grouped).
    A pure function of (lengths, seed, epoch), like epoch_order, so a resumed run replays it."""
    order = epoch_order(len(lengths), seed, epoch)
    if not len(order):
        return order
    size = megabatch_batches * batch_size
    megabatches = [order[i:i + size] for i in range(0, len(order), size)]
    megabatches = [m[np.argsort(-lengths[m], kind="stable")] for m in megabatches]
    longest = max(range(len(megabatches)), key=lambda i: lengths[megabatches[i][0]])
    megabatches[0], megabatches[longest] = megabatches[longest], megabatches[0]
    return np.concatenate(megabatches)


def token_budget_batches(order: np.ndarray, lengths: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """Cut `order` into consecutive batches of at most `max_tokens` real tokens each (fairseq's max_tokens).

    With padding-free models a batch costs its real tokens, not rows x longest row, so a budget of tokens keeps
    every step's work about equal. An example longer than the budget makes a batch of its own.
    """
    if max_tokens <= 0:
        raise InputError(f"max_tokens_per_batch must be > 0, got {max_tokens}")
    batches, start, used = [], 0, 0
    for i, example in enumerate(order):
        n = int(lengths[example])
        if used and used + n > max_tokens:
            batches.append(order[start:i])
            start, used = i, 0
        used += n
    if start < len(order):
        batches.append(order[start:])
    return batches


def epoch_batches(num_examples: int, batch_size: int, seed: int, epoch: int, lengths: np.ndarray | None = None,
                  group_by_length: bool = False, max_tokens: int = 0) -> list[np.ndarray]:
    """The epoch's batches of example indices: a shuffled order (grouped by length when asked; needs `lengths`)
    cut into batch_size rows, or into batches of at most max_tokens real tokens when max_tokens > 0."""
    if group_by_length:
        order = length_grouped_order(lengths, batch_size, seed, epoch)
    else:
        order = epoch_order(num_examples, seed, epoch)
    if max_tokens:
        return token_budget_batches(order, lengths, max_tokens)
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]

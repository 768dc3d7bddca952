"""The Trainer's batches: which examples each optimizer step takes, and the columns a model is given.

    steps = epoch_steps(len(dataset), args, world_size, epoch, lengths)    # [[global batch of indices] * accum]
    batch = collate(dataset, indices, collator, forward_arguments(model))   # labels renamed, unused columns dropped
"""
from __future__ import annotations

import inspect
import math

import numpy as np

from minitransfer.data.batching import epoch_batches
from minitransfer.models.outputs import FLATTENED_KEYS

LABEL_RENAMES = {"label": "labels", "label_ids": "labels"}


def forward_arguments(model) -> set[str] | None:
    """The keyword names the model's forward takes (None: it takes any); flattened-batch keys when it has **kwargs."""
    try:
        parameters = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return None
    names = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if any(p.kind == p.VAR_KEYWORD for p in parameters):
        names |= set(FLATTENED_KEYS) | {"position_ids"}
    return names


def collate(dataset, indices, collator, accepted: set[str] | None) -> dict:
    """The batch of `indices` (an ArrayDataset slices whole arrays at once; other datasets go through `collator`),
    `label`/`label_ids` renamed `labels` and, when `accepted` is given, only the columns the model takes."""
    def keep(features: dict) -> dict:
        features = {LABEL_RENAMES.get(k, k): v for k, v in features.items()}
        return features if accepted is None else {k: v for k, v in features.items() if k in accepted}

    if hasattr(dataset, "batch"):
        return keep(dataset.batch(np.asarray(indices)))
    return collator([keep(dict(dataset[int(i)])) for i in indices])


def epoch_steps(num_examples: int, args, world: int, epoch: int, lengths=None) -> list[list[np.ndarray]]:
    """The epoch's batches (global: per_device_train_batch_size rows for each rank, which takes its own slice)
    grouped into optimizer steps of gradient_accumulation_steps batches; a trailing group shorter than that is
    dropped (unless it is the only one). lengths: the examples' token counts (group_by_length, token budget)."""
    batches = epoch_batches(num_examples, args.per_device_train_batch_size * world, args.seed, epoch, lengths,
                            args.group_by_length, args.max_tokens_per_batch * world)
    accum = args.gradient_accumulation_steps
    steps = [batches[i:i + accum] for i in range(0, len(batches) - accum + 1, accum)]
    return steps or [batches]


def steps_in_epoch(num_examples: int, args, world: int, epoch: int = 0, lengths=None) -> int:
    if args.max_tokens_per_batch:  # the number of batches depends on the epoch's order
        return len(epoch_steps(num_examples, args, world, epoch, lengths))
    batches = math.ceil(num_examples / (args.per_device_train_batch_size * world))
    return max(batches // args.gradient_accumulation_steps, 1)


def total_steps(num_examples: int, args, world: int, lengths=None) -> int:
    """The run's optimizer steps: max_steps, or num_train_epochs (a fraction too) of epochs."""
    if args.max_steps > 0:
        return args.max_steps
    epochs, whole = args.num_train_epochs, int(args.num_train_epochs)
    if not args.max_tokens_per_batch:
        return math.ceil(steps_in_epoch(num_examples, args, world) * epochs)
    total = sum(steps_in_epoch(num_examples, args, world, e, lengths) for e in range(whole))
    if epochs > whole:
        total += math.ceil(steps_in_epoch(num_examples, args, world, whole, lengths) * (epochs - whole))
    return total

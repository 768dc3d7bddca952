"""The Trainer's batches: which examples each optimizer step takes (an order that is a pure function of seed and
epoch, data/batching.py) and the columns the model is given."""
from __future__ import annotations

import inspect
import math

import numpy as np

from minitransfer.data.batching import epoch_batches, example_lengths
from minitransfer.models.inputs import FLATTENED_KEYS

LABEL_RENAMES = {"label": "labels", "label_ids": "labels"}


class Batching:
    """The Trainer's batching methods; they read its args, train_dataset, data_collator and world size."""

    def _features(self, dataset, indices) -> dict:
        """The collated batch of `indices`: labels renamed, columns the model does not take dropped."""
        if hasattr(dataset, "batch"):  # ArrayDataset: whole arrays at once
            return self._keep_model_inputs(dataset.batch(np.asarray(indices)))
        return self.data_collator([self._keep_model_inputs(dict(dataset[int(i)])) for i in indices])

    def _keep_model_inputs(self, features: dict) -> dict:
        features = {LABEL_RENAMES.get(k, k): v for k, v in features.items()}
        if not self.args.remove_unused_columns or self._accepted is None:
            return features
        return {k: v for k, v in features.items() if k in self._accepted}

    def _epoch_steps(self, epoch: int) -> list[list[np.ndarray]]:
        """The epoch's batches (global: per_device_train_batch_size rows for each rank, which takes its own slice)
        grouped into optimizer steps of gradient_accumulation_steps batches; a trailing group shorter than that is
        dropped (unless it is the only one)."""
        a, world = self.args, self._world_size()
        if (a.group_by_length or a.max_tokens_per_batch) and self._lengths is None:
            self._lengths = example_lengths(self.train_dataset)
        batches = epoch_batches(len(self.train_dataset), a.per_device_train_batch_size * world, a.seed, epoch,
                                self._lengths, a.group_by_length, a.max_tokens_per_batch * world)
        accum = a.gradient_accumulation_steps
        steps = [batches[i:i + accum] for i in range(0, len(batches) - accum + 1, accum)]
        return steps or [batches]

    def steps_per_epoch(self, epoch: int = 0) -> int:
        if self.args.max_tokens_per_batch:  # the number of batches depends on the epoch's order
            return len(self._epoch_steps(epoch))
        batches = math.ceil(len(self.train_dataset) / (self.args.per_device_train_batch_size * self._world_size()))
        return max(batches // self.args.gradient_accumulation_steps, 1)

    def total_steps(self) -> int:
        if self.args.max_steps > 0:
            return self.args.max_steps
        epochs = self.args.num_train_epochs
        if not self.args.max_tokens_per_batch:
            return math.ceil(self.steps_per_epoch() * epochs)
        whole = int(epochs)
        total = sum(self.steps_per_epoch(e) for e in range(whole))
        return total + math.ceil(self.steps_per_epoch(whole) * (epochs - whole)) if epochs > whole else total


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

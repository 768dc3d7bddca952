"""Masked-LM pseudo-perplexity: exp of the model's own MLM loss over one fixed masking of held-out text."""
from __future__ import annotations

import numpy as np

from minitransfer import backend
from minitransfer.autograd import no_grad
from minitransfer.data.batching import LABEL_PAD, ArrayDataset
from minitransfer.errors import InputError


def masked_lm_perplexity(model, dataset: ArrayDataset, batch_size: int = 64) -> dict:
    """Masked-LM pseudo-perplexity: exp of the mean cross-entropy over every masked token of `dataset`.

    dataset: from fixed_masking (input_ids corrupted, labels -100 off the masked positions). This is not a
    left-to-right perplexity; it compares models only on the same masked positions.
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with no_grad():
        for start in range(0, len(dataset), batch_size):
            batch = dataset.batch(np.arange(start, min(start + batch_size, len(dataset))))
            batch = {k: backend.to_device(v, model.device) for k, v in batch.items()}
            n = int((batch["labels"] != LABEL_PAD).sum())
            if n:  # the loss is the mean over the batch's masked tokens: weighted by their count
                total += model(**batch).loss.item() * n
                count += n
    model.train(was_training)
    if not count:
        raise InputError("no token was masked in the held-out text: give more (or longer) held-out text")
    loss = total / count
    return {"perplexity": float(np.exp(loss)), "loss": loss, "masked_tokens": count}

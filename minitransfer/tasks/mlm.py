"""Masked language modelling as a task: the masking collator, text datasets, the loss, and pseudo-perplexity.

Masking follows BERT: each candidate token (never [CLS]/[SEP]/[PAD] or any special token) is selected
with probability 0.15; a selected token becomes [MASK] 80% of the time, a random token 10%, and stays
itself 10%. With whole-word masking a word (a token and its "##" continuation pieces) is selected as a
unit, then each of its pieces gets its own 80/10/10 draw (as BERT's create_pretraining_data.py).

The loss computes vocabulary logits only at the selected positions: the decoder (hidden → 30,522 words)
costs as much as MiniLM's whole encoder per token, and only ~15% of tokens need it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from minitransfer import backend, ops
from minitransfer import random as mt_random
from minitransfer.autograd import Tensor, no_grad
from minitransfer.backend import get_array_module
from minitransfer.errors import InputError
from minitransfer.models.outputs import ModelOutput
from minitransfer.models.wrapper import ModelWrapper
from minitransfer.tasks.batching import LABEL_PAD, SEQUENCE_KEYS, ArrayDataset, pad_collate


class MLMMasker:
    """Choose and corrupt tokens for masked-LM training.

    special_token_ids: never selected (padding is also never selected, by attention_mask or pad id).
    continuation: boolean (vocab_size,) marking "##" pieces; given, masking is whole-word.
    """

    def __init__(self, vocab_size: int, mask_token_id: int, special_token_ids: list[int], pad_token_id: int = 0,
                 mlm_probability: float = 0.15, mask_replace_prob: float = 0.8, random_replace_prob: float = 0.1,
                 continuation: np.ndarray | None = None):
        if not 0 < mlm_probability < 1:
            raise InputError(f"mlm_probability must lie in (0, 1), got {mlm_probability}")
        if mask_replace_prob < 0 or random_replace_prob < 0 or mask_replace_prob + random_replace_prob > 1:
            raise InputError("mask_replace_prob and random_replace_prob must be >= 0 and sum to at most 1")
        self.mask_token_id, self.pad_token_id = mask_token_id, pad_token_id
        self.mlm_probability = mlm_probability
        self.mask_replace_prob, self.random_replace_prob = mask_replace_prob, random_replace_prob
        self.special = np.zeros(vocab_size, dtype=bool)
        self.special[list(special_token_ids) + [pad_token_id]] = True
        self.random_pool = np.flatnonzero(~self.special)  # a random replacement is never a special token
        self.continuation = continuation

    @classmethod
    def from_tokenizer(cls, tokenizer, mlm_probability: float = 0.15, whole_word: bool = False) -> MLMMasker:
        size = len(tokenizer)
        continuation = None
        if whole_word:
            tokens = tokenizer.convert_ids_to_tokens(list(range(size)))
            continuation = np.array([t.startswith("##") for t in tokens])
        return cls(size, tokenizer.mask_token_id, tokenizer.all_special_ids, tokenizer.pad_token_id, mlm_probability,
                   continuation=continuation)

    @property
    def whole_word(self) -> bool:
        return self.continuation is not None

    def select(self, input_ids: np.ndarray, attention_mask: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        """Boolean (batch, seq): the tokens whose original id the model must predict."""
        candidate = ~self.special[input_ids]
        if attention_mask is not None:
            candidate &= attention_mask.astype(bool)
        if not self.whole_word:
            return candidate & (rng.random(input_ids.shape) < self.mlm_probability)
        flat = candidate.reshape(-1)
        previous = np.r_[False, flat[:-1]]
        # A word starts at a candidate that is not a "##" piece, or whose left neighbour is not a candidate.
        starts = flat & (~self.continuation[input_ids.reshape(-1)] | ~previous)
        word = np.cumsum(starts) - 1
        chosen = rng.random(max(int(starts.sum()), 1)) < self.mlm_probability
        return (flat & chosen[np.maximum(word, 0)]).reshape(input_ids.shape)

    def mask(self, input_ids: np.ndarray, attention_mask: np.ndarray | None = None,
             rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(corrupted input_ids, labels): labels hold the original id where selected and -100 elsewhere.

        input_ids, attention_mask: (batch, seq) integers. rng: defaults to minitransfer's seeded generator.
        """
        rng = mt_random.numpy_rng() if rng is None else rng
        input_ids = np.asarray(input_ids)
        selected = self.select(input_ids, attention_mask, rng)
        labels = np.where(selected, input_ids, LABEL_PAD)
        draw = rng.random(input_ids.shape)
        to_mask = selected & (draw < self.mask_replace_prob)
        keep_from = self.mask_replace_prob + self.random_replace_prob
        to_random = selected & (draw >= self.mask_replace_prob) & (draw < keep_from)
        corrupted = input_ids.copy()
        corrupted[to_mask] = self.mask_token_id
        corrupted[to_random] = rng.choice(self.random_pool, size=int(to_random.sum()))
        return corrupted, labels

    def __call__(self, features: list[dict]) -> dict[str, np.ndarray]:
        """Collator: pad single-example features to the batch's longest row, then mask (new draw each call)."""
        batch = pad_collate(features, self.pad_token_id)
        batch["input_ids"], batch["labels"] = self.mask(batch["input_ids"], batch.get("attention_mask"))
        return batch


class TextDataset:
    """Tokenized texts, one unpadded example per window: {input_ids, attention_mask, token_type_ids}."""

    def __init__(self, rows: list[dict[str, np.ndarray]]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return self.rows[i]

    def num_tokens(self) -> int:
        return int(sum(len(r["input_ids"]) for r in self.rows))


def read_text_lines(path: str | Path, max_lines: int | None = None) -> list[str]:
    """Non-empty lines of a UTF-8 text file (one document per line)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no text file at {path}: give a UTF-8 file with one document per line")
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text ({e}); convert it to UTF-8") from None
    lines = [line for line in lines if line]
    if not lines:
        raise InputError(f"{path} has no text")
    return lines[:max_lines] if max_lines else lines


def split_holdout(lines: list[str], fraction: float) -> tuple[list[str], list[str]]:
    """(train, held-out): the last `fraction` of the lines is held out (at least one line when fraction > 0)."""
    if not 0 <= fraction < 1:
        raise InputError(f"the held-out fraction must lie in [0, 1), got {fraction}")
    held = int(round(len(lines) * fraction)) if fraction else 0
    held = max(held, 1) if fraction else 0
    if held >= len(lines):
        raise InputError(f"holding out {fraction:.0%} of {len(lines)} lines leaves nothing to train on")
    return lines[:len(lines) - held], lines[len(lines) - held:]


def encode_texts(texts: list[str], tokenizer, max_length: int = 128, windows_per_text: int = 1) -> TextDataset:
    """Tokenize documents into windows of at most max_length tokens ([CLS] ... [SEP] each).

    windows_per_text: 1 truncates each document to its first window; N > 1 keeps up to N consecutive
    windows; 0 keeps every window (the whole text is used).
    """
    if not texts:
        raise InputError("no text to encode")
    if windows_per_text < 0:
        raise InputError(f"windows_per_text must be >= 0, got {windows_per_text}")
    overflow = windows_per_text != 1
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding=True,
                    return_overflowing_tokens=overflow, return_tensors="np")
    sample = enc["overflow_to_sample_mapping"] if overflow else np.arange(len(texts))
    rows, seen = [], np.zeros(len(texts), dtype=np.int64)
    lengths = enc["attention_mask"].sum(axis=1)
    for i, (source, n) in enumerate(zip(sample, lengths)):
        if windows_per_text and seen[source] >= windows_per_text:
            continue
        seen[source] += 1
        rows.append({k: enc[k][i, :n] for k in SEQUENCE_KEYS if k in enc})
    return TextDataset(rows)


def fixed_masking(dataset: TextDataset, masker: MLMMasker, seed: int = 0) -> ArrayDataset:
    """Mask every example once with a seeded generator: the same held-out positions for every model compared."""
    batch = pad_collate([dataset[i] for i in range(len(dataset))], masker.pad_token_id)
    batch["input_ids"], batch["labels"] = masker.mask(batch["input_ids"], batch.get("attention_mask"),
                                                      np.random.default_rng(seed))
    return ArrayDataset(batch)


# ---- the masked-LM head, applied only where it is needed ----
def head_transform(model, hidden: Tensor) -> Tensor:
    """The MLM head before the decoder (dense → GELU → LayerNorm); hidden (..., hidden) → (..., hidden)."""
    if model.model_type == "bert":
        return model.cls.predictions.transform(hidden)
    if model.model_type == "distilbert":
        return model.vocab_layer_norm(model.activation(model.vocab_transform(hidden)))
    raise InputError(f"no masked-LM head for model_type {model.model_type!r}")


def decoder_of(model):
    """The Linear mapping the transformed hidden state to vocabulary logits (weight tied to the embeddings)."""
    return model.cls.predictions.decoder if model.model_type == "bert" else model.vocab_projector


def token_logits_at(model, batch: dict, rows, cols, token_ids=None) -> Tensor:
    """MLM logits at positions (rows[i], cols[i]): (M, vocab), or (M, len(token_ids)) for those tokens only.

    Equal to model(**batch).logits[rows, cols][:, token_ids] without computing the other positions' logits.
    """
    body = getattr(model, model.base_model_prefix)
    hidden, packed, _ = body.encode(*(batch.get(k) for k in SEQUENCE_KEYS))
    at = (rows, cols) if packed is None else packed.index_of(rows, cols)  # packed: rows of real tokens (T, H)
    picked = head_transform(model, ops.getitem(hidden, at))
    decoder = decoder_of(model)
    if token_ids is None:
        return decoder(picked)
    token_ids = get_array_module(decoder.weight.data).asarray(token_ids)
    return ops.linear(picked, ops.getitem(decoder.weight, token_ids), ops.getitem(decoder.bias, token_ids))


def masked_lm_loss(model, batch: dict, labels) -> Tensor:
    """Mean cross-entropy over the tokens whose label is not -100 (the same value as model(..., labels).loss)."""
    labels = labels.data if isinstance(labels, Tensor) else labels
    xp = get_array_module(labels)
    rows, cols = xp.nonzero(labels != LABEL_PAD)
    if len(rows) == 0:  # nothing selected in this batch (tiny batches): a zero loss that still has a graph
        rows, cols = xp.zeros(1, dtype=np.int64), xp.zeros(1, dtype=np.int64)
        return ops.mul(ops.sum(token_logits_at(model, batch, rows, cols)), 0.0)
    return ops.cross_entropy(token_logits_at(model, batch, rows, cols), labels[rows, cols])


class MaskedLMLoss(ModelWrapper):
    """Wraps a masked-LM model for the Trainer: forward(input_ids, ..., labels) → ModelOutput(loss).

    Saving, loading and weight tying pass through to the wrapped model, so checkpoints keep its names.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None) -> ModelOutput:
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        if labels is None:
            return ModelOutput(logits=self.model(input_ids, attention_mask, token_type_ids).logits)
        return ModelOutput(loss=masked_lm_loss(self.model, batch, labels))


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
            if n:
                total += masked_lm_loss(model, batch, batch["labels"]).item() * n
                count += n
    model.train(was_training)
    if not count:
        raise InputError("no token was masked in the held-out text: give more (or longer) held-out text")
    loss = total / count
    return {"perplexity": float(np.exp(loss)), "loss": loss, "masked_tokens": count}


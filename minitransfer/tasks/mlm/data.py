"""Masked-LM data: documents read from a text file, held out, cut into windows, masked once for scoring.

    lines = read_text_lines("reviews.txt")              # one document per line
    train, held = split_holdout(lines, 0.1)              # the last 10% held out
    windows = encode_texts(train, tokenizer, 128)         # TextDataset of unpadded windows
    scored = fixed_masking(encode_texts(held, tokenizer), MLMMasker.from_tokenizer(tokenizer), seed=0)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from minitransfer.data.batching import SEQUENCE_KEYS, ArrayDataset, pad_collate
from minitransfer.data.masking import MLMMasker
from minitransfer.errors import InputError


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

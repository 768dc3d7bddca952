"""BERT's masking for masked-LM training: which tokens the model must predict, and how they are corrupted.

Each candidate token (never [CLS]/[SEP]/[PAD] or any special token) is selected with probability 0.15; a
selected token becomes [MASK] 80% of the time, a random token 10%, and stays itself 10%. With whole-word
masking a word (a token and its "##" continuation pieces) is selected as a unit, then each of its pieces gets
its own 80/10/10 draw (as BERT's create_pretraining_data.py).
"""
from __future__ import annotations

import numpy as np

from minitransfer import seeding
from minitransfer.data.batching import LABEL_PAD, pad_collate
from minitransfer.errors import InputError


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
        rng = seeding.numpy_rng() if rng is None else rng
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

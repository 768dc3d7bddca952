"""Classification by prompt (PET, Schick & Schütze 2021): a pattern puts the text around a [MASK], and a
verbalizer maps each label to one word; a label's score is the MLM logit of its word at the mask.

Zero-shot compares those logits with no training. Few-shot fine-tunes the whole MLM model on k examples
with cross-entropy over the verbalizer words' logits only (a softmax over the label words, not the vocabulary).
"""
from __future__ import annotations

import numpy as np

from minitransfer import ops
from minitransfer.autograd import Tensor
from minitransfer.backend import get_array_module
from minitransfer.data.batching import SEQUENCE_KEYS, ArrayDataset
from minitransfer.errors import InputError
from minitransfer.models.outputs import ModelOutput
from minitransfer.models.wrapper import ModelWrapper
from minitransfer.tasks.classification.data import ClassificationDataset

DEFAULT_PATTERN = "{text} It was [MASK]."
DEFAULT_VERBALIZER = ("terrible", "great")  # SST-2: label 0 negative, label 1 positive


def verbalizer_token_ids(tokenizer, words: list[str] | tuple[str, ...]) -> np.ndarray:
    """The vocabulary id of each label word, in label order (label i ↔ words[i]); each word must be one token."""
    ids = []
    for word in words:
        pieces = tokenizer.tokenize(word)
        if len(pieces) != 1:
            raise InputError(f"verbalizer word {word!r} is not one token of the vocabulary (it splits into {pieces}): "
                             "choose a word the tokenizer keeps whole")
        ids.append(tokenizer.convert_tokens_to_ids(pieces[0]))
    if len(set(ids)) != len(ids):
        raise InputError(f"verbalizer words {list(words)} map to repeated tokens: give one distinct word per label")
    return np.asarray(ids, dtype=np.int64)


def fill_pattern(pattern: str, text: str) -> str:
    return pattern.replace("{text}", text)


def check_pattern(pattern: str, tokenizer) -> None:
    if "{text}" not in pattern or pattern.count(tokenizer.mask_token) != 1:
        raise InputError(f"pattern {pattern!r} needs the placeholder {{text}} and exactly one {tokenizer.mask_token}, "
                         f"e.g. {DEFAULT_PATTERN!r}")


def encode_prompts(texts: list[str], tokenizer, pattern: str = DEFAULT_PATTERN, max_length: int = 128,
                   labels: np.ndarray | None = None) -> ArrayDataset:
    """Tokenize each text inside the pattern; mask_positions (n,) gives each row's [MASK] index.

    A text too long for max_length is cut (its words, not the pattern), so the mask always survives.
    Returns an ArrayDataset of input_ids, attention_mask, token_type_ids, mask_positions (and labels).
    """
    check_pattern(pattern, tokenizer)
    if not texts:
        raise InputError("no text to classify")
    budget = max_length - len(tokenizer.encode(fill_pattern(pattern, "")))
    if budget < 1:
        raise InputError(f"the pattern {pattern!r} alone fills max_length={max_length}: raise max_length")
    filled = []
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False)
        filled.append(fill_pattern(pattern, text if len(ids) <= budget else tokenizer.decode(ids[:budget])))
    enc = tokenizer(filled, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    is_mask = enc["input_ids"] == tokenizer.mask_token_id
    if not (is_mask.sum(axis=1) == 1).all():
        bad = int(np.flatnonzero(is_mask.sum(axis=1) != 1)[0])
        raise InputError(f"text {bad} does not leave exactly one {tokenizer.mask_token} in the prompt: "
                         f"{filled[bad][:80]!r} (a text must not contain {tokenizer.mask_token} itself)")
    arrays = {k: enc[k] for k in SEQUENCE_KEYS if k in enc}
    arrays["mask_positions"] = is_mask.argmax(axis=1)
    if labels is not None:
        arrays["labels"] = np.asarray(labels, dtype=np.int64)
    return ArrayDataset(arrays)


def encode_prompt_dataset(dataset: ClassificationDataset, tokenizer, pattern: str = DEFAULT_PATTERN,
                          max_length: int = 128) -> ArrayDataset:
    if dataset.has_pairs:
        raise InputError(f"{dataset.source} holds sentence pairs; the prompt pattern takes single sentences")
    return encode_prompts(dataset.texts(), tokenizer, pattern, max_length, dataset.labels())


def verbalizer_logits(model, batch: dict, mask_positions, token_ids: np.ndarray) -> Tensor:
    """MLM logits of the verbalizer tokens at each row's mask: (batch, num_labels).

    model: a BertForMaskedLM / DistilBertForMaskedLM; batch: input_ids, attention_mask, token_type_ids (batch, seq).
    """
    positions = mask_positions.data if isinstance(mask_positions, Tensor) else mask_positions
    rows = get_array_module(positions).arange(len(positions))
    return model.logits_at(batch, rows, positions, token_ids)


class PromptClassifier(ModelWrapper):
    """A masked-LM model used as a classifier through a verbalizer: logits (batch, num_labels).

    forward(input_ids, attention_mask, token_type_ids, mask_positions, labels=None) → ModelOutput(logits[, loss])
    with the PET loss: cross-entropy over the verbalizer logits. Saving passes through to the MLM model.
    """

    def __init__(self, model, token_ids: np.ndarray):
        super().__init__()
        self.model = model
        self.token_ids = np.asarray(token_ids, dtype=np.int64)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, mask_positions=None,
                labels=None) -> ModelOutput:
        if mask_positions is None:
            raise InputError("PromptClassifier needs mask_positions: encode the texts with encode_prompts")
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        logits = verbalizer_logits(self.model, batch, mask_positions, self.token_ids)
        out = ModelOutput(logits=logits)
        if labels is not None:
            out.loss = ops.cross_entropy(logits, labels.data if isinstance(labels, Tensor) else labels)
        return out

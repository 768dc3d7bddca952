"""What a tokenizer call takes: its arguments checked, and its texts or features as lists of one row each.

Every InputError says what is wrong with the argument and what to pass instead.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from minitransfer.errors import InputError


def check_text(value: Any, what: str) -> None:
    if not isinstance(value, str):
        raise InputError(f"{what} must be a str, got {type(value).__name__}")


def check_padding_side(side: Any) -> str:
    if side not in ("right", "left"):
        raise InputError(f"padding_side must be 'right' or 'left', got {side!r}")
    return side


def check_return_tensors(return_tensors: Any) -> None:
    if return_tensors is not None and return_tensors != "np":
        raise InputError(f"return_tensors={return_tensors!r} is not supported: minitransfer returns NumPy arrays "
                         "('np') or Python lists (None), and its models take either")


def check_multiple(value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0):
        raise InputError(f"pad_to_multiple_of must be a positive int or None, got {value!r}")
    return None if value is None else int(value)


def feature_columns(encoded_inputs: Any) -> dict[str, Any]:
    """pad()'s input as {key: one value per example}: a list of feature dicts is turned column-wise."""
    if isinstance(encoded_inputs, Mapping):
        columns = dict(encoded_inputs)
    elif isinstance(encoded_inputs, (list, tuple)):
        if not encoded_inputs:
            raise InputError("nothing to pad: pass a list of feature dicts such as {'input_ids': [...]}")
        for i, feature in enumerate(encoded_inputs):
            if not isinstance(feature, Mapping):
                raise InputError(f"feature {i} is a {type(feature).__name__}; pad() takes dicts of token ids")
            missing = [k for k in encoded_inputs[0] if k not in feature]
            if missing:
                raise InputError(f"feature {i} lacks {missing}, which feature 0 has; every feature needs the same keys")
        columns = {key: [feature[key] for feature in encoded_inputs] for key in encoded_inputs[0]}
    else:
        raise InputError(f"pad() takes a list of feature dicts or a dict of lists, got {type(encoded_inputs).__name__}")
    if "input_ids" not in columns:
        raise InputError(f"the features have no input_ids (keys: {sorted(columns)}); pad() pads tokenized features")
    if len(columns["input_ids"]) == 0:
        raise InputError("nothing to pad: input_ids is empty")
    return columns


def _strs(value: Any, what: str, hint: str = "") -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise InputError(f"{what} must be a str or a list of str, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise InputError(f"{what}[{i}] is a {type(item).__name__}, not a str; every item must be a string"
                             + (hint if isinstance(item, (list, tuple)) else ""))
    return list(value)


def as_batch(text: Any, text_pair: Any, is_split_into_words: bool = False) -> tuple[list, list | None, bool]:
    """(texts, text_pairs or None, batched): the input as lists of equal length, with clear errors.

    With is_split_into_words each text is a list of words, and a single list of words is one text.
    """
    if is_split_into_words:
        return _as_word_batch(text, text_pair)
    if isinstance(text, str):
        if text_pair is not None and not isinstance(text_pair, str):
            raise InputError(f"text is a single str, so text_pair must be a str too, got {type(text_pair).__name__}")
        return [text], None if text_pair is None else [text_pair], False
    texts = _strs(text, "text", "; for lists of words pass is_split_into_words=True")
    if not texts:
        raise InputError("text is an empty list; pass at least one string")
    if text_pair is None:
        return texts, None, True
    if not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(texts):
        raise InputError(f"text has {len(texts)} items, so text_pair must be a list of as many; they must pair up "
                         "one to one")
    return texts, _strs(text_pair, "text_pair"), True


def _words(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        raise InputError(f"{what} is a str, but is_split_into_words=True wants a list of words: pass text.split() "
                         f"or drop is_split_into_words")
    if not isinstance(value, (list, tuple)) or not all(isinstance(w, str) for w in value):
        raise InputError(f"{what} must be a list of words (str) with is_split_into_words=True")
    return list(value)


def _as_word_batch(text: Any, text_pair: Any) -> tuple[list[list[str]], list[list[str]] | None, bool]:
    """as_batch for pre-split input: a list of words is one text, a list of lists of words a batch."""
    if not isinstance(text, (list, tuple)) or len(text) == 0:
        raise InputError("with is_split_into_words=True, text must be a non-empty list of words, or a list of "
                         "such lists (a batch)")
    batched = isinstance(text[0], (list, tuple))
    texts = [_words(t, f"text[{i}]") for i, t in enumerate(text)] if batched else [_words(text, "text")]
    if text_pair is None:
        return texts, None, batched
    if not batched:
        return texts, [_words(text_pair, "text_pair")], False
    if not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(texts):
        raise InputError(f"text is a batch of {len(texts)} word lists, so text_pair must be a list of as many "
                         f"word lists; they pair up one to one")
    return texts, [_words(t, f"text_pair[{i}]") for i, t in enumerate(text_pair)], True

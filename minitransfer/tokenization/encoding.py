"""Text -> token ids, the way transformers' fast tokenizer returns them: BatchEncoding and the calls that make one.

The Rust `tokenizers` library does the work (normalize, split, WordPiece, add [CLS]/[SEP], truncate, pad); each
call configures it the way transformers does, so ids, offsets and overflow windows match transformers exactly.
return_tensors=None (the default) gives Python lists (a single string's row itself, one list per text for a
batch, ragged when unpadded); return_tensors="np" gives int64 arrays with a batch axis ((1, seq) for one string).
"""
from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tokenizers import Encoding, Tokenizer

from minitransfer.errors import InputError
from minitransfer.tokenization.inputs import (
    as_batch,
    check_multiple,
    check_padding_side,
    check_return_tensors,
    feature_columns,
)

# transformers' stand-in for "this tokenizer has no length limit" when tokenizer_config.json has none.
VERY_LARGE_INTEGER = int(1e30)
_PADDING = {True: "longest", "longest": "longest", "max_length": "max_length", False: None, "do_not_pad": None}
_TRUNCATION = {True: "longest_first", "longest_first": "longest_first", "only_first": "only_first",
               "only_second": "only_second", False: None, "do_not_truncate": None}
_PAD_VALUES = {"attention_mask": 0, "token_type_ids": 0, "special_tokens_mask": 1}  # input_ids: pad_token_id


class BatchEncoding(dict):
    """The output of a tokenizer call: a dict of lists (return_tensors=None) or int64 arrays ("np").

    Keys: input_ids, attention_mask, token_type_ids (batch, seq); offset_mapping (batch, seq, 2) and
    special_tokens_mask (batch, seq) when asked; overflow_to_sample_mapping (n_windows,) with
    return_overflowing_tokens, where each overflow window is its own row. A single string without
    return_tensors gives the row itself ((seq,) lists), as in transformers.
    `sequence_ids(i)` / `word_ids(i)` / `tokens(i)` describe row i, as in transformers.
    """

    def __init__(self, data: dict[str, Any], encodings: list[Encoding] | None = None):
        super().__init__(data)
        self.encodings: list[Encoding] = encodings or []  # the `tokenizers.Encoding` of each row

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails; keep dunder lookups (pickle, copy) out of the dict.
        if name.startswith("__") or name == "encodings":
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no key {name!r}; keys: {sorted(self)}") from None

    def __reduce__(self):
        return (BatchEncoding, (dict(self),))  # the Rust encodings don't pickle; the arrays are what matters

    def _row(self, i: int) -> Encoding:
        if not self.encodings:
            raise InputError("this BatchEncoding carries no encodings; build it with a tokenizer call")
        if not -len(self.encodings) <= i < len(self.encodings):
            raise InputError(f"row {i} is out of range for a batch of {len(self.encodings)} rows")
        return self.encodings[i]

    def sequence_ids(self, i: int = 0) -> list[int | None]:
        """Per token of row i: 0 for the first text, 1 for text_pair, None for [CLS]/[SEP]/[PAD]."""
        return list(self._row(i).sequence_ids)

    def word_ids(self, i: int = 0) -> list[int | None]:
        """Per token of row i: the index of the word it came from (None for special tokens)."""
        return list(self._row(i).word_ids)

    def tokens(self, i: int = 0) -> list[str]:
        """The token strings of row i, special and padding tokens included."""
        return list(self._row(i).tokens)


class BatchEncoder:
    """The calls of a tokenizer that make BatchEncodings: ``tokenizer(text, ...)`` and ``tokenizer.pad(features)``.

    A subclass sets ``_tok`` (a `tokenizers.Tokenizer`), ``model_max_length``, ``padding_side``, ``pad_token``
    and ``pad_token_id``. Truncation and padding are configured on the shared Rust object per call, under a lock.
    """

    _tok: Tokenizer
    model_max_length: int
    padding_side: str
    pad_token: str
    pad_token_id: int

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._warned_too_long = False

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}  # a lock doesn't pickle (worker processes)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __call__(
        self,
        text: str | Sequence[str] | Sequence[Sequence[str]],
        text_pair: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_overflowing_tokens: bool = False,
        return_offsets_mapping: bool = False,
        return_special_tokens_mask: bool = False,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        add_special_tokens: bool = True,
    ) -> BatchEncoding:
        """Tokenize a text or batch of texts (optionally paired), as transformers' fast tokenizer does.

        text, text_pair: a str, or a list of str of equal lengths (a batch). With is_split_into_words=True a
            text is a list of words (a batch: a list of such lists), and word_ids(i) index those words.
        padding: False; True or "longest" (to the longest row); "max_length" (to max_length, or
            model_max_length when max_length is None). pad_to_multiple_of rounds the padded length up;
            padding_side ("right" or "left") overrides the tokenizer's padding_side for this call.
        truncation: False; True or "longest_first", "only_first", "only_second". None (the default)
            means False, except that max_length alone switches on "longest_first" (as in transformers).
        max_length: the length truncation and padding="max_length" aim at (default model_max_length).
        stride, return_overflowing_tokens: with truncation, the cut-off tokens come back as extra rows
            (windows) that overlap the previous one by `stride` tokens; `overflow_to_sample_mapping`
            gives each row's input index. This is the SQuAD sliding window.
        return_tensors: None (Python lists: a single str gives its row, a batch one list per row, ragged
            when unpadded) or "np" (int64 arrays with a batch axis, (1, seq) for a single str; rows of
            unequal length raise InputError: pass padding=True). Nothing else ("pt" is transformers').
        Without truncation, rows longer than model_max_length only warn; the model raises.
        """
        check_return_tensors(return_tensors)
        texts, pairs, batched = as_batch(text, text_pair, is_split_into_words)
        pad_mode, trunc_mode, max_length = self._lengths(padding, truncation, max_length)
        side = check_padding_side(self.padding_side if padding_side is None else padding_side)
        multiple = check_multiple(pad_to_multiple_of)
        if stride < 0:
            raise InputError(f"stride must be >= 0, got {stride}")
        if multiple and pad_mode and trunc_mode and max_length % multiple:
            raise InputError(f"truncation and padding are both on, but max_length={max_length} is not a multiple of "
                             f"pad_to_multiple_of={multiple}: pass a max_length that is")
        if trunc_mode is not None:
            room = max_length - (self._tok.num_special_tokens_to_add(pairs is not None) if add_special_tokens else 0)
            if room <= 0 or stride >= room:
                raise InputError(f"max_length={max_length} leaves {room} tokens of text after [CLS]/[SEP]; stride "
                                 f"({stride}) must be smaller than that: raise max_length or lower stride")
        with self._lock:
            if trunc_mode is None:
                self._tok.no_truncation()
            else:
                self._tok.enable_truncation(max_length, stride=stride, strategy=trunc_mode, direction="right")
            if pad_mode is None:
                self._tok.no_padding()
            else:
                self._tok.enable_padding(direction=side, pad_id=self.pad_token_id, pad_type_id=0,
                                         pad_token=self.pad_token, pad_to_multiple_of=multiple,
                                         length=max_length if pad_mode == "max_length" else None)
            try:
                encodings = self._tok.encode_batch(list(zip(texts, pairs)) if pairs is not None else texts,
                                                   add_special_tokens=add_special_tokens,
                                                   is_pretokenized=is_split_into_words)
            except BaseException as e:
                # The Rust side raises Exception, or pyo3's PanicException (a BaseException) on bad strides.
                if not (isinstance(e, Exception) or type(e).__name__ == "PanicException"):
                    raise
                raise InputError(
                    f"could not tokenize with truncation={trunc_mode!r}, max_length={max_length}, stride={stride}: "
                    f"{e}. With 'only_second', the first text must fit in max_length; raise max_length, lower "
                    f"stride, or use truncation='longest_first'") from e

        rows, sample = [], []  # overflow windows are rows of their own; sample: the input each row came from
        for i, enc in enumerate(encodings):
            windows = [enc, *enc.overflowing] if return_overflowing_tokens else [enc]
            rows += windows
            sample += [i] * len(windows)
        longest = max(len(r.ids) for r in rows)
        if trunc_mode is None and longest > self.model_max_length and not self._warned_too_long:
            self._warned_too_long = True
            warnings.warn(f"Token indices sequence length is longer than the specified maximum sequence length for "
                          f"this model ({longest} > {self.model_max_length}); the model will reject it. Pass "
                          "truncation=True to cut it.", stacklevel=2)
        fields = {"input_ids": "ids"}  # output key -> Encoding attribute
        if return_token_type_ids is not False:
            fields["token_type_ids"] = "type_ids"
        if return_attention_mask is not False:
            fields["attention_mask"] = "attention_mask"
        if return_special_tokens_mask:
            fields["special_tokens_mask"] = "special_tokens_mask"
        if return_offsets_mapping:
            fields["offset_mapping"] = "offsets"  # (start, end) per token
        data: dict[str, Any] = {key: [list(getattr(r, attr)) for r in rows] for key, attr in fields.items()}
        if return_tensors == "np":
            data = {key: _stack(key, value, is_tokens=True) for key, value in data.items()}
        elif not batched and not return_overflowing_tokens:  # one text: its row (overflow windows stay a batch)
            data = {key: value[0] for key, value in data.items()}
        if return_overflowing_tokens:
            data["overflow_to_sample_mapping"] = np.asarray(sample, np.int64) if return_tensors == "np" else sample
        return BatchEncoding(data, rows)

    def pad(
        self,
        encoded_inputs: Sequence[Mapping[str, Any]] | Mapping[str, Any],
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | None = None,
        return_attention_mask: bool | None = None,
        padding_side: str | None = None,
    ) -> BatchEncoding:
        """Pad already tokenized features to one length, as transformers' `tokenizer.pad` (a collate function).

        encoded_inputs: a list of feature dicts ({"input_ids": [...], ...}, lists or arrays), a dict of
            such lists (a batch), or one feature dict (input_ids a flat list).
        padding: True or "longest" (the default: to the longest row), "max_length" (to max_length, or
            model_max_length), False (no padding). pad_to_multiple_of rounds the padded length up.
        input_ids pad with pad_token_id, attention_mask with 0 (made, all ones, when absent, unless
        return_attention_mask=False), token_type_ids with 0, special_tokens_mask with 1, on the tokenizer's
        padding_side (or `padding_side`); other keys (labels, ...) pass through. Nothing is truncated.
        return_tensors: None (lists; "np" when the inputs hold arrays, as transformers) or "np" (int64
            arrays (batch, seq), (seq,) for one feature dict; the other keys stacked).
        """
        check_return_tensors(return_tensors)
        columns = feature_columns(encoded_inputs)
        ids = columns["input_ids"]
        if return_tensors is None and (isinstance(ids, np.ndarray) or isinstance(ids[0], np.ndarray)):
            return_tensors = "np"
        single = np.ndim(ids[0]) == 0
        if single:
            columns = {key: [value] for key, value in columns.items()}
        lengths = [len(row) for row in columns["input_ids"]]
        for key, values in columns.items():
            if len(values) != len(lengths):
                raise InputError(f"{key} has {len(values)} rows but input_ids has {len(lengths)}: one row per example")
        pad_mode, _, max_length = self._lengths(padding, False, max_length)
        target = {"longest": max(lengths), "max_length": max_length, None: 0}[pad_mode]
        multiple = check_multiple(pad_to_multiple_of)
        if target and multiple:
            target = -(-target // multiple) * multiple
        side = check_padding_side(self.padding_side if padding_side is None else padding_side)
        if return_attention_mask is False:
            columns.pop("attention_mask", None)
        elif "attention_mask" not in columns:
            columns["attention_mask"] = [[1] * n for n in lengths]
        fills = {"input_ids": self.pad_token_id, **_PAD_VALUES}
        data: dict[str, Any] = {}
        for key, values in columns.items():
            if key not in fills:
                data[key] = list(values)
                continue
            data[key] = []
            for i, row in enumerate(values):
                row = row.tolist() if isinstance(row, np.ndarray) else list(row)
                if len(row) != lengths[i]:
                    raise InputError(f"example {i}: {key} has {len(row)} values but input_ids has {lengths[i]}")
                extra = [fills[key]] * max(0, target - len(row))
                data[key].append(row + extra if side == "right" else extra + row)
        if return_tensors == "np":
            data = {key: _stack(key, values, key in fills) for key, values in data.items()}
        return BatchEncoding({key: value[0] for key, value in data.items()} if single else data)

    def _lengths(self, padding: bool | str, truncation: bool | str | None,
                 max_length: int | None) -> tuple[str | None, str | None, int | None]:
        """(padding mode, truncation mode, max_length), resolved the way transformers does."""
        if padding not in _PADDING:
            raise InputError(f"padding={padding!r} is not supported; use True, 'longest', 'max_length' or False")
        if truncation is not None and truncation not in _TRUNCATION:
            raise InputError(f"truncation={truncation!r} is not supported; use True, 'longest_first', 'only_first', "
                             "'only_second' or False")
        if max_length is not None and (not isinstance(max_length, (int, np.integer)) or max_length <= 0):
            raise InputError(f"max_length must be a positive int, got {max_length!r}")
        if truncation is None:  # transformers: max_length with no padding and no truncation asked means "truncate"
            truncation = "longest_first" if (max_length is not None and padding is False) else False
        pad_mode, trunc_mode = _PADDING[padding], _TRUNCATION[truncation]
        if max_length is None and (pad_mode == "max_length" or trunc_mode is not None):
            if self.model_max_length >= VERY_LARGE_INTEGER:
                raise InputError(f"padding={padding!r} / truncation={truncation!r} need a length, and this tokenizer "
                                 "has no model_max_length: pass max_length")
            max_length = self.model_max_length
        return pad_mode, trunc_mode, None if max_length is None else int(max_length)


def _stack(key: str, rows: list, is_tokens: bool) -> np.ndarray:
    """One array from the rows of `key`: token rows (int64) must be of one length; other keys as NumPy stacks them."""
    if not is_tokens:
        try:
            return np.asarray(rows)
        except ValueError as e:
            raise InputError(f"the {key!r} values of the examples cannot be stacked into one array ({e}); per-token "
                             "labels need padding too: use DataCollatorForTokenClassification") from None
    lengths = {len(row) for row in rows}
    if len(lengths) > 1:
        raise InputError(f"the {len(rows)} {key} rows have different lengths ({min(lengths)} to {max(lengths)} "
                         "tokens); pass padding=True (or padding='max_length') to get a rectangular batch, or "
                         "return_tensors=None for lists")
    shape = (len(rows), lengths.pop(), 2) if key == "offset_mapping" else (len(rows), lengths.pop())
    return np.asarray(rows, dtype=np.int64).reshape(shape)

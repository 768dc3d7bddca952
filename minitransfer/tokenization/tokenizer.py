"""BertTokenizer: WordPiece (BERT / DistilBERT) with transformers' fast-tokenizer interface, and AutoTokenizer.

Loading is tokenization/loading.py's; text -> ids (``tokenizer(...)``, ``tokenizer.pad(...)``) is
tokenization/encoding.py's; what is left here is the vocabulary and ids -> text.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from minitransfer.errors import InputError
from minitransfer.io.hub import pop_hub_kwargs, resolve_model_path
from minitransfer.tokenization.encoding import VERY_LARGE_INTEGER, BatchEncoder
from minitransfer.tokenization.inputs import check_padding_side, check_text
from minitransfer.tokenization.loading import (
    OPTIONS,
    SPECIAL_TOKENS,
    load_tokenizer,
    normalizer_options,
    save_tokenizer,
)

# transformers' clean_up_tokenization: the spaces decoding leaves before punctuation and contractions.
_CLEAN_UPS = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
              (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


class BertTokenizer(BatchEncoder):
    """A WordPiece (BERT / DistilBERT) tokenizer with transformers' fast-tokenizer interface.

    Build it with `AutoTokenizer.from_pretrained(...)` or `BertTokenizer.from_pretrained(...)`.
    """

    def __init__(self, tokenizer: Tokenizer, options: dict[str, Any], name_or_path: str = ""):
        """`tokenizer`: a ready `tokenizers.Tokenizer`; `options`: the tokenizer_config.json values in use."""
        super().__init__()
        self._tok = tokenizer
        # Truncation and padding are set per call; a tokenizer.json may ship with its own (MiniLM's pads to 128).
        self._tok.no_truncation()
        self._tok.no_padding()
        self._options = dict(options)
        self.name_or_path = name_or_path
        self.model_max_length: int = int(options.get("model_max_length") or VERY_LARGE_INTEGER)
        self.clean_up_tokenization_spaces = bool(options.get("clean_up_tokenization_spaces", False))
        self.padding_side = options.get("padding_side") or "right"
        for name in SPECIAL_TOKENS:
            setattr(self, name, options[name])
        # Special tokens must be "added tokens" so that "[MASK]" typed in a text stays one token.
        self._tok.add_special_tokens([options[name] for name in SPECIAL_TOKENS])

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any) -> BertTokenizer:
        """Load from a model folder, a cache alias such as "minilm", or a hub id in a Hugging Face cache on
        disk (`cache_dir`, `revision`: see io.hub.resolve_model_path; nothing is downloaded, so
        local_files_only=False changes nothing; token, proxies, trust_remote_code have nothing to do).

        Uses tokenizer.json when present, else builds the BERT pipeline from vocab.txt. Reads
        tokenizer_config.json and special_tokens_map.json when present. Keyword overrides:
        do_lower_case, strip_accents, tokenize_chinese_chars, model_max_length,
        clean_up_tokenization_spaces, padding_side ("right" or "left"), and the special tokens
        (unk_token, sep_token, pad_token, cls_token, mask_token).
        """
        kwargs.pop("use_fast", None)  # we are always "fast"; accepted so transformers code ports as is
        hub = pop_hub_kwargs(kwargs)
        unknown = sorted(set(kwargs) - set(OPTIONS))
        if unknown:
            raise InputError(f"unknown tokenizer option(s) {unknown}; supported: {list(OPTIONS)}")
        tok, options = load_tokenizer(resolve_model_path(name_or_path, **hub), kwargs)
        return cls(tok, options, name_or_path=str(name_or_path))

    def save_pretrained(self, directory: str | os.PathLike) -> list[Path]:
        """Write tokenizer.json, vocab.txt, tokenizer_config.json and special_tokens_map.json, which both
        `AutoTokenizer.from_pretrained` here and transformers' load back identically. Returns the written paths."""
        config = {"tokenizer_class": "BertTokenizer", **normalizer_options(self._tok, self._options),
                  "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces, "padding_side": self.padding_side}
        if self.model_max_length < VERY_LARGE_INTEGER:
            config["model_max_length"] = self.model_max_length
        return save_tokenizer(Path(directory), self._tok, config | {n: getattr(self, n) for n in SPECIAL_TOKENS})

    @property
    def padding_side(self) -> str:
        """Where padding goes: "right" (the default) or "left"; read from tokenizer_config.json, settable."""
        return self._padding_side

    @padding_side.setter
    def padding_side(self, side: str) -> None:
        self._padding_side = check_padding_side(side)

    # ---- vocabulary
    @property
    def vocab_size(self) -> int:
        """Size of the base WordPiece vocabulary (tokens added later not counted)."""
        return self._tok.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        """Size of the full vocabulary, added tokens included: the embedding table needs this many rows."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        """{token: id} for every token, added tokens included."""
        return self._tok.get_vocab(with_added_tokens=True)

    def _id(self, token: str) -> int:
        index = self._tok.token_to_id(token)
        return index if index is not None else self._tok.token_to_id(self.unk_token)

    pad_token_id = property(lambda self: self._id(self.pad_token))
    cls_token_id = property(lambda self: self._id(self.cls_token))
    sep_token_id = property(lambda self: self._id(self.sep_token))
    mask_token_id = property(lambda self: self._id(self.mask_token))
    unk_token_id = property(lambda self: self._id(self.unk_token))

    @property
    def all_special_tokens(self) -> list[str]:
        return [getattr(self, name) for name in SPECIAL_TOKENS]

    @property
    def all_special_ids(self) -> list[int]:
        """Ids of [UNK], [SEP], [PAD], [CLS], [MASK], in transformers' order."""
        return [self._id(t) for t in self.all_special_tokens]

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        """Token(s) -> id(s); tokens not in the vocabulary map to the [UNK] id."""
        return self._id(tokens) if isinstance(tokens, str) else [self._id(t) for t in tokens]

    def convert_ids_to_tokens(self, ids: int | Sequence[int], skip_special_tokens: bool = False) -> str | list[str]:
        """Id(s) -> token(s). InputError for an id outside the vocabulary."""
        if isinstance(ids, (int, np.integer)):
            return self._token(int(ids))
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._token(int(i)) for i in ids if int(i) not in skip]

    def _token(self, index: int) -> str:
        token = self._tok.id_to_token(index)
        if token is None:
            raise InputError(f"token id {index} is outside the vocabulary (0..{len(self) - 1})")
        return token

    # ---- text <-> ids (the batched, padded, truncated calls are BatchEncoder's)
    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of `text`, without [CLS]/[SEP]."""
        check_text(text, "text")
        return list(self._tok.encode(text, add_special_tokens=False).tokens)

    def encode(self, text: str, text_pair: str | None = None, add_special_tokens: bool = True) -> list[int]:
        """The ids of one text (or pair), no truncation, no padding."""
        check_text(text, "text")
        if text_pair is not None:
            check_text(text_pair, "text_pair")
        with self._lock:
            self._tok.no_truncation()
            self._tok.no_padding()
            return list(self._tok.encode(text, text_pair, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: int | Sequence[int] | np.ndarray, skip_special_tokens: bool = False,
               clean_up_tokenization_spaces: bool | None = None) -> str:
        """Ids (a 1-D sequence or array) -> text; '##' pieces are glued back to their word."""
        flat = np.asarray(ids)
        if flat.ndim > 1:
            raise InputError(f"decode takes one sequence of ids, got shape {flat.shape}; use batch_decode for a batch")
        text = self._tok.decode([int(i) for i in flat.reshape(-1)], skip_special_tokens=skip_special_tokens)
        if self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces:
            for old, new in _CLEAN_UPS:
                text = text.replace(old, new)
        return text

    def batch_decode(self, batch: Sequence[Sequence[int]] | np.ndarray, skip_special_tokens: bool = False) -> list[str]:
        """decode() for each row of a (batch, seq) array or list of id lists."""
        return [self.decode(row, skip_special_tokens=skip_special_tokens) for row in batch]


class AutoTokenizer:
    """The entry point, as in transformers: `AutoTokenizer.from_pretrained(name_or_path, **options)`.

    Every checkpoint minitransfer loads (BERT, DistilBERT) uses WordPiece, so this returns a BertTokenizer.
    """

    def __init__(self) -> None:
        raise TypeError("AutoTokenizer is not instantiated: use AutoTokenizer.from_pretrained(name_or_path)")

    @staticmethod
    def from_pretrained(name_or_path: str | os.PathLike, **kwargs: Any) -> BertTokenizer:
        """See BertTokenizer.from_pretrained."""
        return BertTokenizer.from_pretrained(name_or_path, **kwargs)

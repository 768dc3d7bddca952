"""BERT WordPiece tokenization: a thin layer over Hugging Face `tokenizers`, used like transformers'.

    tok = AutoTokenizer.from_pretrained("minilm")          # alias or a model folder
    batch = tok(["a sentence", "another one"], padding=True)
    batch["input_ids"]        # (batch, seq) int64

Unlike transformers, a call always returns NumPy int64 arrays with a batch axis, even for a single
string (shape (1, seq)), because every model in minitransfer takes a batch.
The Rust `tokenizers` library does the work (normalize, split, WordPiece, add [CLS]/[SEP], truncate,
pad), configured per call the way transformers configures it, so ids, offsets and overflow windows
match transformers' fast tokenizer exactly.
"""
from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import (
    Encoding,
    Tokenizer,
    decoders,
    normalizers,
    pre_tokenizers,
    processors,
)
from tokenizers.models import WordPiece

from minitransfer.errors import CheckpointError, InputError
from minitransfer.io.hub import resolve_model_path

# transformers' stand-in for "this tokenizer has no length limit" when tokenizer_config.json has none.
VERY_LARGE_INTEGER = int(1e30)

# transformers' order for all_special_tokens (bos/eos don't exist in BERT).
_SPECIAL_ATTRS = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
_DEFAULT_SPECIALS = {
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}
# Pipeline options that only matter when the pipeline is built here (from vocab.txt) or rebuilt.
_NORMALIZER_OPTIONS = ("do_lower_case", "strip_accents", "tokenize_chinese_chars")
_OPTIONS = (*_NORMALIZER_OPTIONS, *_SPECIAL_ATTRS, "model_max_length", "clean_up_tokenization_spaces")

_PADDING = {True: "longest", "longest": "longest", "max_length": "max_length", False: None, "do_not_pad": None}
_TRUNCATION = {
    True: "longest_first",
    "longest_first": "longest_first",
    "only_first": "only_first",
    "only_second": "only_second",
    False: None,
    "do_not_truncate": None,
}


class BatchEncoding(dict):
    """The output of a tokenizer call: a dict of int64 arrays, with attribute access.

    Keys: input_ids, attention_mask, token_type_ids (batch, seq); offset_mapping (batch, seq, 2) and
    special_tokens_mask (batch, seq) when asked; overflow_to_sample_mapping (n_windows,) with
    return_overflowing_tokens, where each overflow window is its own row.
    `sequence_ids(i)` / `word_ids(i)` / `tokens(i)` describe row i, as in transformers.
    """

    def __init__(self, data: dict[str, np.ndarray], encodings: list[Encoding] | None = None):
        super().__init__(data)
        self._encodings = encodings or []

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails; keep dunder lookups (pickle, copy) out of the dict.
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no key {name!r}; keys: {sorted(self)}") from None

    def __reduce__(self):
        # The Rust encodings don't pickle; the arrays are what matters downstream.
        return (BatchEncoding, (dict(self),))

    @property
    def encodings(self) -> list[Encoding]:
        """The `tokenizers.Encoding` of each row (overflow windows included)."""
        return self._encodings

    def _row(self, i: int) -> Encoding:
        if not self._encodings:
            raise InputError("this BatchEncoding carries no encodings; build it with a tokenizer call")
        if not -len(self._encodings) <= i < len(self._encodings):
            raise InputError(f"row {i} is out of range for a batch of {len(self._encodings)} rows")
        return self._encodings[i]

    def sequence_ids(self, i: int = 0) -> list[int | None]:
        """Per token of row i: 0 for the first text, 1 for text_pair, None for [CLS]/[SEP]/[PAD]."""
        return list(self._row(i).sequence_ids)

    def word_ids(self, i: int = 0) -> list[int | None]:
        """Per token of row i: the index of the word it came from (None for special tokens)."""
        return list(self._row(i).word_ids)

    def tokens(self, i: int = 0) -> list[str]:
        """The token strings of row i, special and padding tokens included."""
        return list(self._row(i).tokens)


def _read_json(path: Path) -> dict:
    """A JSON object from `path`, {} when the file is absent."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); restore it from the original checkpoint") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} should hold a JSON object, found {type(data).__name__}")
    return data


def _token_text(value: Any) -> str | None:
    """Special tokens are stored either as a plain string or as an AddedToken dict {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _read_vocab(path: Path) -> dict[str, int]:
    """vocab.txt -> {token: line index}. Strip only the newline, as transformers does."""
    vocab: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for index, line in enumerate(f):
            vocab[line.rstrip("\n")] = index
    if not vocab:
        raise CheckpointError(f"{path} is empty; a WordPiece vocabulary has one token per line")
    return vocab


def _bert_normalizer(options: dict[str, Any]) -> normalizers.BertNormalizer:
    return normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=bool(options.get("tokenize_chinese_chars", True)),
        strip_accents=options.get("strip_accents"),  # None: follow lowercase, as original BERT does
        lowercase=bool(options.get("do_lower_case", True)),
    )


def _bert_post_processor(cls_token: str, cls_id: int, sep_token: str, sep_id: int) -> processors.TemplateProcessing:
    return processors.TemplateProcessing(
        single=f"{cls_token}:0 $A:0 {sep_token}:0",
        pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
        special_tokens=[(cls_token, cls_id), (sep_token, sep_id)],
    )


def _build_from_vocab(vocab_file: Path, options: dict[str, Any]) -> Tokenizer:
    """The BERT pipeline, component by component, as transformers' BertTokenizer builds it."""
    vocab = _read_vocab(vocab_file)
    unk = options["unk_token"]
    if unk not in vocab:
        raise CheckpointError(f"{vocab_file} has no unknown token {unk!r}; set unk_token in tokenizer_config.json")
    tok = Tokenizer(WordPiece(vocab, unk_token=unk, max_input_chars_per_word=100))
    tok.normalizer = _bert_normalizer(options)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    for name in ("cls_token", "sep_token"):
        if options[name] not in vocab:
            raise CheckpointError(f"{vocab_file} has no {name} {options[name]!r}; a BERT vocabulary needs it")
    tok.post_processor = _bert_post_processor(
        options["cls_token"], vocab[options["cls_token"]], options["sep_token"], vocab[options["sep_token"]]
    )
    return tok


class BertTokenizer:
    """A WordPiece (BERT / DistilBERT) tokenizer with transformers' fast-tokenizer interface.

    Build it with `AutoTokenizer.from_pretrained(...)` or `BertTokenizer.from_pretrained(...)`.
    """

    def __init__(self, tokenizer: Tokenizer, options: dict[str, Any], name_or_path: str = ""):
        """`tokenizer`: a ready `tokenizers.Tokenizer`; `options`: the tokenizer_config.json values in use."""
        self._tok = tokenizer
        # Truncation and padding are set per call; a tokenizer.json may ship with its own (MiniLM's pads to 128).
        self._tok.no_truncation()
        self._tok.no_padding()
        self._options = dict(options)
        self.name_or_path = name_or_path
        self.model_max_length: int = int(self._options.get("model_max_length") or VERY_LARGE_INTEGER)
        self.clean_up_tokenization_spaces = bool(self._options.get("clean_up_tokenization_spaces", False))
        for name in _SPECIAL_ATTRS:
            setattr(self, name, self._options[name])
        # Special tokens must be "added tokens" so that "[MASK]" typed in a text stays one token.
        self._tok.add_special_tokens([self._options[name] for name in _SPECIAL_ATTRS])
        self._lock = threading.Lock()  # the per-call configuration below mutates the shared Rust object
        self._warned_too_long = False

    def __getstate__(self) -> dict[str, Any]:
        # A lock doesn't pickle (worker processes); each copy gets its own.
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any) -> BertTokenizer:
        """Load from a model folder (or a cache alias such as "minilm").

        Uses tokenizer.json when present, else builds the BERT pipeline from vocab.txt. Reads
        tokenizer_config.json and special_tokens_map.json when present. Keyword overrides:
        do_lower_case, strip_accents, tokenize_chinese_chars, model_max_length,
        clean_up_tokenization_spaces, and the special tokens (unk_token, sep_token, pad_token,
        cls_token, mask_token).
        """
        kwargs.pop("use_fast", None)  # we are always "fast"; accepted so transformers code ports as is
        unknown = sorted(set(kwargs) - set(_OPTIONS))
        if unknown:
            raise InputError(f"unknown tokenizer option(s) {unknown}; supported: {list(_OPTIONS)}")
        folder = resolve_model_path(name_or_path)
        options: dict[str, Any] = dict(_DEFAULT_SPECIALS)
        config = _read_json(folder / "tokenizer_config.json")
        tokenizer_class = config.get("tokenizer_class")
        if tokenizer_class and not str(tokenizer_class).startswith(("BertTokenizer", "DistilBertTokenizer")):
            raise CheckpointError(
                f"{folder} has a {tokenizer_class}; minitransfer supports only WordPiece tokenizers "
                f"(BertTokenizer, DistilBertTokenizer)"
            )
        options.update({k: v for k, v in config.items() if k in _OPTIONS and k not in _SPECIAL_ATTRS})
        for source in (config, _read_json(folder / "special_tokens_map.json")):
            for name in _SPECIAL_ATTRS:
                text = _token_text(source.get(name))
                if text is not None:
                    options[name] = text
        options.update(kwargs)

        json_file, vocab_file = folder / "tokenizer.json", folder / "vocab.txt"
        if json_file.is_file():
            try:
                tok = Tokenizer.from_file(str(json_file))
            except Exception as e:  # the Rust loader raises a bare Exception
                raise CheckpointError(
                    f"{json_file} could not be loaded ({e}); restore it, or delete it to build from vocab.txt"
                ) from e
            if type(tok.model).__name__ != "WordPiece":
                raise CheckpointError(
                    f"{json_file} holds a {type(tok.model).__name__} model; minitransfer supports only WordPiece (BERT)"
                )
            if any(k in kwargs for k in _NORMALIZER_OPTIONS):
                tok.normalizer = _bert_normalizer(cls._normalizer_options(tok, options))
        elif vocab_file.is_file():
            tok = _build_from_vocab(vocab_file, options)
        else:
            raise CheckpointError(
                f"{folder} has neither tokenizer.json nor vocab.txt; copy the tokenizer files of the checkpoint there"
            )
        return cls(tok, options, name_or_path=str(name_or_path))

    @staticmethod
    def _normalizer_options(tok: Tokenizer, options: dict[str, Any]) -> dict[str, Any]:
        """The effective normalizer settings: the tokenizer.json's BertNormalizer, overridden by `options`."""
        merged: dict[str, Any] = {}
        norm = tok.normalizer
        if isinstance(norm, normalizers.BertNormalizer):
            merged = {
                "do_lower_case": norm.lowercase,
                "strip_accents": norm.strip_accents,
                "tokenize_chinese_chars": norm.handle_chinese_chars,
            }
        merged.update({k: options[k] for k in _NORMALIZER_OPTIONS if k in options})
        return merged

    def save_pretrained(self, directory: str | os.PathLike) -> list[Path]:
        """Write tokenizer.json, vocab.txt, tokenizer_config.json and special_tokens_map.json.

        Both `AutoTokenizer.from_pretrained` here and transformers' load the folder back identically.
        Returns the written paths.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / n for n in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")]
        self._tok.save(str(paths[0]))
        vocab = self._tok.get_vocab(with_added_tokens=True)
        by_id = sorted(vocab.items(), key=lambda kv: kv[1])
        if [i for _, i in by_id] != list(range(len(by_id))):
            raise CheckpointError("the vocabulary ids are not contiguous from 0; it cannot be written as vocab.txt")
        paths[1].write_text("".join(f"{token}\n" for token, _ in by_id), encoding="utf-8")
        config: dict[str, Any] = {"tokenizer_class": "BertTokenizer"}
        config.update(self._normalizer_options(self._tok, self._options))
        config["clean_up_tokenization_spaces"] = self.clean_up_tokenization_spaces
        if self.model_max_length < VERY_LARGE_INTEGER:
            config["model_max_length"] = self.model_max_length
        specials = {name: getattr(self, name) for name in _SPECIAL_ATTRS}
        config.update(specials)
        paths[2].write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        paths[3].write_text(json.dumps(specials, indent=2) + "\n", encoding="utf-8")
        return paths

    # ------------------------------------------------------------------ vocabulary
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

    @property
    def pad_token_id(self) -> int:
        return self._id(self.pad_token)

    @property
    def cls_token_id(self) -> int:
        return self._id(self.cls_token)

    @property
    def sep_token_id(self) -> int:
        return self._id(self.sep_token)

    @property
    def mask_token_id(self) -> int:
        return self._id(self.mask_token)

    @property
    def unk_token_id(self) -> int:
        return self._id(self.unk_token)

    @property
    def all_special_tokens(self) -> list[str]:
        return [getattr(self, name) for name in _SPECIAL_ATTRS]

    @property
    def all_special_ids(self) -> list[int]:
        """Ids of [UNK], [SEP], [PAD], [CLS], [MASK], in transformers' order."""
        return [self._id(t) for t in self.all_special_tokens]

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        """Token(s) -> id(s); tokens not in the vocabulary map to the [UNK] id."""
        if isinstance(tokens, str):
            return self._id(tokens)
        return [self._id(t) for t in tokens]

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

    # ------------------------------------------------------------------ text <-> ids
    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of `text`, without [CLS]/[SEP]."""
        _check_text(text, "text")
        return list(self._tok.encode(text, add_special_tokens=False).tokens)

    def encode(self, text: str, text_pair: str | None = None, add_special_tokens: bool = True) -> list[int]:
        """The ids of one text (or pair), no truncation, no padding."""
        _check_text(text, "text")
        if text_pair is not None:
            _check_text(text_pair, "text_pair")
        with self._lock:
            self._tok.no_truncation()
            self._tok.no_padding()
            return list(self._tok.encode(text, text_pair, add_special_tokens=add_special_tokens).ids)

    def decode(
        self,
        ids: int | Sequence[int] | np.ndarray,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> str:
        """Ids (a 1-D sequence or array) -> text; '##' pieces are glued back to their word."""
        flat = np.asarray(ids)
        if flat.ndim > 1:
            raise InputError(f"decode takes one sequence of ids, got shape {flat.shape}; use batch_decode for a batch")
        text = self._tok.decode([int(i) for i in flat.reshape(-1)], skip_special_tokens=skip_special_tokens)
        clean = clean_up_tokenization_spaces
        if clean is None:
            clean = self.clean_up_tokenization_spaces
        return _clean_up_tokenization(text) if clean else text

    def batch_decode(self, batch: Sequence[Sequence[int]] | np.ndarray, skip_special_tokens: bool = False) -> list[str]:
        """decode() for each row of a (batch, seq) array or list of id lists."""
        return [self.decode(row, skip_special_tokens=skip_special_tokens) for row in batch]

    def __call__(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        return_overflowing_tokens: bool = False,
        return_offsets_mapping: bool = False,
        return_special_tokens_mask: bool = False,
        return_token_type_ids: bool = True,
        return_attention_mask: bool = True,
        add_special_tokens: bool = True,
    ) -> BatchEncoding:
        """Tokenize a text or batch of texts (optionally paired) into (batch, seq) int64 arrays.

        text, text_pair: a str (a batch of one: arrays are (1, seq)) or a list of str of equal lengths.
        padding: False; True or "longest" (to the longest row); "max_length" (to max_length, or
            model_max_length when max_length is None).
        truncation: False; True or "longest_first", "only_first", "only_second". None (the default)
            means False, except that max_length alone switches on "longest_first" (as in transformers).
        max_length: the length truncation and padding="max_length" aim at (default model_max_length).
        stride, return_overflowing_tokens: with truncation, the cut-off tokens come back as extra rows
            (windows) that overlap the previous one by `stride` tokens; `overflow_to_sample_mapping`
            gives each row's input index. This is the SQuAD sliding window.
        Rows of unequal length without padding raise InputError (arrays must be rectangular).
        Without truncation, rows longer than model_max_length only warn; the model raises.
        """
        texts, pairs = _as_batch(text, text_pair)
        pad_mode, trunc_mode, max_length = self._strategies(padding, truncation, max_length)
        if stride < 0:
            raise InputError(f"stride must be >= 0, got {stride}")
        if trunc_mode is not None:
            room = max_length - (self._tok.num_special_tokens_to_add(pairs is not None) if add_special_tokens else 0)
            if room <= 0 or stride >= room:
                raise InputError(
                    f"max_length={max_length} leaves {room} tokens of text after [CLS]/[SEP]; stride ({stride}) "
                    f"must be smaller than that: raise max_length or lower stride"
                )
        inputs = list(zip(texts, pairs)) if pairs is not None else texts

        with self._lock:
            if trunc_mode is None:
                self._tok.no_truncation()
            else:
                self._tok.enable_truncation(max_length, stride=stride, strategy=trunc_mode, direction="right")
            if pad_mode is None:
                self._tok.no_padding()
            else:
                self._tok.enable_padding(
                    direction="right",
                    pad_id=self.pad_token_id,
                    pad_type_id=0,
                    pad_token=self.pad_token,
                    length=max_length if pad_mode == "max_length" else None,
                )
            try:
                encodings = self._tok.encode_batch(inputs, add_special_tokens=add_special_tokens)
            except BaseException as e:
                # The Rust side raises Exception, or pyo3's PanicException (a BaseException) on bad strides.
                if not (isinstance(e, Exception) or type(e).__name__ == "PanicException"):
                    raise
                raise InputError(
                    f"could not tokenize with truncation={trunc_mode!r}, max_length={max_length}, stride={stride}: "
                    f"{e}. With 'only_second', the first text must fit in max_length; raise max_length, lower "
                    f"stride, or use truncation='longest_first'"
                ) from e

        rows: list[Encoding] = []
        sample: list[int] = []
        for i, enc in enumerate(encodings):
            windows = [enc, *enc.overflowing] if return_overflowing_tokens else [enc]
            rows.extend(windows)
            sample.extend([i] * len(windows))

        lengths = {len(r.ids) for r in rows}
        if len(lengths) > 1:
            raise InputError(
                f"the {len(rows)} sequences have different lengths ({min(lengths)} to {max(lengths)} tokens); "
                f"pass padding=True (or padding='max_length') to get a rectangular batch"
            )
        if trunc_mode is None and max(lengths) > self.model_max_length and not self._warned_too_long:
            self._warned_too_long = True
            warnings.warn(
                f"Token indices sequence length is longer than the specified maximum sequence length for this "
                f"model ({max(lengths)} > {self.model_max_length}); the model will reject it. Pass truncation=True "
                f"to cut it.",
                stacklevel=2,
            )

        def stack(field: str) -> np.ndarray:
            return np.asarray([getattr(r, field) for r in rows], dtype=np.int64)

        data: dict[str, np.ndarray] = {"input_ids": stack("ids")}
        if return_token_type_ids:
            data["token_type_ids"] = stack("type_ids")
        if return_attention_mask:
            data["attention_mask"] = stack("attention_mask")
        if return_special_tokens_mask:
            data["special_tokens_mask"] = stack("special_tokens_mask")
        if return_offsets_mapping:
            data["offset_mapping"] = stack("offsets").reshape(len(rows), -1, 2)
        if return_overflowing_tokens:
            data["overflow_to_sample_mapping"] = np.asarray(sample, dtype=np.int64)
        return BatchEncoding(data, rows)

    def _strategies(
        self, padding: bool | str, truncation: bool | str | None, max_length: int | None
    ) -> tuple[str | None, str | None, int | None]:
        """Resolve padding/truncation/max_length the way transformers does."""
        if padding not in _PADDING:
            raise InputError(f"padding={padding!r} is not supported; use True, 'longest', 'max_length' or False")
        if truncation is not None and truncation not in _TRUNCATION:
            raise InputError(
                f"truncation={truncation!r} is not supported; use True, 'longest_first', 'only_first', "
                f"'only_second' or False"
            )
        if max_length is not None and (not isinstance(max_length, (int, np.integer)) or max_length <= 0):
            raise InputError(f"max_length must be a positive int, got {max_length!r}")
        if truncation is None:
            # transformers: max_length with no padding and no truncation asked means "truncate".
            truncation = "longest_first" if (max_length is not None and padding is False) else False
        pad_mode, trunc_mode = _PADDING[padding], _TRUNCATION[truncation]
        if max_length is None and (pad_mode == "max_length" or trunc_mode is not None):
            if self.model_max_length >= VERY_LARGE_INTEGER:
                raise InputError(
                    f"padding={padding!r} / truncation={truncation!r} need a length, and this tokenizer has no "
                    f"model_max_length: pass max_length"
                )
            max_length = self.model_max_length
        return pad_mode, trunc_mode, None if max_length is None else int(max_length)


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


def _check_text(value: Any, what: str) -> None:
    if not isinstance(value, str):
        raise InputError(f"{what} must be a str, got {type(value).__name__}")


def _as_batch(text: Any, text_pair: Any) -> tuple[list[str], list[str] | None]:
    """Normalize (text, text_pair) to lists of str of equal length, with clear errors."""
    if isinstance(text, str):
        if text_pair is not None and not isinstance(text_pair, str):
            raise InputError(f"text is a single str, so text_pair must be a str too, got {type(text_pair).__name__}")
        return [text], None if text_pair is None else [text_pair]
    if not isinstance(text, (list, tuple)):
        raise InputError(f"text must be a str or a list of str, got {type(text).__name__}")
    if len(text) == 0:
        raise InputError("text is an empty list; pass at least one string")
    for i, t in enumerate(text):
        if not isinstance(t, str):
            raise InputError(f"text[{i}] is a {type(t).__name__}, not a str; every item must be a string")
    if text_pair is None:
        return list(text), None
    if not isinstance(text_pair, (list, tuple)):
        raise InputError(
            f"text is a list, so text_pair must be a list of the same length, got {type(text_pair).__name__}"
        )
    if len(text_pair) != len(text):
        raise InputError(f"text has {len(text)} items but text_pair has {len(text_pair)}; they must pair up one to one")
    for i, t in enumerate(text_pair):
        if not isinstance(t, str):
            raise InputError(f"text_pair[{i}] is a {type(t).__name__}, not a str; every item must be a string")
    return list(text), list(text_pair)


def _clean_up_tokenization(text: str) -> str:
    """transformers' clean_up_tokenization: drop the spaces decoding leaves before punctuation."""
    for old, new in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                     (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(old, new)
    return text

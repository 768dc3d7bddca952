"""BERT WordPiece tokenization: a thin layer over Hugging Face `tokenizers`, used like transformers'.

    tok = AutoTokenizer.from_pretrained("minilm")          # alias or a model folder
    batch = tok(["a sentence", "another one"], padding=True, return_tensors="np")
    batch["input_ids"]        # (batch, seq) int64
    tok("a sentence")["input_ids"]                          # [101, 1037, 6251, 102]: lists, as transformers

As in transformers, return_tensors=None (the default) gives Python lists (flat for a single string, one
list per text for a batch, ragged when unpadded) and return_tensors="np" gives int64 arrays with a batch
axis ((1, seq) for a single string). Models take either. `pad` pads already tokenized features (what the
collators in tasks/collators.py call).
The Rust `tokenizers` library does the work (normalize, split, WordPiece, add [CLS]/[SEP], truncate,
pad), configured per call the way transformers configures it, so ids, offsets and overflow windows
match transformers' fast tokenizer exactly.
"""
from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Mapping, Sequence
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
from minitransfer.io.hub import drop_download_kwargs, resolve_model_path

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
_OPTIONS = (*_NORMALIZER_OPTIONS, *_SPECIAL_ATTRS, "model_max_length", "clean_up_tokenization_spaces", "padding_side")
_PADDING_SIDES = ("right", "left")

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
    """The output of a tokenizer call: a dict of lists (return_tensors=None) or int64 arrays ("np").

    Keys: input_ids, attention_mask, token_type_ids (batch, seq); offset_mapping (batch, seq, 2) and
    special_tokens_mask (batch, seq) when asked; overflow_to_sample_mapping (n_windows,) with
    return_overflowing_tokens, where each overflow window is its own row. A single string without
    return_tensors gives the row itself ((seq,) lists), as in transformers.
    `sequence_ids(i)` / `word_ids(i)` / `tokens(i)` describe row i, as in transformers.
    """

    def __init__(self, data: dict[str, Any], encodings: list[Encoding] | None = None):
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
        self.padding_side = self._options.get("padding_side") or "right"
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
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        cache_dir: str | os.PathLike | None = None,
        revision: str | None = None,
        local_files_only: bool = True,
        **kwargs: Any,
    ) -> BertTokenizer:
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
        drop_download_kwargs(kwargs)
        unknown = sorted(set(kwargs) - set(_OPTIONS))
        if unknown:
            raise InputError(f"unknown tokenizer option(s) {unknown}; supported: {list(_OPTIONS)}")
        folder = resolve_model_path(name_or_path, cache_dir=cache_dir, revision=revision,
                                    local_files_only=local_files_only)
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
        config["padding_side"] = self.padding_side
        if self.model_max_length < VERY_LARGE_INTEGER:
            config["model_max_length"] = self.model_max_length
        specials = {name: getattr(self, name) for name in _SPECIAL_ATTRS}
        config.update(specials)
        paths[2].write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        paths[3].write_text(json.dumps(specials, indent=2) + "\n", encoding="utf-8")
        return paths

    @property
    def padding_side(self) -> str:
        """Where padding goes: "right" (the default) or "left"; read from tokenizer_config.json, settable."""
        return self._padding_side

    @padding_side.setter
    def padding_side(self, side: str) -> None:
        self._padding_side = _check_padding_side(side)

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
        _check_return_tensors(return_tensors)
        texts, pairs, batched = _as_batch(text, text_pair, is_split_into_words)
        pad_mode, trunc_mode, max_length = self._strategies(padding, truncation, max_length)
        side = self.padding_side if padding_side is None else _check_padding_side(padding_side)
        multiple = _check_multiple(pad_to_multiple_of)
        if stride < 0:
            raise InputError(f"stride must be >= 0, got {stride}")
        if multiple and pad_mode and trunc_mode and max_length % multiple:
            raise InputError(
                f"truncation and padding are both on, but max_length={max_length} is not a multiple of "
                f"pad_to_multiple_of={multiple}: pass a max_length that is"
            )
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
                    direction=side,
                    pad_id=self.pad_token_id,
                    pad_type_id=0,
                    pad_token=self.pad_token,
                    length=max_length if pad_mode == "max_length" else None,
                    pad_to_multiple_of=multiple,
                )
            try:
                encodings = self._tok.encode_batch(
                    inputs, add_special_tokens=add_special_tokens, is_pretokenized=is_split_into_words
                )
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
        if return_tensors == "np" and len(lengths) > 1:
            raise InputError(
                f"the {len(rows)} sequences have different lengths ({min(lengths)} to {max(lengths)} tokens); "
                f"pass padding=True (or padding='max_length') to get a rectangular batch, or return_tensors=None "
                f"for lists"
            )
        if trunc_mode is None and max(lengths) > self.model_max_length and not self._warned_too_long:
            self._warned_too_long = True
            warnings.warn(
                f"Token indices sequence length is longer than the specified maximum sequence length for this "
                f"model ({max(lengths)} > {self.model_max_length}); the model will reject it. Pass truncation=True "
                f"to cut it.",
                stacklevel=2,
            )

        fields = {"input_ids": "ids"}  # output key -> Encoding attribute
        if return_token_type_ids is not False:
            fields["token_type_ids"] = "type_ids"
        if return_attention_mask is not False:
            fields["attention_mask"] = "attention_mask"
        if return_special_tokens_mask:
            fields["special_tokens_mask"] = "special_tokens_mask"
        if return_offsets_mapping:
            fields["offset_mapping"] = "offsets"  # (start, end) tuples per token
        if return_tensors == "np":
            data: dict[str, Any] = {
                key: np.asarray([getattr(r, name) for r in rows], dtype=np.int64) for key, name in fields.items()
            }
            if return_offsets_mapping:
                data["offset_mapping"] = data["offset_mapping"].reshape(len(rows), lengths.pop(), 2)
            if return_overflowing_tokens:
                data["overflow_to_sample_mapping"] = np.asarray(sample, dtype=np.int64)
        else:
            data = {key: [list(getattr(r, name)) for r in rows] for key, name in fields.items()}
            if return_overflowing_tokens:
                data["overflow_to_sample_mapping"] = sample
            elif not batched:  # one text: its row, as transformers (overflow windows stay a batch there too)
                data = {key: value[0] for key, value in data.items()}
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
        _check_return_tensors(return_tensors)
        columns = _feature_columns(encoded_inputs)
        ids = columns["input_ids"]
        if return_tensors is None and (isinstance(ids, np.ndarray) or isinstance(ids[0], np.ndarray)):
            return_tensors = "np"
        single = np.ndim(ids[0]) == 0
        if single:
            columns = {key: [value] for key, value in columns.items()}
        count = len(columns["input_ids"])
        for key, values in columns.items():
            if len(values) != count:
                raise InputError(f"{key} has {len(values)} rows but input_ids has {count}: one row per example")
        pad_mode, _, max_length = self._strategies(padding, False, max_length)
        lengths = [len(row) for row in columns["input_ids"]]
        target = {"longest": max(lengths), "max_length": max_length, None: None}[pad_mode]
        multiple = _check_multiple(pad_to_multiple_of)
        if target is not None and multiple:
            target = -(-target // multiple) * multiple
        side = self.padding_side if padding_side is None else _check_padding_side(padding_side)
        if return_attention_mask is False:
            columns.pop("attention_mask", None)
        elif "attention_mask" not in columns:
            columns["attention_mask"] = [[1] * n for n in lengths]

        fills = {"input_ids": self.pad_token_id, "attention_mask": 0, "token_type_ids": 0, "special_tokens_mask": 1}
        data: dict[str, Any] = {}
        for key, values in columns.items():
            if key not in fills:
                data[key] = list(values)
                continue
            padded = []
            for i, row in enumerate(values):
                row = row.tolist() if isinstance(row, np.ndarray) else list(row)
                if len(row) != lengths[i]:
                    raise InputError(f"example {i}: {key} has {len(row)} values but input_ids has {lengths[i]}")
                extra = [fills[key]] * max(0, (target or 0) - len(row))
                padded.append(row + extra if side == "right" else extra + row)
            data[key] = padded
        if return_tensors == "np":
            data = {key: _stack(key, values, key in fills) for key, values in data.items()}
        if single:
            data = {key: value[0] for key, value in data.items()}
        return BatchEncoding(data)

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


def _check_return_tensors(return_tensors: Any) -> None:
    if return_tensors is not None and return_tensors != "np":
        raise InputError(
            f"return_tensors={return_tensors!r} is not supported: minitransfer returns NumPy arrays ('np') or "
            f"Python lists (None), and its models take either"
        )


def _check_padding_side(side: Any) -> str:
    if side not in _PADDING_SIDES:
        raise InputError(f"padding_side must be 'right' or 'left', got {side!r}")
    return side


def _check_multiple(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InputError(f"pad_to_multiple_of must be a positive int or None, got {value!r}")
    return int(value)


def _feature_columns(encoded_inputs: Any) -> dict[str, Any]:
    """pad()'s input as {key: one value per example}: a list of feature dicts is turned column-wise."""
    if isinstance(encoded_inputs, Mapping):
        columns = dict(encoded_inputs)
    elif isinstance(encoded_inputs, (list, tuple)):
        if not encoded_inputs:
            raise InputError("nothing to pad: pass a list of feature dicts such as {'input_ids': [...]}")
        for i, feature in enumerate(encoded_inputs):
            if not isinstance(feature, Mapping):
                raise InputError(f"feature {i} is a {type(feature).__name__}; pad() takes dicts of token ids")
        keys = list(encoded_inputs[0].keys())
        for i, feature in enumerate(encoded_inputs):
            missing = [k for k in keys if k not in feature]
            if missing:
                raise InputError(f"feature {i} lacks {missing}, which feature 0 has; every feature needs the same keys")
        columns = {key: [feature[key] for feature in encoded_inputs] for key in keys}
    else:
        raise InputError(f"pad() takes a list of feature dicts or a dict of lists, got {type(encoded_inputs).__name__}")
    if "input_ids" not in columns:
        raise InputError(f"the features have no input_ids (keys: {sorted(columns)}); pad() pads tokenized features")
    if len(columns["input_ids"]) == 0:
        raise InputError("nothing to pad: input_ids is empty")
    return columns


def _stack(key: str, values: list, is_tokens: bool) -> np.ndarray:
    """One array from the rows of `key`: token rows must be of one length (int64); other keys as NumPy stacks them."""
    if is_tokens:
        lengths = {len(v) for v in values}
        if len(lengths) > 1:
            raise InputError(
                f"{key} rows have different lengths ({min(lengths)} to {max(lengths)}); pass padding=True (or "
                f"padding='max_length') to get a rectangular batch, or return_tensors=None for lists"
            )
        return np.asarray(values, dtype=np.int64).reshape(len(values), lengths.pop())
    try:
        return np.asarray(values)
    except ValueError as e:
        raise InputError(
            f"the {key!r} values of the examples cannot be stacked into one array ({e}); per-token labels need "
            f"padding too: use DataCollatorForTokenClassification"
        ) from None


def _check_text(value: Any, what: str) -> None:
    if not isinstance(value, str):
        raise InputError(f"{what} must be a str, got {type(value).__name__}")


def _as_batch(text: Any, text_pair: Any, is_split_into_words: bool = False) -> tuple[list, list | None, bool]:
    """(texts, text_pairs or None, batched): the input as lists of equal length, with clear errors.

    With is_split_into_words each text is a list of words, and a single list of words is one text.
    """
    if is_split_into_words:
        return _as_word_batch(text, text_pair)
    if isinstance(text, str):
        if text_pair is not None and not isinstance(text_pair, str):
            raise InputError(f"text is a single str, so text_pair must be a str too, got {type(text_pair).__name__}")
        return [text], None if text_pair is None else [text_pair], False
    if not isinstance(text, (list, tuple)):
        raise InputError(f"text must be a str or a list of str, got {type(text).__name__}")
    if len(text) == 0:
        raise InputError("text is an empty list; pass at least one string")
    for i, t in enumerate(text):
        if not isinstance(t, str):
            hint = "; for lists of words pass is_split_into_words=True" if isinstance(t, (list, tuple)) else ""
            raise InputError(f"text[{i}] is a {type(t).__name__}, not a str; every item must be a string{hint}")
    if text_pair is None:
        return list(text), None, True
    if not isinstance(text_pair, (list, tuple)):
        raise InputError(
            f"text is a list, so text_pair must be a list of the same length, got {type(text_pair).__name__}"
        )
    if len(text_pair) != len(text):
        raise InputError(f"text has {len(text)} items but text_pair has {len(text_pair)}; they must pair up one to one")
    for i, t in enumerate(text_pair):
        if not isinstance(t, str):
            raise InputError(f"text_pair[{i}] is a {type(t).__name__}, not a str; every item must be a string")
    return list(text), list(text_pair), True


def _words(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        raise InputError(f"{what} is a str, but is_split_into_words=True wants a list of words: pass text.split() "
                         f"or drop is_split_into_words")
    if not isinstance(value, (list, tuple)) or not all(isinstance(w, str) for w in value):
        raise InputError(f"{what} must be a list of words (str) with is_split_into_words=True")
    return list(value)


def _as_word_batch(text: Any, text_pair: Any) -> tuple[list[list[str]], list[list[str]] | None, bool]:
    """_as_batch for pre-split input: a list of words is one text, a list of lists of words a batch."""
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


def _clean_up_tokenization(text: str) -> str:
    """transformers' clean_up_tokenization: drop the spaces decoding leaves before punctuation."""
    for old, new in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                     (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(old, new)
    return text

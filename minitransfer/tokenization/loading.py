"""Tokenizer files <-> a ready `tokenizers.Tokenizer` and the settings transformers keeps beside it.

A folder holds tokenizer.json (the whole pipeline) or just vocab.txt (then the BERT pipeline is built here, piece
by piece, as transformers' BertTokenizer builds it), and optionally tokenizer_config.json and
special_tokens_map.json: the special tokens, model_max_length, padding_side, lowercasing and accent stripping.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from minitransfer.errors import CheckpointError
from minitransfer.io.checkpoint import read_json

SPECIAL_TOKENS = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")  # transformers' order
DEFAULT_SPECIALS = dict(zip(SPECIAL_TOKENS, ("[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]")))
NORMALIZER_OPTIONS = ("do_lower_case", "strip_accents", "tokenize_chinese_chars")
# What tokenizer_config.json (or a from_pretrained keyword) may set.
OPTIONS = (*NORMALIZER_OPTIONS, *SPECIAL_TOKENS, "model_max_length", "clean_up_tokenization_spaces", "padding_side")


def _config(path: Path) -> dict:
    return read_json(path, "tokenizer config") if path.is_file() else {}


def _token_text(value: Any) -> str | None:
    """Special tokens are stored either as a plain string or as an AddedToken dict {"content": ...}."""
    value = value.get("content") if isinstance(value, dict) else value
    return value if isinstance(value, str) else None


def _bert_normalizer(options: dict[str, Any]) -> normalizers.BertNormalizer:
    return normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=bool(options.get("tokenize_chinese_chars", True)),
        strip_accents=options.get("strip_accents"),  # None: follow lowercase, as original BERT does
        lowercase=bool(options.get("do_lower_case", True)))


def _from_vocab(vocab_file: Path, options: dict[str, Any]) -> Tokenizer:
    """The BERT pipeline, piece by piece, as transformers' BertTokenizer builds it."""
    with open(vocab_file, encoding="utf-8") as f:
        vocab = {line.rstrip("\n"): index for index, line in enumerate(f)}  # only the newline, as transformers
    if not vocab:
        raise CheckpointError(f"{vocab_file} is empty; a WordPiece vocabulary has one token per line")
    for name in ("unk_token", "cls_token", "sep_token"):
        if options[name] not in vocab:
            raise CheckpointError(f"{vocab_file} has no {name} {options[name]!r}; set {name} in tokenizer_config.json")
    tok = Tokenizer(WordPiece(vocab, unk_token=options["unk_token"], max_input_chars_per_word=100))
    tok.normalizer = _bert_normalizer(options)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    cls, sep = options["cls_token"], options["sep_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
        special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])])
    return tok


def normalizer_options(tok: Tokenizer, options: dict[str, Any]) -> dict[str, Any]:
    """The effective normalizer settings: the tokenizer's BertNormalizer, overridden by `options`."""
    norm, merged = tok.normalizer, {}
    if isinstance(norm, normalizers.BertNormalizer):
        merged = {"do_lower_case": norm.lowercase, "strip_accents": norm.strip_accents,
                  "tokenize_chinese_chars": norm.handle_chinese_chars}
    return merged | {k: options[k] for k in NORMALIZER_OPTIONS if k in options}


def load_tokenizer(folder: Path, overrides: dict[str, Any]) -> tuple[Tokenizer, dict[str, Any]]:
    """The folder's tokenizer and its options: tokenizer_config.json, special_tokens_map.json, then ``overrides``.

    Uses tokenizer.json when present (its normalizer rebuilt only when ``overrides`` change it), else builds the
    BERT pipeline from vocab.txt. CheckpointError for a tokenizer that is not WordPiece, or missing files.
    """
    config = _config(folder / "tokenizer_config.json")
    tokenizer_class = config.get("tokenizer_class")
    if tokenizer_class and not str(tokenizer_class).startswith(("BertTokenizer", "DistilBertTokenizer")):
        raise CheckpointError(f"{folder} has a {tokenizer_class}; minitransfer supports only WordPiece tokenizers "
                              "(BertTokenizer, DistilBertTokenizer)")
    options = DEFAULT_SPECIALS | {k: v for k, v in config.items() if k in OPTIONS and k not in SPECIAL_TOKENS}
    for source in (config, _config(folder / "special_tokens_map.json")):
        for name in SPECIAL_TOKENS:
            if (text := _token_text(source.get(name))) is not None:
                options[name] = text
    options |= overrides
    json_file, vocab_file = folder / "tokenizer.json", folder / "vocab.txt"
    if vocab_file.is_file() and not json_file.is_file():
        return _from_vocab(vocab_file, options), options
    if not json_file.is_file():
        raise CheckpointError(f"{folder} has neither tokenizer.json nor vocab.txt; copy the tokenizer files of the "
                              "checkpoint there")
    try:
        tok = Tokenizer.from_file(str(json_file))
    except Exception as e:  # the Rust loader raises a bare Exception
        raise CheckpointError(f"{json_file} could not be loaded ({e}); restore it, or delete it to build from "
                              "vocab.txt") from e
    if type(tok.model).__name__ != "WordPiece":
        raise CheckpointError(f"{json_file} holds a {type(tok.model).__name__} model; minitransfer supports only "
                              "WordPiece (BERT)")
    if any(k in overrides for k in NORMALIZER_OPTIONS):
        tok.normalizer = _bert_normalizer(normalizer_options(tok, options))
    return tok, options


def save_tokenizer(directory: Path, tok: Tokenizer, config: dict[str, Any]) -> list[Path]:
    """Write tokenizer.json, vocab.txt, tokenizer_config.json (``config``) and special_tokens_map.json (its
    special tokens): a folder both load_tokenizer and transformers read back identically."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / n for n in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")]
    tok.save(str(paths[0]))
    by_id = sorted(tok.get_vocab(with_added_tokens=True).items(), key=lambda kv: kv[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise CheckpointError("the vocabulary ids are not contiguous from 0; it cannot be written as vocab.txt")
    paths[1].write_text("".join(f"{token}\n" for token, _ in by_id), encoding="utf-8")
    paths[2].write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    specials = {name: config[name] for name in SPECIAL_TOKENS}
    paths[3].write_text(json.dumps(specials, indent=2) + "\n", encoding="utf-8")
    return paths

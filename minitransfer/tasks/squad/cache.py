"""An on-disk cache of SquadFeatures: one .npz per (examples, tokenizer, max_length, doc_stride).

The key hashes the examples' full content (ids, titles, contexts, questions, answers), the tokenizer's
vocabulary and normalization, the lengths and FORMAT, so any change makes a new file rather than a stale hit.
A file that cannot be read is treated as a miss and rewritten.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from minitransfer.tasks.squad.data import SquadExample
from minitransfer.tasks.squad.features import SKIP_REASONS, SquadFeatures

logger = logging.getLogger("minitransfer")

# Bump when the feature layout or the windowing rule changes, so old cache files stop matching.
FORMAT = 1
_ARRAYS = ("input_ids", "attention_mask", "token_type_ids", "example_index", "example_id",
           "start_positions", "end_positions", "offset_mapping")
# Case, accents, CJK characters and an added token: enough to tell tokenizer normalizations apart.
_PROBE = "Héllo WORLD naïve 東京 [MASK] don't"


def examples_fingerprint(examples: Sequence[SquadExample]) -> str:
    """sha256 of every field of every example, in order."""
    digest = hashlib.sha256()
    for ex in examples:
        record = [ex.id, ex.title, ex.context, ex.question, [[a["text"], a["answer_start"]] for a in ex.answers]]
        digest.update(json.dumps(record, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the vocabulary, the special tokens and how a probe string tokenizes."""
    record = [sorted(tokenizer.get_vocab().items()), tokenizer.all_special_tokens, tokenizer.tokenize(_PROBE)]
    return hashlib.sha256(json.dumps(record, ensure_ascii=False).encode("utf-8")).hexdigest()


def cache_path(cache_dir: str | os.PathLike, kind: str, examples: Sequence[SquadExample], tokenizer,
               max_length: int, doc_stride: int) -> Path:
    """The file under cache_dir for these inputs: squad-{kind}-{key}.npz."""
    key = json.dumps([FORMAT, kind, examples_fingerprint(examples), tokenizer_fingerprint(tokenizer),
                      int(max_length), int(doc_stride)])
    return Path(cache_dir) / f"squad-{kind}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"


def save_features(features: SquadFeatures, path: Path) -> None:
    """Write `features` to `path` (via a temporary file, so a crash never leaves half a cache file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: getattr(features, name) for name in _ARRAYS if getattr(features, name) is not None}
    arrays["skipped"] = np.array([features.skipped[r] for r in SKIP_REASONS], dtype=np.int64)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def load_features(path: Path) -> SquadFeatures | None:
    """The features stored at `path`, or None when there is no usable file."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data.get(name) for name in _ARRAYS}
            if any(arrays[name] is None for name in _ARRAYS[:5]):
                raise KeyError(f"it lacks one of {_ARRAYS[:5]}")
            skipped = dict(zip(SKIP_REASONS, (int(x) for x in data["skipped"])))
        return SquadFeatures(**arrays, skipped=skipped)
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
        logger.warning(f"ignoring unreadable feature cache {path} ({e}); rebuilding it")
        return None

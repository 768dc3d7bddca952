"""An on-disk cache of feature arrays: one .npz per key, the key a fingerprint of everything the arrays depend on.

    path = cache_path(cache_dir, "squad-train", [fingerprint(records), tokenizer_fingerprint(tok), 384, 128])
    arrays = load_arrays(path, required=("input_ids",))    # None: no file, or one that cannot be read
    save_arrays(arrays, path)                              # written whole or not at all

Any change to what the key holds makes a new file rather than a stale hit; a file that cannot be read is
treated as a miss (and logged), so the caller rebuilds and rewrites it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

logger = logging.getLogger("minitransfer")

# Case, accents, CJK characters and an added token: enough to tell tokenizer normalizations apart.
_PROBE = "Héllo WORLD naïve 東京 [MASK] don't"


def fingerprint(records: Iterable) -> str:
    """sha256 of the JSON of every record, in order (records: anything json.dumps takes)."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps(record, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the vocabulary, the special tokens and how a probe string tokenizes."""
    return fingerprint([[sorted(tokenizer.get_vocab().items()), tokenizer.all_special_tokens,
                         tokenizer.tokenize(_PROBE)]])


def cache_path(cache_dir: str | os.PathLike, prefix: str, key: list) -> Path:
    """The file under cache_dir for this key: {prefix}-{20 hex digits of its sha256}.npz."""
    return Path(cache_dir) / f"{prefix}-{fingerprint([key])[:20]}.npz"


def save_arrays(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Write `arrays` to `path` (via a temporary file, so a crash never leaves half a cache file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def load_arrays(path: Path, required: tuple[str, ...] = ()) -> dict[str, np.ndarray] | None:
    """The arrays stored at `path`, or None when there is no usable file (missing, damaged, or lacking one of
    `required`)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        missing = [name for name in required if name not in arrays]
        if missing:
            raise KeyError(f"it lacks {missing}")
        return arrays
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
        logger.warning(f"ignoring unreadable feature cache {path} ({e}); rebuilding it")
        return None

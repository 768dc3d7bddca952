"""The model-directory boundary: config.json plus weights, in the layout Hugging Face uses.

A model directory holds ``config.json`` and one of (in order of preference) ``model.safetensors``,
``model.safetensors.index.json`` (+ shards), ``pytorch_model.bin``, ``pytorch_model.bin.index.json``
(+ shards). Everything is checked here, where files enter, so the model code can trust what it gets.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from minitransfer.backend import to_numpy
from minitransfer.errors import CheckpointError
from minitransfer.io.safetensors_io import load_safetensors, save_safetensors
from minitransfer.io.torch_pickle import load_torch_bin

__all__ = ["find_weights_file", "load_config", "load_state_dict", "parse_size", "read_json", "save_checkpoint"]

CONFIG_NAME = "config.json"
SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME = "model.safetensors", "model.safetensors.index.json"
# Preference order, as in transformers: safetensors before pickles, a single file before shards.
WEIGHTS_NAMES = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, "pytorch_model.bin", "pytorch_model.bin.index.json")
_SHARD_NAME = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")
DEFAULT_MAX_SHARD_SIZE = "5GB"
# As huggingface_hub reads them: KB/MB/GB/TB are powers of 1000; KiB/MiB/GiB/TiB powers of 1024.
_SIZE_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def _model_dir(model_dir: str | os.PathLike) -> Path:
    path = Path(model_dir)
    if not path.exists():
        raise CheckpointError(f"model directory {path} does not exist: pass a folder holding config.json and "
                              "model.safetensors (or pytorch_model.bin), e.g. one written by save_pretrained")
    if not path.is_dir():
        raise CheckpointError(f"{path} is a file, not a model directory: pass the folder that holds config.json and "
                              "the weights")
    return path


def _listing(path: Path, limit: int = 20) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    if not names:
        return "it is empty"
    shown = ", ".join(names[:limit])
    return f"it contains: {shown}" + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _broken_link(path: Path) -> str:
    """A note for a missing file that is a dangling symlink (a Hugging Face cache whose blob is gone)."""
    if path.is_symlink() and not path.exists():
        return (f" {path.name} is a link to {os.readlink(path)}, which is missing: the cache download was "
                "incomplete; copy that file again.")
    return ""


def read_json(path: Path, what: str) -> dict:
    """The JSON object in ``path`` (a config.json, tokenizer_config.json, shard index: ``what``), or a
    CheckpointError that says where the file is broken."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); fix or "
                              f"re-download the {what}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path} holds a JSON {type(value).__name__}, but a {what} is a JSON object")
    return value


def load_config(model_dir: str | os.PathLike) -> dict:
    """The parsed ``config.json`` of a model directory (unvalidated: the model config decides what it needs).

    Raises:
        CheckpointError: the directory is missing or a file, has no config.json, or the JSON is invalid.
    """
    path = _model_dir(model_dir)
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(f"{path} has no {CONFIG_NAME} ({_listing(path)}); is it a model directory?"
                              + _broken_link(config_path))
    return read_json(config_path, "model config")


def find_weights_file(model_dir: str | os.PathLike) -> Path:
    """The weights file of a model directory: model.safetensors, else pytorch_model.bin, else a shard index.

    Returns:
        The path of the first of ``WEIGHTS_NAMES`` present (for sharded weights, the ``*.index.json``).

    Raises:
        CheckpointError: the directory is missing or holds none of them (the message lists what it holds).
    """
    path = _model_dir(model_dir)
    for name in WEIGHTS_NAMES:
        if (path / name).is_file():
            return path / name
    raise CheckpointError(f"{path} has no weights file ({_listing(path)}); expected one of {', '.join(WEIGHTS_NAMES)}. "
                          "Save the model with save_pretrained or download its weights."
                          + "".join(_broken_link(path / name) for name in WEIGHTS_NAMES))


def _load_file(path: Path) -> dict[str, np.ndarray]:
    return load_safetensors(path) if path.name.endswith(".safetensors") else load_torch_bin(path)


def _load_sharded(index_path: Path) -> dict[str, np.ndarray]:
    """Load every shard an ``*.index.json`` names, keeping the tensors its ``weight_map`` assigns to each."""
    index = read_json(index_path, "shard index")
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{index_path} has no valid weight_map (a JSON object of tensor name -> shard file)")
    shards: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        shards.setdefault(shard, []).append(name)
    state = {}
    for shard, names in shards.items():
        # A shard is a sibling file: no folders, so an index cannot point outside the model directory.
        if Path(shard).name != shard or shard in ("", ".", ".."):
            raise CheckpointError(f"{index_path} names shard {shard!r}, which is not a plain file name")
        shard_path = index_path.parent / shard
        if not shard_path.is_file():
            raise CheckpointError(f"{index_path} lists shard {shard}, which is missing from {index_path.parent}; "
                                  "download it" + _broken_link(shard_path))
        tensors = _load_file(shard_path)
        missing = [n for n in names if n not in tensors]
        if missing:
            raise CheckpointError(f"{shard_path} lacks {len(missing)} tensor(s) its index assigns to it, e.g. "
                                  f"{missing[0]!r}; the shards and the index do not match: download them again")
        state.update((n, tensors[n]) for n in names)
    return state


def load_state_dict(model_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a model directory's weights as ``{Hugging Face parameter name: array}``.

    Floating-point tensors come back as float32 whatever they were stored as (float16, bfloat16, float64);
    integer and bool buffers keep their dtype. Names are returned as stored (no renames).

    Raises:
        CheckpointError: no weights file, or a missing/truncated/malformed one (see the loaders).
    """
    weights = find_weights_file(model_dir)
    state = _load_sharded(weights) if weights.name.endswith(".index.json") else _load_file(weights)
    # float32 parameters everywhere (fp16/bf16 checkpoints are upcast); int/bool buffers stay as they are.
    return {k: v.astype(np.float32) if v.dtype.kind == "f" and v.dtype != np.float32 else v for k, v in state.items()}


def parse_size(size: int | str) -> int:
    """Bytes in a shard size: an int (bytes) or a number with a unit, as transformers takes them.

    "200MB", "2GB", "500KB", "1.5GB" (KB/MB/GB/TB: powers of 1000), "1GiB" (KiB/MiB/GiB/TiB: powers of 1024).

    Raises:
        CheckpointError: anything else, or a size that is not positive.
    """
    value = None
    if isinstance(size, int) and not isinstance(size, bool):
        value = size
    elif isinstance(size, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([A-Za-z]+)\s*", size)
        if match and match.group(2).upper() in _SIZE_UNITS:
            value = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])
    if value is None or value <= 0:
        raise CheckpointError(f"max_shard_size={size!r} is not a size: pass a number of bytes or a string such as "
                              "'200MB', '2GB', '500KB' (or '1GiB')")
    return value


def _split_into_shards(state: dict, max_bytes: int) -> list[dict]:
    """Consecutive groups of tensors, in order, each under max_bytes where it can be (as huggingface_hub splits):
    a new shard starts when the next tensor would push the current one over; a bigger tensor is a shard alone."""
    shards, current, current_bytes = [], {}, 0
    for name, array in state.items():
        nbytes = array.nbytes
        if nbytes > max_bytes:
            shards.append({name: array})
            continue
        if current and current_bytes + nbytes > max_bytes:
            shards.append(current)
            current, current_bytes = {}, 0
        current[name] = array
        current_bytes += nbytes
    if current or not shards:
        shards.append(current)
    return shards


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        raise CheckpointError(f"cannot write {path}: {e}") from None


def save_checkpoint(
    model_dir: str | os.PathLike,
    state: dict[str, np.ndarray],
    config: dict,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
) -> None:
    """Write the weights and ``config.json`` into ``model_dir`` (created if needed).

    Weights up to ``max_shard_size`` (bytes, or a string such as "5GB", "200MB"; see parse_size) go into one
    ``model.safetensors``; more are split in order into ``model-00001-of-0000N.safetensors`` shards plus
    ``model.safetensors.index.json`` (``{"metadata": {"total_size": bytes}, "weight_map": {name: shard}}``).
    Weight files of an earlier save that this one does not replace are removed, so the folder never mixes two.

    The layout is what ``transformers``' ``from_pretrained`` loads: ``state`` should use Hugging Face
    parameter names and ``config`` should be a Hugging Face config dict (with ``model_type``).

    Raises:
        CheckpointError: ``model_dir`` is an existing file, cannot be created or written, ``config`` is not
            JSON-serialisable, or ``max_shard_size`` is not a size.
    """
    path = Path(model_dir)
    max_bytes = parse_size(max_shard_size)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"cannot save a checkpoint to {path}: it is a file; pass a directory path")
    try:
        text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"cannot save {path / CONFIG_NAME}: the config is not JSON-serialisable ({e})") from None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"cannot create model directory {path}: {e}") from None
    state = {name: to_numpy(array) for name, array in state.items()}
    shards = _split_into_shards(state, max_bytes)
    if len(shards) == 1:
        written = {SAFE_WEIGHTS_NAME}
        save_safetensors(state, path / SAFE_WEIGHTS_NAME, metadata={"format": "pt"})
    else:
        files = [f"model-{i:05d}-of-{len(shards):05d}.safetensors" for i in range(1, len(shards) + 1)]
        for file, shard in zip(files, shards):
            save_safetensors(shard, path / file, metadata={"format": "pt"})
        index = {"metadata": {"total_size": sum(int(a.nbytes) for a in state.values())},
                 "weight_map": {name: file for file, shard in zip(files, shards) for name in shard}}
        _write_text(path / SAFE_WEIGHTS_INDEX_NAME, json.dumps(index, indent=2, sort_keys=True) + "\n")
        written = {SAFE_WEIGHTS_INDEX_NAME, *files}
    for old in path.iterdir():  # a stale model.safetensors would win over new shards (and old shards waste disk)
        if old.name not in written and (old.name in (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME)
                                        or _SHARD_NAME.fullmatch(old.name)):
            old.unlink()
    _write_text(path / CONFIG_NAME, text)

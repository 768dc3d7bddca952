"""The model-directory boundary: config.json plus weights, in the layout Hugging Face uses.

A model directory holds ``config.json`` and one of (in order of preference) ``model.safetensors``,
``model.safetensors.index.json`` (+ shards), ``pytorch_model.bin``, ``pytorch_model.bin.index.json``
(+ shards). Everything is checked here, where files enter, so the model code can trust what it gets.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from minitransfer.errors import CheckpointError
from minitransfer.io.safetensors_io import load_safetensors, save_safetensors
from minitransfer.io.torch_pickle import load_torch_bin

__all__ = ["find_weights_file", "load_config", "load_state_dict", "save_checkpoint"]

CONFIG_NAME = "config.json"
# Preference order, as in transformers: safetensors before pickles, a single file before shards.
WEIGHTS_NAMES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def _model_dir(model_dir: str | os.PathLike) -> Path:
    path = Path(model_dir)
    if not path.exists():
        raise CheckpointError(
            f"model directory {path} does not exist: pass a folder holding config.json and model.safetensors "
            "(or pytorch_model.bin), e.g. one written by save_pretrained"
        )
    if not path.is_dir():
        raise CheckpointError(
            f"{path} is a file, not a model directory: pass the folder that holds config.json and the weights"
        )
    return path


def _listing(path: Path, limit: int = 20) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    if not names:
        return "it is empty"
    shown = ", ".join(names[:limit])
    return f"it contains: {shown}" + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _read_json(path: Path, what: str) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(
            f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); fix or re-download the {what}"
        ) from None
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
        raise CheckpointError(f"{path} has no {CONFIG_NAME} ({_listing(path)}); is it a model directory?")
    return _read_json(config_path, "model config")


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
    raise CheckpointError(
        f"{path} has no weights file ({_listing(path)}); expected one of {', '.join(WEIGHTS_NAMES)}. "
        "Save the model with save_pretrained or download its weights."
    )


def _load_file(path: Path) -> dict[str, np.ndarray]:
    return load_safetensors(path) if path.name.endswith(".safetensors") else load_torch_bin(path)


def _load_sharded(index_path: Path) -> dict[str, np.ndarray]:
    """Load every shard an ``*.index.json`` names, keeping the tensors its ``weight_map`` assigns to each."""
    index = _read_json(index_path, "shard index")
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
            raise CheckpointError(
                f"{index_path} lists shard {shard}, which is missing from {index_path.parent}; download it"
            )
        tensors = _load_file(shard_path)
        missing = [n for n in names if n not in tensors]
        if missing:
            raise CheckpointError(
                f"{shard_path} lacks {len(missing)} tensor(s) its index assigns to it, e.g. {missing[0]!r}; "
                "the shards and the index do not match: download them again"
            )
        state.update((n, tensors[n]) for n in names)
    return state


def _to_float32(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    # float32 parameters everywhere (fp16/bf16 checkpoints are upcast); int/bool buffers stay as they are.
    return {k: v.astype(np.float32) if v.dtype.kind == "f" and v.dtype != np.float32 else v for k, v in state.items()}


def load_state_dict(model_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a model directory's weights as ``{Hugging Face parameter name: array}``.

    Floating-point tensors come back as float32 whatever they were stored as (float16, bfloat16, float64);
    integer and bool buffers keep their dtype. Names are returned as stored (no renames).

    Raises:
        CheckpointError: no weights file, or a missing/truncated/malformed one (see the loaders).
    """
    weights = find_weights_file(model_dir)
    state = _load_sharded(weights) if weights.name.endswith(".index.json") else _load_file(weights)
    return _to_float32(state)


def save_checkpoint(model_dir: str | os.PathLike, state: dict[str, np.ndarray], config: dict) -> None:
    """Write ``model.safetensors`` and ``config.json`` into ``model_dir`` (created if needed).

    The layout is what ``transformers``' ``from_pretrained`` loads: ``state`` should use Hugging Face
    parameter names and ``config`` should be a Hugging Face config dict (with ``model_type``).

    Raises:
        CheckpointError: ``model_dir`` is an existing file, cannot be created or written, or ``config`` is not
            JSON-serialisable.
    """
    path = Path(model_dir)
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
    save_safetensors(state, path / "model.safetensors", metadata={"format": "pt"})
    tmp = path / (CONFIG_NAME + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path / CONFIG_NAME)
    except OSError as e:
        raise CheckpointError(f"cannot write {path / CONFIG_NAME}: {e}") from None

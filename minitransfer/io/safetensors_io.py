"""Read and write ``.safetensors`` files as ``{name: np.ndarray}``.

The format: an 8-byte little-endian header length N, N bytes of JSON (``{name: {"dtype": "F32", "shape": [...],
"data_offsets": [begin, end]}, "__metadata__": {...}}``), then the tensor bytes, offsets counted from the header's
end. Writing is ``safetensors.numpy.save_file``'s. Reading is ours, for what the library cannot do: NumPy has no
bfloat16 (BF16 is widened to float32 here), and a hostile or truncated file is refused with a message that says
what is wrong with it, checked whole before a byte of tensor data is read or allocated.
"""
from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import save_file

from minitransfer.backend import to_numpy
from minitransfer.errors import CheckpointError

__all__ = ["load_safetensors", "save_safetensors"]

# safetensors dtype code -> NumPy dtype of its little-endian bytes (BF16 read as raw uint16, then widened).
_DTYPES = {code: np.dtype(name).newbyteorder("<") for code, name in {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "uint16", "I64": "int64", "I32": "int32",
    "I16": "int16", "I8": "int8", "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
}.items()}
_MAX_HEADER_BYTES = 100_000_000  # the library's own cap: a longer header is not a weights file
_REDO = "download it again, or re-save it"


def _read_header(path: Path, f, file_size: int) -> dict:
    """The parsed JSON header, its length checked against the file before anything is allocated for it."""
    prefix = f.read(8)
    if len(prefix) < 8:
        raise CheckpointError(f"{path} is truncated: {file_size} bytes, too short for a safetensors header")
    (header_len,) = struct.unpack("<Q", prefix)
    if header_len > file_size - 8:
        raise CheckpointError(f"{path} is truncated or not a safetensors file: its length prefix declares a "
                              f"safetensors header of {header_len:,} bytes in a {file_size:,}-byte file; {_REDO}")
    if header_len > _MAX_HEADER_BYTES:
        raise CheckpointError(f"{path} is not a safetensors file: its header claims {header_len:,} bytes, more than "
                              f"the {_MAX_HEADER_BYTES:,} a safetensors header may have; {_REDO}")
    try:
        header = json.loads(f.read(header_len))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not a safetensors file: its header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a safetensors file: its header is not a JSON object")
    return header


def _tensor_spec(path: Path, name: str, entry: object) -> tuple[str, tuple[int, ...], int, int]:
    """(dtype code, shape, begin, end) of one header entry, checked: a known dtype, a shape that fills its range."""
    def naturals(value: object, length: int | None = None) -> bool:
        return isinstance(value, list) and length in (None, len(value)) and all(
            isinstance(n, int) and n >= 0 for n in value)

    if not (isinstance(entry, dict) and isinstance(entry.get("dtype"), str) and naturals(entry.get("shape"))
            and naturals(entry.get("data_offsets"), 2)):
        raise CheckpointError(f"{path} is corrupt: header entry for tensor {name!r} is malformed: {entry!r}")
    code, shape, (begin, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
    if code not in _DTYPES:
        raise CheckpointError(f"{path}: tensor {name!r} has dtype {code}, which minitransfer cannot read; convert the "
                              "checkpoint to F32/F16/BF16 and save it again.")
    expected = math.prod(shape) * _DTYPES[code].itemsize
    if math.prod(max(n, 1) for n in shape) >= 2**62 or end - begin != expected:
        raise CheckpointError(f"{path} is corrupt: tensor {name!r} ({code}, shape {list(shape)}) needs {expected} "
                              f"bytes, its offsets [{begin}, {end}] span {end - begin}; {_REDO}")
    return code, shape, begin, end


def _check_layout(path: Path, specs: dict[str, tuple[str, tuple[int, ...], int, int]], data_size: int) -> None:
    """Every tensor's bytes inside the data section, no two overlapping: the tensors then total at most the file's
    size, whatever the header says (overlapping ranges would each be read and copied)."""
    last = max(specs, key=lambda n: specs[n][3], default=None)
    if last is not None and specs[last][3] > data_size:
        raise CheckpointError(
            f"{path} is truncated (header says {specs[last][3]} bytes of tensor data, file has {data_size}): tensor "
            f"{last!r} has data_offsets {list(specs[last][2:])} past the end of the data section; {_REDO}")
    spans = sorted((begin, end, name) for name, (_, _, begin, end) in specs.items() if end > begin)
    for (_, prev_end, prev), (begin, end, name) in zip(spans, spans[1:]):
        if begin < prev_end:
            raise CheckpointError(
                f"{path} is corrupt: tensors {prev!r} and {name!r} overlap (data_offsets {list(specs[prev][2:])} "
                f"and {[begin, end]}); a safetensors file holds each tensor's bytes once: {_REDO}")


def load_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file, ``{name: array}`` in header order, each writable and contiguous.

    Stored dtypes are kept, except BF16, which becomes float32 (exact: a bf16 is the top half of a float32).

    Raises:
        CheckpointError: a missing, truncated or malformed file (header length past the file or over 100 MB,
            data_offsets past the data or overlapping, a shape that does not fill its range), or a dtype NumPy
            cannot hold (F8_*). All of it is checked before a tensor is read; tensors are then read one at a
            time, so memory stays near the file's size.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} " + ("is not a file" if path.exists() else "does not exist"))
    file_size = path.stat().st_size
    with open(path, "rb") as f:
        header = _read_header(path, f, file_size)
        specs = {name: _tensor_spec(path, name, entry) for name, entry in header.items() if name != "__metadata__"}
        data_start = f.tell()
        _check_layout(path, specs, file_size - data_start)
        out = {}
        for name, (code, shape, begin, end) in specs.items():
            f.seek(data_start + begin)
            buffer = bytearray(end - begin)  # bytearray: a writable array without a second copy
            f.readinto(buffer)
            array = np.frombuffer(buffer, dtype=_DTYPES[code]).reshape(shape)
            if code == "BF16":
                out[name] = (array.astype(np.uint32) << 16).view(np.float32)
            else:  # '<f4' -> float32: a free view on little-endian machines, a byte swap elsewhere
                out[name] = array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))
    return out


def save_safetensors(state: dict[str, np.ndarray], path: str | os.PathLike,
                     metadata: dict[str, str] | None = None) -> None:
    """Write ``{name: array}`` to ``path`` as safetensors, readable by ``safetensors.torch`` and transformers.

    Args:
        state: arrays (NumPy or CuPy) of bool/int/uint/float dtype; any layout, shared memory (tied weights) allowed.
        path: the file to write; replaced atomically (written to ``<path>.tmp``, then renamed).
        metadata: extra str -> str header metadata; ``{"format": "pt"}`` is always included because
            transformers refuses safetensors files without it.

    Raises:
        CheckpointError: a non-str name, an unsupported dtype, non-str metadata, or an unwritable path.
    """
    path = Path(path)
    meta = {"format": "pt", **(metadata or {})}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise CheckpointError(f"cannot save {path}: metadata must map str to str, got {meta!r}")
    arrays = {}
    for name, value in state.items():
        # The library writes each array from its own pointer: tied weights may share memory, but not be strided.
        arrays[name] = array = np.ascontiguousarray(to_numpy(value))
        if not isinstance(name, str) or array.dtype.kind not in "biuf" or array.dtype.itemsize > 8:
            raise CheckpointError(f"cannot save {path}: tensor {name!r} has dtype {array.dtype} (safetensors stores "
                                  "bool, int, uint and float arrays) or its name is not a str")
    if not path.parent.is_dir():
        raise CheckpointError(f"cannot write {path}: folder {path.parent} does not exist; create it first")
    tmp = path.with_name(path.name + ".tmp")
    try:
        save_file(arrays, tmp, metadata=meta)
        os.replace(tmp, path)
    except (OSError, SafetensorError) as e:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write {path}: {e}") from None

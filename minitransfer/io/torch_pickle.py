"""Read a PyTorch ``pytorch_model.bin`` state dict without torch and without running pickle code.

``torch.save`` writes a pickle in which every tensor is a call to ``torch._utils._rebuild_tensor_v2``
(storage, storage_offset, size, stride, ...) and every storage is a *persistent id*
``("storage", <torch.FloatStorage>, key, location, numel[, view_metadata])`` whose bytes live outside
the pickle. Two containers exist:

* zip (torch >= 1.6): ``<archive>/data.pkl`` + one raw entry ``<archive>/data/<key>`` per storage,
  in the byte order named by ``<archive>/byteorder`` (little when absent);
* legacy (``_use_new_zipfile_serialization=False``): five pickles in a row (magic number, protocol
  version, sys_info, the state dict, the list of storage keys), then each storage as an 8-byte
  little-endian element count followed by its raw little-endian bytes.

Unpickling is restricted: :class:`_StateDictUnpickler` resolves only the handful of globals a state dict
references, to local stand-ins (never the real torch functions), and refuses everything else. So a
malicious file cannot call ``os.system`` or import anything; the worst it can do is fail to load.
"""
from __future__ import annotations

import collections
import os
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from minitransfer.errors import CheckpointError

__all__ = ["load_torch_bin"]

# The legacy container starts with this number pickled (torch.serialization.MAGIC_NUMBER).
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# torch dtype name -> NumPy dtype holding its bytes. bfloat16 has no NumPy dtype: it is read as raw
# uint16 and widened to float32 at the end (bf16 is the top half of an fp32, so this is exact).
_NUMPY_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(np_name)
    for name, np_name in {
        "float64": "float64",
        "float32": "float32",
        "float16": "float16",
        "bfloat16": "uint16",
        "int64": "int64",
        "int32": "int32",
        "int16": "int16",
        "int8": "int8",
        "uint8": "uint8",
        "uint16": "uint16",
        "uint32": "uint32",
        "uint64": "uint64",
        "bool": "bool",
        "complex64": "complex64",
        "complex128": "complex128",
    }.items()
}

# Legacy typed-storage classes (torch.FloatStorage, ...) -> dtype name.
_STORAGE_CLASSES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    # Known to torch but without a NumPy equivalent: resolved so the error can say so precisely.
    "QInt8Storage": "qint8",
    "QInt32Storage": "qint32",
    "QUInt8Storage": "quint8",
    "QUInt4x2Storage": "quint4x2",
    "QUInt2x4Storage": "quint2x4",
}

# torch.<dtype> globals (they appear as the `dtype` argument of _rebuild_tensor_v3), aliases included.
_TORCH_DTYPE_ALIASES = {
    "float": "float32",
    "double": "float64",
    "half": "float16",
    "long": "int64",
    "int": "int32",
    "short": "int16",
    "cfloat": "complex64",
    "cdouble": "complex128",
}
_TORCH_DTYPES_WITHOUT_NUMPY = {
    "float8_e5m2", "float8_e4m3fn", "float8_e5m2fnuz", "float8_e4m3fnuz", "float8_e8m0fnu",
    "float4_e2m1fn_x2", "complex32", "bits8", "bits16", "bits1x8", "bits2x4", "bits4x2",
    "qint8", "qint32", "quint8", "quint4x2", "quint2x4",
}


class _CorruptPickle(Exception):
    """Raised inside unpickling; turned into a CheckpointError naming the file by load_torch_bin."""


@dataclass(frozen=True)
class _TorchDtype:
    """Stand-in for a ``torch.dtype`` global (e.g. ``torch.uint16``); ``name`` is canonical."""

    name: str


@dataclass(frozen=True)
class _StorageClass:
    """Stand-in for ``torch.FloatStorage`` & co; ``dtype`` is None for ``torch.UntypedStorage`` (bytes)."""

    qualname: str
    dtype: str | None


@dataclass(frozen=True)
class _StorageRef:
    """A persistent-id storage: ``numel`` elements of ``dtype`` from storage ``key`` starting at element
    ``offset`` (non-zero only for legacy storage views)."""

    key: str
    dtype: str  # "uint8" for an untyped storage, whose numel counts bytes
    numel: int
    offset: int = 0


@dataclass(frozen=True)
class _TensorRef:
    """What a ``_rebuild_tensor*`` call returns: the recipe for one tensor, built once all bytes are read."""

    storage: _StorageRef
    dtype: str
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _as_layout(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and v >= 0 for v in value):
        raise _CorruptPickle(f"tensor {what} is {value!r}, not a tuple of non-negative ints")
    return tuple(value)


def _tensor_ref(storage: Any, storage_offset: Any, size: Any, stride: Any, dtype: str | None) -> _TensorRef:
    if not isinstance(storage, _StorageRef):
        raise _CorruptPickle(f"a tensor is built on {type(storage).__name__}, not on a storage")
    if not isinstance(storage_offset, int):
        raise _CorruptPickle(f"tensor storage_offset is {storage_offset!r}, not an int")
    size, stride = _as_layout(size, "size"), _as_layout(stride, "stride")
    if len(size) != len(stride):
        raise _CorruptPickle(f"tensor size {size} and stride {stride} have different lengths")
    return _TensorRef(storage, dtype or storage.dtype, storage_offset, size, stride)


# Local replacements for the torch functions a state-dict pickle calls. Hooks, requires_grad and
# metadata (conj/neg bits) do not matter for weights, so they are accepted and dropped.
def _rebuild_tensor(storage, storage_offset, size, stride):
    return _tensor_ref(storage, storage_offset, size, stride, None)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return _tensor_ref(storage, storage_offset, size, stride, None)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype,
                       metadata=None):
    if not isinstance(dtype, _TorchDtype):
        raise _CorruptPickle(f"tensor dtype is {dtype!r}, not a torch dtype")
    return _tensor_ref(storage, storage_offset, size, stride, dtype.name)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data  # a Parameter is just its tensor here


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return data


def _codecs_encode(text: Any, encoding: str = "utf-8") -> bytes:
    # Protocol-2 pickles (torch.save's default) write bytes objects as _codecs.encode(str, "latin1").
    # Only that text encoding is let through: other codecs (zlib, ...) have no business here.
    if not isinstance(text, str) or encoding.replace("-", "").lower() not in ("latin1", "utf8"):
        raise _CorruptPickle(f"unexpected _codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode(encoding)


_ALLOWED_CALLABLES: dict[tuple[str, str], Callable[..., Any]] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("_codecs", "encode"): _codecs_encode,
}


def _resolve_global(module: str, name: str) -> Any:
    """The stand-in for an allowed global, or None when the global is not allowed."""
    if (module, name) in _ALLOWED_CALLABLES:
        return _ALLOWED_CALLABLES[(module, name)]
    if module in ("torch", "torch.storage") and name == "UntypedStorage":
        return _StorageClass(f"{module}.{name}", None)
    if module == "torch" and name in _STORAGE_CLASSES:
        return _StorageClass(f"torch.{name}", _STORAGE_CLASSES[name])
    if module == "torch":
        canonical = _TORCH_DTYPE_ALIASES.get(name, name)
        if canonical in _NUMPY_DTYPES or canonical in _TORCH_DTYPES_WITHOUT_NUMPY:
            return _TorchDtype(canonical)
    return None


def _describe_global(module: str, name: str) -> str:
    qualname = f"{module}.{name}"
    if module in ("posix", "nt"):  # os.system pickles as posix.system (nt.system on Windows)
        return f"{qualname} (os.{name})"
    return qualname


class _StateDictUnpickler(pickle.Unpickler):
    """An Unpickler that builds only dicts, tensor recipes and storages.

    ``on_storage(pid_fields) -> _StorageRef`` decides what a persistent id means for the container.
    """

    def __init__(self, file: BinaryIO, filename: str, on_storage: Callable[[tuple], _StorageRef] | None):
        super().__init__(file)
        self._filename = filename
        self._on_storage = on_storage

    def find_class(self, module: str, name: str) -> Any:
        resolved = _resolve_global(module, name)
        if resolved is not None:
            return resolved
        hint = ""
        if module.startswith(("torch.nn", "transformers", "__main__")):
            hint = " (it looks like a whole pickled model: save model.state_dict() instead)"
        raise CheckpointError(
            f"refusing to load {self._filename}: it references {_describe_global(module, name)}, which a "
            f"weights file never needs{hint}. Only tensors and their storages are loaded; if you trust the "
            "file, re-save its state dict with torch.save(model.state_dict(), ...) or as model.safetensors."
        )

    def persistent_load(self, pid: Any) -> Any:
        if self._on_storage is None:
            raise _CorruptPickle("a storage reference outside the state-dict pickle")
        if not isinstance(pid, tuple) or not pid:
            raise _CorruptPickle(f"unknown persistent id {pid!r}")
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module":
            raise CheckpointError(
                f"refusing to load {self._filename}: it contains a pickled torch.nn.Module, not a state dict; "
                "re-save it with torch.save(model.state_dict(), ...)."
            )
        if kind != "storage":
            raise _CorruptPickle(f"unknown persistent id kind {kind!r}")
        return self._on_storage(pid[1:])


def _storage_fields(fields: tuple, filename: str) -> tuple[str, str, int]:
    """(dtype, key, numel) from ``(storage_class, key, location, numel, ...)``, validated."""
    if len(fields) < 4:
        raise _CorruptPickle(f"storage id {fields!r} is too short")
    storage_class, key, _location, numel = fields[:4]  # location ("cpu", "cuda:0") is irrelevant here
    if not isinstance(storage_class, _StorageClass):
        raise _CorruptPickle(f"storage type is {storage_class!r}, not a torch storage class")
    if isinstance(key, bytes):
        key = key.decode("ascii")
    if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
        raise _CorruptPickle(f"storage id {fields!r} has a bad key or size")
    dtype = storage_class.dtype or "uint8"
    if dtype not in _NUMPY_DTYPES:
        raise CheckpointError(
            f"{filename} stores tensors as {storage_class.qualname} ({dtype}), which has no NumPy equivalent; "
            "convert the model to float32 (or float16/bfloat16) in PyTorch and save it again."
        )
    return dtype, key, numel


# ---------------------------------------------------------------------------------------------------
# Building arrays from tensor recipes
# ---------------------------------------------------------------------------------------------------

def _build_array(ref: _TensorRef, storage: np.ndarray, name: str, filename: str) -> np.ndarray:
    """A contiguous copy of the strided view ``ref`` describes over the 1-D storage array."""
    if ref.dtype not in _NUMPY_DTYPES:
        raise CheckpointError(
            f"{filename}: tensor {name!r} has dtype {ref.dtype}, which has no NumPy equivalent; convert it "
            "to float32 in PyTorch and save again."
        )
    dtype = _NUMPY_DTYPES[ref.dtype]
    data = storage[ref.storage.offset: ref.storage.offset + ref.storage.numel]
    if data.dtype != dtype:
        # An untyped (byte) storage is reinterpreted as the tensor's dtype, as torch's _rebuild_tensor_v3 does.
        raw = data.view(np.uint8)
        data = raw[: raw.size - raw.size % dtype.itemsize].view(dtype)
    size, stride, offset = ref.size, ref.stride, ref.offset
    if any(n == 0 for n in size):
        out = np.empty(size, dtype=dtype)
    else:
        # Bounds-check before as_strided, which would otherwise read whatever memory lies past the storage.
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if offset < 0 or last >= data.size:
            raise CheckpointError(
                f"{filename} is corrupt: tensor {name!r} (size {list(size)}, stride {list(stride)}, offset "
                f"{offset}) reaches past the end of its storage of {data.size} elements."
            )
        view = np.lib.stride_tricks.as_strided(
            data[offset:], shape=size, strides=[s * dtype.itemsize for s in stride], writeable=False
        )
        # Always a copy: the result must not alias the storage, which other tensors (tied weights) share.
        out = np.array(view, copy=True, order="C")
    if ref.dtype == "bfloat16":
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out


def _collect(obj: Any, filename: str) -> dict[str, _TensorRef]:
    """The flat {name: tensor recipe} a state dict must be; CheckpointError for anything else."""
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{filename} holds a {type(obj).__name__}, not a state dict; save it with "
            "torch.save(model.state_dict(), ...)."
        )
    refs = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, _TensorRef):
            raise CheckpointError(
                f"{filename}: entry {key!r} is a {type(value).__name__}, not a tensor; expected a flat state "
                "dict of tensors (save torch.save(model.state_dict(), ...), not a training checkpoint)."
            )
        refs[key] = value
    return refs


def _materialize(refs: dict[str, _TensorRef], read_storage: Callable[[_StorageRef], np.ndarray],
                 filename: str) -> dict[str, np.ndarray]:
    """Build every array, reading each storage once and dropping it after its last tensor (peak memory)."""
    remaining = collections.Counter(ref.storage.key for ref in refs.values())
    cache: dict[str, np.ndarray] = {}
    out = {}
    for name, ref in refs.items():
        key = ref.storage.key
        if key not in cache:
            cache[key] = read_storage(ref.storage)
        out[name] = _build_array(ref, cache[key], name, filename)
        remaining[key] -= 1
        if remaining[key] == 0:
            del cache[key]
    return out


# ---------------------------------------------------------------------------------------------------
# The two containers
# ---------------------------------------------------------------------------------------------------

def _native(array: np.ndarray) -> np.ndarray:
    """The array in native byte order: a free view when the bytes already are, a swapped copy otherwise."""
    native = array.dtype.newbyteorder("=")
    return array.view(native) if array.dtype.isnative else array.astype(native)


def _load_zip(path: Path) -> dict[str, np.ndarray]:
    name = str(path)
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointError(
                f"{path} is a zip archive but not a torch.save checkpoint (expected one <archive>/data.pkl, "
                f"found {len(pickles)}); save the weights with torch.save(model.state_dict(), ...)."
            )
        prefix = pickles[0][: -len("data.pkl")]
        names = set(archive.namelist())
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise CheckpointError(f"{path} is corrupt: its byteorder entry says {byteorder!r}")
        def on_storage(fields: tuple) -> _StorageRef:
            dtype, key, numel = _storage_fields(fields, name)
            return _StorageRef(key, dtype, numel)

        with archive.open(pickles[0]) as f:
            result = _StateDictUnpickler(f, name, on_storage).load()
        refs = _collect(result, name)

        def read_storage(ref: _StorageRef) -> np.ndarray:
            entry = f"{prefix}data/{ref.key}"
            if entry not in names:
                raise CheckpointError(f"{path} is corrupt or truncated: storage entry {entry} is missing")
            raw = archive.read(entry)
            dtype = _NUMPY_DTYPES[ref.dtype].newbyteorder("<" if byteorder == "little" else ">")
            needed = ref.numel * dtype.itemsize
            if len(raw) < needed:
                raise CheckpointError(
                    f"{path} is truncated: storage {entry} has {len(raw)} bytes, its tensors need {needed}"
                )
            # A read-only view of the entry's bytes is enough: _build_array copies out of it.
            array = np.frombuffer(raw, dtype=dtype, count=ref.numel)
            return _native(array)

        return _materialize(refs, read_storage, name)


def _load_legacy(path: Path) -> dict[str, np.ndarray]:
    name = str(path)
    with open(path, "rb") as f:
        def load_plain() -> Any:
            # The header and trailer pickles hold only ints, dicts and lists: no storages allowed.
            return _StateDictUnpickler(f, name, None).load()

        magic = load_plain()
        if magic != _LEGACY_MAGIC:
            raise CheckpointError(
                f"{path} is not a PyTorch checkpoint (it is a pickle, but not one written by torch.save); "
                "pass a pytorch_model.bin or model.safetensors."
            )
        protocol = load_plain()
        if protocol != _LEGACY_PROTOCOL:
            raise CheckpointError(f"{path} uses torch serialization protocol {protocol!r}; only 1001 is known")
        sys_info = load_plain()
        if not isinstance(sys_info, dict):
            raise _CorruptPickle("sys_info is not a dict")

        roots: dict[str, tuple[str, int]] = {}  # storage key -> (dtype, numel) as written after the pickles

        def on_storage(fields: tuple) -> _StorageRef:
            dtype, key, numel = _storage_fields(fields, name)
            roots.setdefault(key, (dtype, numel))
            view = fields[4] if len(fields) > 4 else None
            if view is None:
                return _StorageRef(key, roots[key][0], numel)
            # Pre-1.0 storage views: (view_key, offset, size) in elements of the root storage.
            if not (isinstance(view, tuple) and len(view) == 3 and all(isinstance(v, int) for v in view[1:])):
                raise _CorruptPickle(f"bad storage view {view!r}")
            return _StorageRef(key, roots[key][0], view[2], view[1])

        result = _StateDictUnpickler(f, name, on_storage).load()
        refs = _collect(result, name)
        keys = load_plain()
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise _CorruptPickle("the storage key list is not a list of str")

        # Storages follow in the order of `keys`; all are read (they are sequential in the file).
        storages: dict[str, np.ndarray] = {}
        for key in keys:
            if key not in roots:
                raise _CorruptPickle(f"storage {key!r} is listed but no tensor uses it")
            dtype_name, numel = roots[key]
            header = f.read(8)
            if len(header) < 8:
                raise EOFError(f"no size for storage {key}")
            (count,) = struct.unpack("<q", header)
            if count != numel:
                raise _CorruptPickle(f"storage {key} holds {count} elements, the pickle says {numel}")
            dtype = _NUMPY_DTYPES[dtype_name].newbyteorder("<")  # legacy data is always little-endian
            buffer = bytearray(count * dtype.itemsize)
            got = f.readinto(buffer)
            if got != len(buffer):
                raise CheckpointError(
                    f"{path} is truncated: storage {key} needs {len(buffer)} bytes, the file has {got} left"
                )
            array = np.frombuffer(buffer, dtype=dtype)
            storages[key] = _native(array)

        def read_storage(ref: _StorageRef) -> np.ndarray:
            if ref.key not in storages:
                raise CheckpointError(f"{path} is corrupt: storage {ref.key} is used but never written")
            return storages.pop(ref.key)  # _materialize caches it while its tensors are built

        return _materialize(refs, read_storage, name)


def load_torch_bin(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a ``torch.save``-d state dict as ``{name: np.ndarray}``, safely and without torch.

    Args:
        path: a ``pytorch_model.bin`` (zip or legacy torch.save format).

    Returns:
        ``{parameter name: contiguous array}`` with the saved shapes. float32/float16/int64/... keep their
        dtype; bfloat16 becomes float32 (NumPy has no bf16). Tensors that shared a storage (tied weights)
        come back as independent arrays.

    Raises:
        CheckpointError: missing file, truncated or foreign file, a global other than the tensor-rebuilding
            ones (e.g. ``os.system``: nothing is executed), or a dtype NumPy cannot hold.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"weights file {path} does not exist" if not path.exists() else f"weights file {path} is not a file"
        )
    with open(path, "rb") as f:
        head = f.read(4)
    try:
        if head.startswith(b"PK"):
            return _load_zip(path)
        if head[:1] == b"\x80":  # pickle protocol opcode: the legacy container
            return _load_legacy(path)
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint (it is neither a torch.save zip archive nor a pickle); "
            "pass a pytorch_model.bin or model.safetensors."
        )
    except CheckpointError:
        raise
    except _CorruptPickle as e:
        raise CheckpointError(
            f"{path} is corrupt or not a PyTorch checkpoint: {e}; download or save it again.") from None
    except zipfile.BadZipFile as e:
        raise CheckpointError(
            f"{path} is truncated or corrupt: it starts like a torch.save zip archive, but the archive cannot be "
            f"read ({e}); download or save it again."
        ) from None
    except (EOFError, pickle.UnpicklingError) as e:
        truncated = isinstance(e, EOFError) or "truncated" in str(e)
        problem = "truncated" if truncated else "corrupt or not a PyTorch checkpoint"
        raise CheckpointError(f"{path} is {problem} ({e}); download or save it again.") from None
    except Exception as e:  # noqa: BLE001 - any failure inside a foreign pickle means a bad file
        raise CheckpointError(
            f"{path} is corrupt or not a PyTorch checkpoint ({type(e).__name__}: {e}); download or save it again."
        ) from None

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

Reading is bounded, so a hostile file is refused before it costs memory:

* every pickle is scanned opcode by opcode (:func:`_read_pickle`) before it is unpickled: an item longer than
  the bytes that follow, a memo slot far past the opcodes seen (the unpickler would size its memo table to
  it), or more objects than the budget below (a cost per opcode) is refused; a zip's ``data.pkl`` may not
  declare more than ``_MAX_EXPANSION`` times the file's size;
* the stand-ins copy nothing a pickle could repeat at will: ``OrderedDict`` takes no arguments, BUILD is
  dropped on a state dict and refused on every other stand-in, ``_codecs.encode`` produces at most the
  pickle's own size in all, a tensor layout has at most ``_MAX_DIMS`` entries;
* every storage's declared size (numel x element size) is checked against the bytes the file, or its zip entry,
  really holds, and every tensor's offset, size and stride against its storage, before any storage is read;
  the arrays to build (tied weights and stride-0 views are copies) may total at most ``_MAX_EXPANSION`` times
  the file's size plus ``_SLACK_BYTES``;
* zip entries are read by :func:`_read_entry`, STORED or DEFLATED only, in chunks and never past what the
  tensors need or the entry declares: a compressed entry that expands past its declared size is refused
  after ``declared`` bytes, whatever it would expand to.
"""
from __future__ import annotations

import collections
import io
import math
import os
import pickle
import pickletools
import reprlib
import struct
import zipfile
import zlib
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

# What an untrusted file may make us allocate. The arrays built may total this many times the file's size (a
# state dict of tied weights is copied once per name: BERT's tied embeddings make 1.2x, T5's four 1.8x), plus a
# fixed slack for small files; a zip's data.pkl may decompress to this many times the file's size.
_MAX_EXPANSION = 4
_SLACK_BYTES = 64 << 20
_CHUNK_BYTES = 1 << 20  # zip entries are read and decompressed this much at a time
_REDO = "download it again, or re-save it with torch.save"

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


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60  # untrusted values appear in messages through this: never a huge repr
_MAX_DIMS = 64  # torch's limit on a tensor's dimensions is far lower in practice (CUDA kernels: 25)


class _NoState:
    """Refuses the BUILD opcode, which would otherwise write into a stand-in's ``__dict__`` behind the checks
    (frozen dataclasses included) and copy a memoized state dict into every object it is applied to."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise _CorruptPickle(f"its pickle sets the state of a {type(self).__name__.strip('_')}")


@dataclass(frozen=True)
class _TorchDtype(_NoState):
    """Stand-in for a ``torch.dtype`` global (e.g. ``torch.uint16``); ``name`` is canonical."""

    name: str


@dataclass(frozen=True)
class _StorageClass(_NoState):
    """Stand-in for ``torch.FloatStorage`` & co; ``dtype`` is None for ``torch.UntypedStorage`` (bytes)."""

    qualname: str
    dtype: str | None


@dataclass(frozen=True)
class _StorageRef(_NoState):
    """A persistent-id storage: ``numel`` elements of ``dtype`` from storage ``key`` starting at element
    ``offset`` (non-zero only for legacy storage views)."""

    key: str
    dtype: str  # "uint8" for an untyped storage, whose numel counts bytes
    numel: int
    offset: int = 0


@dataclass(frozen=True)
class _TensorRef(_NoState):
    """What a ``_rebuild_tensor*`` call returns: the recipe for one tensor, built once all bytes are read."""

    storage: _StorageRef
    dtype: str
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


class _StateDict(collections.OrderedDict):
    """The OrderedDict a state-dict pickle builds. Its BUILD state (torch's ``_metadata``: module versions)
    does not matter for weights and is dropped, so a memoized state cannot be copied into dict after dict."""

    def __setstate__(self, state: Any) -> None:
        pass


def _ordered_dict(*args: Any) -> _StateDict:
    # OrderedDict.__reduce__ always pickles the class with no arguments (items follow by SETITEMS): an
    # argument would be a memoized mapping, copied again by every call.
    if args:
        raise _CorruptPickle("its pickle builds an OrderedDict from arguments (a copy of another object)")
    return _StateDict()


class _Callable(_NoState):
    """What find_class returns for an allowed function: calls it, and has no attributes for BUILD to set."""

    __slots__ = ("_function",)

    def __init__(self, function: Callable[..., Any]):
        self._function = function

    def __call__(self, *args: Any) -> Any:
        return self._function(*args)


def _as_layout(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) > _MAX_DIMS or not all(
            isinstance(v, int) and v >= 0 for v in value):
        raise _CorruptPickle(f"tensor {what} is {_short.repr(value)}, not a tuple of at most {_MAX_DIMS} "
                             "non-negative ints")
    return tuple(value)


def _tensor_ref(storage: Any, storage_offset: Any, size: Any, stride: Any, dtype: str | None) -> _TensorRef:
    if not isinstance(storage, _StorageRef):
        raise _CorruptPickle(f"a tensor is built on {type(storage).__name__}, not on a storage")
    if not isinstance(storage_offset, int):
        raise _CorruptPickle(f"tensor storage_offset is {_short.repr(storage_offset)}, not an int")
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
        raise _CorruptPickle(f"tensor dtype is {_short.repr(dtype)}, not a torch dtype")
    return _tensor_ref(storage, storage_offset, size, stride, dtype.name)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data  # a Parameter is just its tensor here


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return data


_ALLOWED_CALLABLES: dict[tuple[str, str], _Callable] = {
    ("collections", "OrderedDict"): _Callable(_ordered_dict),
    ("torch._utils", "_rebuild_tensor"): _Callable(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor_v2"): _Callable(_rebuild_tensor_v2),
    ("torch._utils", "_rebuild_tensor_v3"): _Callable(_rebuild_tensor_v3),
    ("torch._utils", "_rebuild_parameter"): _Callable(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _Callable(_rebuild_parameter_with_state),
}


def _resolve_global(module: str, name: str) -> Any:
    """The stand-in for an allowed global (other than _codecs.encode), or None when the global is not allowed."""
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

    ``on_storage(pid_fields) -> _StorageRef`` decides what a persistent id means for the container. ``size`` is
    the pickle's length: ``_codecs.encode`` may produce no more bytes than that in all (each bytes object a
    pickle holds is encoded once and memoized; encoding one memoized str again and again would copy it).
    """

    def __init__(self, file: BinaryIO, filename: str, on_storage: Callable[[tuple], _StorageRef] | None,
                 size: int):
        super().__init__(file)
        self._filename = filename
        self._on_storage = on_storage
        self._encode_left = size
        self._encode = _Callable(self._codecs_encode)

    def _codecs_encode(self, text: Any, encoding: Any = "utf-8") -> bytes:
        # Protocol-2 pickles (torch.save's default) write bytes objects as _codecs.encode(str, "latin1").
        # Only that text encoding is let through: other codecs (zlib, ...) have no business here.
        if not isinstance(text, str) or not isinstance(encoding, str) or encoding.replace("-", "").lower() not in (
                "latin1", "utf8"):
            raise _CorruptPickle(f"unexpected _codecs.encode({type(text).__name__}, {_short.repr(encoding)})")
        if len(text) > self._encode_left:
            raise _CorruptPickle("its pickle encodes more bytes than it holds (one string, again and again)")
        encoded = text.encode(encoding)
        self._encode_left -= len(encoded)
        return encoded

    def find_class(self, module: str, name: str) -> Any:
        resolved = self._encode if (module, name) == ("_codecs", "encode") else _resolve_global(module, name)
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
        if not isinstance(pid, tuple) or not 1 <= len(pid) <= 7:
            raise _CorruptPickle(f"unknown persistent id {_short.repr(pid)}")
        kind = pid[0].decode("ascii", "replace") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module":
            raise CheckpointError(
                f"refusing to load {self._filename}: it contains a pickled torch.nn.Module, not a state dict; "
                "re-save it with torch.save(model.state_dict(), ...)."
            )
        if kind != "storage":
            raise _CorruptPickle(f"unknown persistent id kind {_short.repr(kind)}")
        return self._on_storage(pid[1:])


def _storage_fields(fields: tuple, filename: str) -> tuple[str, str, int]:
    """(dtype, key, numel) from ``(storage_class, key, location, numel, ...)``, validated."""
    if len(fields) < 4:
        raise _CorruptPickle(f"storage id {_short.repr(fields)} is too short")
    storage_class, key, _location, numel = fields[:4]  # location ("cpu", "cuda:0") is irrelevant here
    if not isinstance(storage_class, _StorageClass):
        raise _CorruptPickle(f"storage type is {_short.repr(storage_class)}, not a torch storage class")
    if isinstance(key, bytes):
        key = key.decode("ascii", "replace")
    if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
        raise _CorruptPickle(f"storage id {_short.repr(fields)} has a bad key or size")
    dtype = storage_class.dtype or "uint8"
    if dtype not in _NUMPY_DTYPES:
        raise CheckpointError(
            f"{filename} stores tensors as {storage_class.qualname} ({dtype}), which has no NumPy equivalent; "
            "convert the model to float32 (or float16/bfloat16) in PyTorch and save it again."
        )
    return dtype, key, numel


# ---------------------------------------------------------------------------------------------------
# Pickles, scanned before they are unpickled
# ---------------------------------------------------------------------------------------------------

class _BoundedStream:
    """The next ``limit`` bytes of a binary stream, for pickletools.genops: a read past them is refused
    before anything is allocated for it (a pickle cannot hold an item longer than the bytes that follow)."""

    def __init__(self, stream: BinaryIO, limit: int):
        self._stream = stream
        self.left = limit

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.left
        if n > self.left:
            raise EOFError(f"the pickle declares a {n:,}-byte item with only {self.left:,} bytes left in the file")
        data = self._stream.read(n)
        self.left -= len(data)
        return data

    def readline(self) -> bytes:
        if self.left <= 0:
            return b""
        line = self._stream.readline(self.left)
        self.left -= len(line)
        return line


_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
# Bytes of Python objects one opcode can leave behind, at most (measured on CPython 3.11: an empty set 221, a
# stand-in built by REDUCE, GLOBAL or a persistent id ~180, a dict, a list or an int with its slot <= 64), on
# top of the bytes of its argument. What a pickle may cost in all is capped like the arrays (_budget).
_OPCODE_COST = 64
_OPCODE_COSTS = dict.fromkeys(
    ("EMPTY_SET", "FROZENSET", "GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "REDUCE", "BUILD",
     "PERSID", "BINPERSID"), 256)


def _budget(file_size: int) -> int:
    """The bytes a file of ``file_size`` may make us allocate for each of: its pickle's objects, the storage
    bytes read, the arrays built."""
    return _MAX_EXPANSION * file_size + _SLACK_BYTES


def _read_pickle(stream: BinaryIO, limit: int, budget: int) -> bytes:
    """The bytes of the pickle that starts at ``stream``'s position (at most ``limit``), checked opcode by opcode
    so that unpickling them cannot allocate more than ``budget``; ``stream`` is left after them.

    The unpickler allocates only for what the pickle holds, except for its memo table, which it sizes to the
    largest slot a PUT names: a PUT of slot 2**26 in a 9-byte pickle would cost 1 GiB. A pickler numbers its
    slots 0, 1, 2, ...; a slot past the opcodes seen so far is refused, as is an item or frame longer than the
    bytes that follow. What the objects may cost is estimated per opcode (_OPCODE_COSTS): a pickle of a million
    EMPTY_SET opcodes, 1 MB, would build 221 MB of sets.
    """
    start = stream.tell()
    bounded = _BoundedStream(stream, limit)
    count = cost = 0  # opcodes before the current one: each slot is filled with an object some of them built
    try:
        for opcode, arg, _ in pickletools.genops(bounded):
            if opcode.name in _MEMO_PUTS and arg >= count:
                raise _CorruptPickle(f"its pickle stores memo slot {arg:,} after only {count:,} opcodes")
            if opcode.name == "FRAME" and arg > bounded.left:
                raise EOFError(f"the pickle declares a {arg:,}-byte frame with only {bounded.left:,} bytes left")
            count += 1
            cost += _OPCODE_COSTS.get(opcode.name, _OPCODE_COST) + (len(arg) if isinstance(arg, (str, bytes)) else 0)
            if cost > budget:
                raise _CorruptPickle(
                    f"its pickle would build more than {budget:,} bytes of objects ({count:,} opcodes so far, "
                    f"{_MAX_EXPANSION} times the file's size and {_SLACK_BYTES >> 20} MiB more)")
    except ValueError as e:  # genops: an unknown opcode, or a pickle that ends early
        if "exhausted" in str(e) or "but only" in str(e):
            raise EOFError(f"the pickle ends before its STOP opcode ({e})") from None
        raise _CorruptPickle(f"it is not a valid pickle ({e})") from None
    end = stream.tell()
    stream.seek(start)
    return stream.read(end - start)


def _unpickle(data: bytes, filename: str, on_storage: Callable[[tuple], _StorageRef] | None) -> Any:
    return _StateDictUnpickler(io.BytesIO(data), filename, on_storage, len(data)).load()


# ---------------------------------------------------------------------------------------------------
# Building arrays from tensor recipes
# ---------------------------------------------------------------------------------------------------

def _itemsize(dtype_name: str) -> int:
    return _NUMPY_DTYPES[dtype_name].itemsize


def _output_itemsize(dtype_name: str) -> int:
    return 4 if dtype_name == "bfloat16" else _itemsize(dtype_name)  # bf16 comes back as float32


def _plan(refs: dict[str, _TensorRef], filename: str, file_size: int) -> dict[str, int]:
    """Check every tensor against its storage and all of them against the file, before anything is read.

    Returns:
        ``{storage key: bytes of the storage its tensors reach}`` (a multiple of the storage's element size,
        never more than the storage declares): what must be read of each storage, and no more.
    """
    needed: dict[str, int] = {}
    out_bytes = 0
    for name, ref in refs.items():
        storage = ref.storage
        if ref.dtype not in _NUMPY_DTYPES:
            raise CheckpointError(
                f"{filename}: tensor {name!r} has dtype {ref.dtype}, which has no NumPy equivalent; convert it "
                "to float32 in PyTorch and save again."
            )
        storage_item, item = _itemsize(storage.dtype), _itemsize(ref.dtype)
        size, stride, offset = ref.size, ref.stride, ref.offset
        if math.prod(max(n, 1) for n in size) * item >= 2**62:
            raise CheckpointError(f"{filename} is corrupt: tensor {name!r} has an absurd size {list(size)}; {_REDO}.")
        numel = math.prod(size)
        reach = 0
        if numel:
            # The storage region, counted in the tensor's elements (an untyped storage is reinterpreted).
            available = storage.numel * storage_item // item
            last = offset + sum((n - 1) * s for n, s in zip(size, stride))
            if offset < 0 or last >= available:
                raise CheckpointError(
                    f"{filename} is corrupt: tensor {name!r} (size {list(size)}, stride {list(stride)}, offset "
                    f"{offset}) reaches past the end of its storage {storage.key!r} of {available:,} elements; "
                    f"{_REDO}."
                )
            end = storage.offset * storage_item + (last + 1) * item
            reach = -(-end // storage_item) * storage_item
        needed[storage.key] = max(needed.get(storage.key, 0), reach)
        out_bytes += numel * _output_itemsize(ref.dtype)
    budget = _budget(file_size)
    if out_bytes > budget:
        raise CheckpointError(
            f"{filename} is corrupt or not a checkpoint: its tensors ({len(refs):,}) would take {out_bytes:,} bytes, "
            f"more than the {budget:,} a {file_size:,}-byte file may expand to ({_MAX_EXPANSION} times its size plus "
            f"{_SLACK_BYTES >> 20} MiB: they share storages far more than tied weights do, or view them with zero "
            "strides). If you trust the file, load it with torch and re-save a state dict of independent tensors "
            "({k: v.clone() for k, v in sd.items()})."
        )
    read_bytes = sum(needed.values())
    if read_bytes > budget:
        raise CheckpointError(
            f"{filename} is corrupt or not a checkpoint: its tensors reach {read_bytes:,} bytes of storage, more "
            f"than the {budget:,} a {file_size:,}-byte file may expand to; {_REDO}."
        )
    return needed


def _build_array(ref: _TensorRef, storage: np.ndarray, name: str, filename: str) -> np.ndarray:
    """A contiguous copy of the strided view ``ref`` describes over the 1-D storage array (checked by _plan;
    ``storage`` may stop where the tensors' reach does)."""
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
        # Bounds-check again before as_strided, which would otherwise read whatever memory lies past the storage.
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
                f"{filename}: entry {_short.repr(key)} is a {type(value).__name__}, not a tensor; expected a flat "
                "state dict of tensors (save torch.save(model.state_dict(), ...), not a training checkpoint)."
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
# Zip entries, read with bounds
# ---------------------------------------------------------------------------------------------------

def _entry_data_start(fh: BinaryIO, info: zipfile.ZipInfo, path: Path, file_size: int) -> int:
    """Where the entry's (compressed) bytes start in the file, after checking that they lie inside it and that
    the entry is one :func:`_read_entry` can read with a bound (STORED or DEFLATED, not encrypted)."""
    what = f"{path} is corrupt or not a PyTorch checkpoint: zip entry {info.filename}"
    if info.flag_bits & 0x1:
        raise CheckpointError(f"{what} is encrypted; torch.save never encrypts: re-save the weights with torch.save.")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise CheckpointError(
            f"{what} uses zip compression method {info.compress_type}; torch.save stores entries uncompressed "
            "(and minitransfer also reads deflated ones): re-save the weights with torch.save."
        )
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise CheckpointError(
            f"{what} is stored uncompressed, yet declares {info.file_size:,} bytes in {info.compress_size:,}; {_REDO}.")
    fh.seek(info.header_offset)
    header = fh.read(30)
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise CheckpointError(f"{what} has no local header at byte {info.header_offset:,}; {_REDO}.")
    name_len, extra_len = struct.unpack("<2H", header[26:30])
    start = info.header_offset + 30 + name_len + extra_len
    if start + info.compress_size > file_size:
        raise CheckpointError(
            f"{what} declares {info.compress_size:,} bytes at byte {start:,}, but the file holds {file_size:,}; "
            f"{_REDO}."
        )
    return start


def _read_entry(fh: BinaryIO, info: zipfile.ZipInfo, want: int, path: Path, file_size: int) -> bytearray:
    """The first ``want`` (<= the declared size) uncompressed bytes of a zip entry, in one buffer of that size.

    A DEFLATED entry is inflated a chunk at a time and never past ``want`` bytes, so a bomb costs ``want``
    whatever it would expand to. An entry read whole is checked against its CRC-32, and a deflated one must end
    there: one that inflates past its declared size is refused.
    """
    if want > info.file_size:
        raise ValueError("_read_entry: want exceeds the declared size")  # callers check this first
    start = _entry_data_start(fh, info, path, file_size)
    what = f"{path} is corrupt or not a PyTorch checkpoint: zip entry {info.filename}"
    fh.seek(start)
    out = bytearray(want)
    if info.compress_type == zipfile.ZIP_STORED:
        got = fh.readinto(out)
        if got != want:
            raise CheckpointError(f"{path} is truncated: zip entry {info.filename} has {got:,} of {want:,} bytes.")
    else:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        left = info.compress_size  # compressed bytes not yet fed to the inflater
        view = memoryview(out)

        def next_input() -> bytes:
            nonlocal left
            if inflater.unconsumed_tail:
                return inflater.unconsumed_tail
            chunk = fh.read(min(_CHUNK_BYTES, left)) if left > 0 else b""
            left -= len(chunk)
            return chunk

        try:
            pos = 0
            while pos < want and not inflater.eof:
                src = next_input()
                if not src:
                    break
                piece = inflater.decompress(src, want - pos)
                view[pos: pos + len(piece)] = piece
                pos += len(piece)
            if pos < want:
                raise CheckpointError(
                    f"{what} inflates to {pos:,} bytes, short of the {want:,} its tensors need; {_REDO}.")
            if want == info.file_size:
                # The declared size must be where the stream ends: one more byte out of it means a lie.
                while not inflater.eof:
                    src = next_input()
                    if not src:
                        break
                    if inflater.decompress(src, 1):
                        raise CheckpointError(
                            f"{what} expands past its declared size of {info.file_size:,} bytes (a compressed entry "
                            f"that does not match its header, as a zip bomb's); {_REDO}."
                        )
        except zlib.error as e:
            raise CheckpointError(f"{what} cannot be inflated ({e}); {_REDO}.") from None
        finally:
            view.release()
    if want == info.file_size and zlib.crc32(out) != info.CRC:
        raise CheckpointError(f"{what} does not match its CRC-32 (damaged bytes); {_REDO}.")
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
    file_size = path.stat().st_size
    with zipfile.ZipFile(path) as archive, open(path, "rb") as fh:
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
            info = archive.getinfo(prefix + "byteorder")
            raw = _read_entry(fh, info, min(info.file_size, 16), path, file_size)
            byteorder = raw.decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise CheckpointError(f"{path} is corrupt: its byteorder entry says {byteorder!r}")

        pickle_info = archive.getinfo(pickles[0])
        if pickle_info.file_size > _MAX_EXPANSION * file_size:
            raise CheckpointError(
                f"{path} is corrupt or not a PyTorch checkpoint: zip entry {pickles[0]} declares "
                f"{pickle_info.file_size:,} bytes, more than {_MAX_EXPANSION} times the {file_size:,} bytes of the "
                f"whole file; {_REDO}."
            )
        pickled = _read_entry(fh, pickle_info, pickle_info.file_size, path, file_size)
        pickled = _read_pickle(io.BytesIO(pickled), len(pickled), _budget(file_size))

        storages: dict[str, _StorageRef] = {}  # as torch does, the first reference to a key defines it

        def on_storage(fields: tuple) -> _StorageRef:
            dtype, key, numel = _storage_fields(fields, name)
            return storages.setdefault(key, _StorageRef(key, dtype, numel))

        refs = _collect(_unpickle(pickled, name, on_storage), name)
        del pickled

        # Every storage entry, checked against what its storage declares, then every tensor against its storage
        # and the whole against the file: all before any storage is read.
        entries: dict[str, zipfile.ZipInfo] = {}
        for key in dict.fromkeys(ref.storage.key for ref in refs.values()):
            entry = f"{prefix}data/{key}"
            if entry not in names:
                raise CheckpointError(f"{path} is corrupt or truncated: storage entry {entry} is missing")
            info = archive.getinfo(entry)
            declared = storages[key].numel * _itemsize(storages[key].dtype)
            if declared > info.file_size:
                raise CheckpointError(
                    f"{path} is corrupt or truncated: storage {key!r} declares {declared:,} bytes but its zip entry "
                    f"{entry} holds {info.file_size:,} (the file is {file_size:,} bytes); {_REDO}."
                )
            _entry_data_start(fh, info, path, file_size)
            entries[key] = info
        needed = _plan(refs, name, file_size)

        def read_storage(ref: _StorageRef) -> np.ndarray:
            raw = _read_entry(fh, entries[ref.key], needed[ref.key], path, file_size)
            dtype = _NUMPY_DTYPES[ref.dtype].newbyteorder("<" if byteorder == "little" else ">")
            # A view of the buffer is enough: _build_array copies out of it.
            return _native(np.frombuffer(raw, dtype=dtype))

        return _materialize(refs, read_storage, name)


def _load_legacy(path: Path) -> dict[str, np.ndarray]:
    name = str(path)
    file_size = path.stat().st_size
    with open(path, "rb") as f:
        def next_pickle(on_storage: Callable[[tuple], _StorageRef] | None = None) -> Any:
            # The header and trailer pickles hold only ints, dicts and lists: no storages allowed.
            return _unpickle(_read_pickle(f, file_size - f.tell(), _budget(file_size)), name, on_storage)

        magic = next_pickle()
        if magic != _LEGACY_MAGIC:
            raise CheckpointError(
                f"{path} is not a PyTorch checkpoint (it is a pickle, but not one written by torch.save); "
                "pass a pytorch_model.bin or model.safetensors."
            )
        protocol = next_pickle()
        if protocol != _LEGACY_PROTOCOL:
            raise CheckpointError(
                f"{path} uses torch serialization protocol {_short.repr(protocol)}; only 1001 is known")
        sys_info = next_pickle()
        if not isinstance(sys_info, dict):
            raise _CorruptPickle("sys_info is not a dict")

        roots: dict[str, tuple[str, int]] = {}  # storage key -> (dtype, numel) as written after the pickles

        def on_storage(fields: tuple) -> _StorageRef:
            dtype, key, numel = _storage_fields(fields, name)
            root_dtype, root_numel = roots.setdefault(key, (dtype, numel))  # the first reference defines it
            view = fields[4] if len(fields) > 4 else None
            if view is None:
                return _StorageRef(key, root_dtype, root_numel)
            # Pre-1.0 storage views: (view_key, offset, size) in elements of the root storage.
            if not (isinstance(view, tuple) and len(view) == 3 and all(isinstance(v, int) for v in view[1:])):
                raise _CorruptPickle(f"bad storage view {_short.repr(view)}")
            _, view_offset, view_size = view
            if view_offset < 0 or view_size < 0 or view_offset + view_size > root_numel:
                raise _CorruptPickle(
                    f"a view of elements {view_offset:,}..{view_offset + view_size:,} of storage {key!r}, which has "
                    f"{root_numel:,}")
            return _StorageRef(key, root_dtype, view_size, view_offset)

        refs = _collect(next_pickle(on_storage), name)
        keys = next_pickle()
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise _CorruptPickle("the storage key list is not a list of str")
        if len(set(keys)) != len(keys):
            raise _CorruptPickle("the storage key list names a storage twice")

        # Storages follow in the order of `keys`, each an 8-byte count and its bytes: all must fit in the file.
        start = f.tell()
        end = start
        for key in keys:
            if key not in roots:
                raise _CorruptPickle(f"storage {key!r} is listed but no tensor uses it")
            dtype_name, numel = roots[key]
            nbytes = numel * _itemsize(dtype_name)
            if end + 8 + nbytes > file_size:
                raise CheckpointError(
                    f"{path} is corrupt or truncated: storage {key!r} declares {nbytes:,} bytes but the file holds "
                    f"{file_size:,} ({max(file_size - end - 8, 0):,} left for it after the pickles and the storages "
                    f"before it); {_REDO}."
                )
            end += 8 + nbytes
        unwritten = [k for k in roots if k not in set(keys)]
        if unwritten:
            raise CheckpointError(f"{path} is corrupt: storage {unwritten[0]!r} is used but never written; {_REDO}.")
        _plan(refs, name, file_size)

        # All are read (they are sequential in the file, and together no bigger than it).
        storages: dict[str, np.ndarray] = {}
        for key in keys:
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
            storages[key] = _native(np.frombuffer(buffer, dtype=dtype))

        def read_storage(ref: _StorageRef) -> np.ndarray:
            return storages.pop(ref.key)  # _materialize caches it while its tensors are built

        return _materialize(refs, read_storage, name)


def _brief(error: Exception, limit: int = 300) -> str:
    """An exception's text for a message, cut short: it may quote whatever a foreign pickle holds."""
    text = str(error)
    return text if len(text) <= limit else text[:limit] + "..."


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
        raise CheckpointError(f"{path} is {problem} ({_brief(e)}); download or save it again.") from None
    except Exception as e:  # noqa: BLE001 - any failure inside a foreign pickle means a bad file
        raise CheckpointError(
            f"{path} is corrupt or not a PyTorch checkpoint ({type(e).__name__}: {_brief(e)}); download or save it "
            "again."
        ) from None

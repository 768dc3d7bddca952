"""Read a PyTorch ``pytorch_model.bin`` state dict without torch and without running pickle code.

``torch.save`` pickles each tensor as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and
each storage as a persistent id ``("storage", torch.FloatStorage, key, location, numel[, view])`` whose bytes lie
outside the pickle: in a zip (torch >= 1.6) as entry ``<archive>/data/<key>`` beside ``<archive>/data.pkl``; in the
legacy format after five pickles (magic, protocol, sys_info, state dict, storage keys), as count + bytes each.

Only the globals a state dict needs resolve, to inert local stand-ins; any other is refused, so nothing runs. Nor
can a hostile file cost memory: each pickle is scanned opcode by opcode before it is unpickled, the stand-ins copy
nothing a pickle could repeat at will, storages are checked against the bytes that hold them, tensors against
their storages, all arrays against the file's size, and zip entries are inflated no further than tensors reach.
"""
from __future__ import annotations

import collections
import copy
import io
import math
import os
import pickle
import pickletools
import reprlib
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from minitransfer.errors import CheckpointError

__all__ = ["load_torch_bin"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER, the first of the legacy pickles
# The arrays built, the storage bytes read and a pickle's objects may each cost this many times the file's size
# (tied weights are copied once per name: BERT's make 1.2x, T5's 1.8x), plus a slack for small files.
_MAX_EXPANSION, _SLACK_BYTES = 4, 64 << 20
_MAX_DIMS = 64  # torch's practical limit is far lower (its CUDA kernels take 25)

# torch dtype name -> NumPy dtype of its bytes; bfloat16 is read as uint16 and widened to float32 (exact).
_NUMPY = {name: np.dtype(name) for name in ("float64", "float32", "float16", "int64", "int32", "int16", "int8",
                                             "uint8", "uint16", "uint32", "uint64", "bool", "complex64", "complex128")}
_NUMPY["bfloat16"] = np.dtype("uint16")
_STORAGES = {"Double": "float64", "Float": "float32", "Half": "float16", "BFloat16": "bfloat16", "Long": "int64",
             "Int": "int32", "Short": "int16", "Char": "int8", "Byte": "uint8", "Bool": "bool",
             "ComplexFloat": "complex64", "ComplexDouble": "complex128", "QInt8": "qint8", "QInt32": "qint32",
             "QUInt8": "quint8", "QUInt4x2": "quint4x2", "QUInt2x4": "quint2x4", "Untyped": "uint8"}  # <Name>Storage
_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32",
            "short": "int16", "cfloat": "complex64", "cdouble": "complex128"}  # torch.float is torch.float32
# Known to torch but not to NumPy: resolved, so that the error names the dtype rather than refusing a global.
_WITHOUT_NUMPY = {"float8_e5m2", "float8_e4m3fn", "float8_e5m2fnuz", "float8_e4m3fnuz", "float8_e8m0fnu",
                  "float4_e2m1fn_x2", "complex32", "bits8", "bits16", "bits1x8", "bits2x4", "bits4x2", "qint8",
                  "qint32", "quint8", "quint4x2", "quint2x4"}
# What one opcode's objects may cost, in bytes, on top of its argument's (CPython 3.11: an empty set 221, a
# stand-in from REDUCE, GLOBAL or a persistent id ~180; a dict, list or int with its stack slot <= 64).
_COSTLY = {"EMPTY_SET", "FROZENSET", "GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "REDUCE",
           "BUILD", "PERSID", "BINPERSID"}

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60  # untrusted values reach messages through this: never a huge repr


class _Corrupt(Exception):
    """A corrupt, truncated or hostile file; load_torch_bin names the file and says what to do."""


def _refuse_state(self, state: Any) -> None:
    # BUILD would write behind the checks, and copy a memoized state into every object it is applied to.
    raise _Corrupt(f"its pickle sets the state of a {type(self).__name__.strip('_')}")


class _Dtype(NamedTuple):  # stand-in for a torch.<dtype> or torch.<Name>Storage global; name: the dtype it means
    qualname: str
    name: str
    __setstate__ = _refuse_state


class _StorageRef(NamedTuple):  # numel elements of dtype (uint8 when untyped) of storage key, from element offset
    key: str
    dtype: str
    numel: int
    offset: int = 0  # non-zero only for the storage views of torch < 1.0
    __setstate__ = _refuse_state


class _TensorRef(NamedTuple):  # what _rebuild_tensor* returns: the recipe of an array, built once storages are read
    storage: _StorageRef
    dtype: str
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    __setstate__ = _refuse_state


class _Call(NamedTuple):  # an allowed function global: calls the local stand-in, has no attributes for BUILD to set
    function: Callable[..., Any]
    __setstate__ = _refuse_state

    def __call__(self, *args: Any) -> Any:
        return self.function(*args)


class _StateDict(collections.OrderedDict):
    def __init__(self, *args: Any):  # OrderedDict pickles without arguments: one would be a memoized mapping to copy
        if args:
            raise _Corrupt("its pickle builds an OrderedDict from arguments (a copy of another object)")
        super().__init__()

    def __setstate__(self, state: Any) -> None:
        pass  # torch's _metadata (module versions): not weights, and must not be copied into dict after dict


def _layout(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) > _MAX_DIMS or not all(
            isinstance(v, int) and v >= 0 for v in value):
        raise _Corrupt(f"tensor {what} is {_short.repr(value)}, not a tuple of at most {_MAX_DIMS} ints >= 0")
    return tuple(value)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_: Any, dtype: Any = None) -> _TensorRef:
    # requires_grad, backward hooks and metadata (conj/neg bits) do not matter for weights: dropped.
    if not isinstance(storage, _StorageRef) or not isinstance(offset, int) or (
            dtype is not None and not isinstance(dtype, _Dtype)):
        raise _Corrupt(f"a tensor is built on {_short.repr(storage)} at {_short.repr(offset)} as {_short.repr(dtype)}")
    size, stride = _layout(size, "size"), _layout(stride, "stride")
    if len(size) != len(stride):
        raise _Corrupt(f"tensor size {size} and stride {stride} have different lengths")
    return _TensorRef(storage, dtype.name if dtype else storage.dtype, offset, size, stride)


_CALLS = {
    ("collections", "OrderedDict"): _Call(_StateDict),
    ("torch._utils", "_rebuild_tensor"): _Call(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor_v2"): _Call(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor_v3"): _Call(lambda storage, offset, size, stride, _grad, _hooks, dtype, *_:
                                                  _rebuild_tensor(storage, offset, size, stride, dtype=dtype)),
    ("torch._utils", "_rebuild_parameter"): _Call(lambda data, *_: data),  # a Parameter is just its tensor here
    ("torch._utils", "_rebuild_parameter_with_state"): _Call(lambda data, *_: data),
}


def _numpy_dtype(dtype: str, what: str) -> np.dtype:
    if dtype not in _NUMPY:
        raise CheckpointError(f"{what} has dtype {dtype}, which NumPy cannot hold; convert the model to float32 "
                              "(or float16/bfloat16) in PyTorch and save it again.")
    return _NUMPY[dtype]


class _Unpickler(pickle.Unpickler):
    """Builds only dicts, tensor recipes and storages, into ``roots`` (None where no storage may appear)."""

    def __init__(self, data: bytes, filename: str, roots: dict[str, _StorageRef] | None):
        super().__init__(io.BytesIO(data))
        self.filename, self.roots = filename, roots
        self.encode_left = len(data)  # what _codecs.encode may produce in all: each memoized str encoded once

    def _encode(self, text: Any, encoding: Any = "utf-8") -> bytes:
        # Protocol 2 (torch.save's) pickles bytes as _codecs.encode(str, "latin1"); no other codec has business here.
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
            raise _Corrupt(f"unexpected _codecs.encode({type(text).__name__}, {_short.repr(encoding)})")
        if len(text) > self.encode_left:
            raise _Corrupt("its pickle encodes more bytes than it holds (one string, again and again)")
        encoded = text.encode(encoding)
        self.encode_left -= len(encoded)
        return encoded

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            return _Call(self._encode)
        if (module, name) in _CALLS:
            return _CALLS[module, name]
        dtype = _STORAGES.get(name[: -len("Storage")]) if name.endswith("Storage") else _ALIASES.get(name, name)
        if module in ("torch", "torch.storage") and (dtype in _NUMPY or dtype in _WITHOUT_NUMPY):
            return _Dtype(f"{module}.{name}", dtype)
        qualname = f"{module}.{name}" + (f" (os.{name})" if module in ("posix", "nt") else "")  # os.system
        hint = (" (it looks like a whole pickled model: save model.state_dict() instead)"
                if module.startswith(("torch.nn", "transformers", "__main__")) else "")
        raise CheckpointError(
            f"refusing to load {self.filename}: it references {qualname}, which a weights file never needs{hint}. "
            "Only tensors and their storages are loaded; if you trust the file, re-save its state dict with "
            "torch.save(model.state_dict(), ...) or as model.safetensors.")

    def persistent_load(self, pid: Any) -> _StorageRef:
        if self.roots is None or not (isinstance(pid, tuple) and 5 <= len(pid) <= 7 and pid[0] == "storage"):
            raise _Corrupt(f"unexpected persistent id {_short.repr(pid)}")
        storage_class, key, _location, numel = pid[1:5]  # the location ("cpu", "cuda:0") does not matter here
        if not isinstance(storage_class, _Dtype) or not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise _Corrupt(f"bad storage id {_short.repr(pid)}")
        _numpy_dtype(storage_class.name, f"{self.filename}: storage {storage_class.qualname}")
        root = self.roots.setdefault(key, _StorageRef(key, storage_class.name, numel))  # the first one defines it
        view = pid[5] if len(pid) > 5 else None  # torch < 1.0 storage views: (key, offset, size) in root elements
        if view is None:
            return root
        if not (isinstance(view, tuple) and len(view) == 3 and all(isinstance(v, int) and v >= 0 for v in view[1:])
                and view[1] + view[2] <= root.numel):
            raise _Corrupt(f"bad view {_short.repr(view)} of storage {key!r} ({root.numel:,} elements)")
        return _StorageRef(key, root.dtype, view[2], view[1])


class _Bytes(io.BytesIO):
    """A file's bytes for pickletools.genops, which then reads no item longer than the bytes that follow it
    (the unpickler would allocate that first)."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.size = len(data)

    def read(self, n: int = -1) -> bytes:
        if n > self.size - self.tell():
            raise EOFError(f"the pickle declares a {n:,}-byte item with only {self.size - self.tell():,} bytes left")
        return super().read(n)


def _unpickle(stream: _Bytes, file_size: int, filename: str, roots: dict | None = None) -> Any:
    """The object pickled at ``stream``'s position (left after it), scanned opcode by opcode first so that
    unpickling allocates at most the file's budget (a million EMPTY_SETs, 1 MB, would build 221 MB of sets)."""
    start, count, cost, budget = stream.tell(), 0, 0, _MAX_EXPANSION * file_size + _SLACK_BYTES
    try:
        for opcode, arg, _ in pickletools.genops(stream):
            # The unpickler sizes its memo table to the largest slot a PUT names (2**26 in 9 bytes: 1 GiB), while a
            # pickler numbers them 0, 1, 2, ...: a slot past the opcodes seen is a lie.
            if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and arg >= count:
                raise _Corrupt(f"its pickle stores memo slot {arg:,} after only {count:,} opcodes")
            count += 1
            cost += (256 if opcode.name in _COSTLY else 64) + (len(arg) if isinstance(arg, (str, bytes)) else 0)
            if cost > budget:
                raise _Corrupt(f"its pickle would build more than {budget:,} bytes of objects ({count:,} opcodes "
                               f"so far; {_MAX_EXPANSION}x the file's size + {_SLACK_BYTES >> 20} MiB)")
    except ValueError as e:  # genops: an unknown opcode, or a pickle that ends before its STOP
        truncated = "exhausted" in str(e) or "but only" in str(e)
        raise (EOFError if truncated else _Corrupt)(f"it is not a whole pickle ({e})") from None
    end = stream.tell()
    stream.seek(start)
    return _Unpickler(stream.read(end - start), filename, roots).load()


def _start(ref: _TensorRef) -> int:
    """Where a tensor's first element lies, in bytes from the start of its root storage."""
    return ref.storage.offset * _NUMPY[ref.storage.dtype].itemsize + ref.offset * _NUMPY[ref.dtype].itemsize


def _plan(state: Any, filename: str, file_size: int) -> tuple[dict[str, _TensorRef], dict[str, int]]:
    """The flat ``{name: tensor recipe}`` a state dict must be, each tensor checked against its storage and all
    against the file's budget before anything is read; and ``{storage key: bytes of it the tensors reach}``."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{filename} holds a {type(state).__name__}, not a state dict; save it with "
                              "torch.save(model.state_dict(), ...).")
    reach: dict[str, int] = {}
    out_bytes = 0
    for name, ref in state.items():
        if not isinstance(name, str) or not isinstance(ref, _TensorRef):
            raise CheckpointError(
                f"{filename}: entry {_short.repr(name)} is a {type(ref).__name__}, not a tensor; expected a flat "
                "state dict of tensors (save torch.save(model.state_dict(), ...), not a training checkpoint).")
        storage, item = ref.storage, _numpy_dtype(ref.dtype, f"{filename}: tensor {name!r}").itemsize
        numel = math.prod(ref.size)
        end = _start(ref) + (sum((n - 1) * s for n, s in zip(ref.size, ref.stride)) + 1) * item if numel else 0
        if numel and (ref.offset < 0 or end > (storage.offset + storage.numel) * _NUMPY[storage.dtype].itemsize):
            raise _Corrupt(f"tensor {name!r} (size {list(ref.size)}, stride {list(ref.stride)}, offset {ref.offset}) "
                           f"reaches past the end of its storage {storage.key!r}")
        reach[storage.key] = max(reach.get(storage.key, 0), end)
        out_bytes += numel * (4 if ref.dtype == "bfloat16" else item)  # bf16 comes back as float32
    budget, read_bytes = _MAX_EXPANSION * file_size + _SLACK_BYTES, sum(reach.values())
    expand = f"more than the {budget:,} a {file_size:,}-byte file may expand to"
    if out_bytes > budget:
        raise _Corrupt(f"its tensors ({len(state):,}) would take {out_bytes:,} bytes, {expand}: they share storages "
                       "far more than tied weights do, or view them with zero strides")
    if read_bytes > budget:
        raise _Corrupt(f"its tensors reach {read_bytes:,} bytes of storage, {expand}")
    return dict(state), reach


def _materialize(refs: dict[str, _TensorRef], read: Callable[[str], bytes], byteorder: str) -> dict[str, np.ndarray]:
    """Every array, contiguous and native-endian, reading each storage once and dropping it after its last tensor.
    np.ndarray refuses a view past the bytes' end; the copy (astype) keeps tied weights independent arrays."""
    left = collections.Counter(ref.storage.key for ref in refs.values())
    storages: dict[str, bytes] = {}
    out = {}
    for name, ref in refs.items():
        key, dtype = ref.storage.key, _NUMPY[ref.dtype].newbyteorder(byteorder)
        if key not in storages:
            storages[key] = read(key)
        view = np.ndarray(ref.size, dtype, buffer=storages[key], offset=0 if 0 in ref.size else _start(ref),
                          strides=[s * dtype.itemsize for s in ref.stride])
        array = view.astype(dtype.newbyteorder("="), order="C")
        out[name] = (array.astype(np.uint32) << 16).view(np.float32) if ref.dtype == "bfloat16" else array
        left[key] -= 1
        if not left[key]:
            del storages[key]
    return out


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, want: int) -> bytes:
    """The first ``want`` (<= its declared size) bytes of a zip entry, inflated no further. Read whole, it is read as
    one byte longer than declared: zipfile checks its CRC-32 where it ends, and a byte more means the header lies."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):  # the others inflate without a bound
        raise _Corrupt(f"zip entry {info.filename} is compressed with method {info.compress_type}")
    whole, probe = want == info.file_size, copy.copy(info)
    probe.file_size += whole
    lie = _Corrupt(f"zip entry {info.filename} expands past its declared size of {info.file_size:,} bytes, or does "
                   "not match its CRC-32 (a compressed entry that does not match its header, as a zip bomb's)")
    try:
        with archive.open(probe) as f:
            data = f.read(want + whole)
    except zipfile.BadZipFile as e:  # zipfile checks the CRC-32 where the entry ends
        raise (lie if "CRC" in str(e) else e) from None
    if len(data) > want:
        raise lie
    if len(data) < want:
        raise EOFError(f"zip entry {info.filename} holds {len(data):,} of the {want:,} bytes its tensors need")
    return data


def _load_zip(path: Path, file_size: int) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise _Corrupt(f"a zip archive with {len(pickles)} <archive>/data.pkl, not the one of torch.save")
        prefix, byteorder = pickles[0][: -len("data.pkl")], "<"
        if prefix + "byteorder" in names:
            info = archive.getinfo(prefix + "byteorder")
            byteorder = {b"little": "<", b"big": ">"}.get(_read_entry(archive, info, min(info.file_size, 16)).strip())
            if byteorder is None:
                raise _Corrupt("its byteorder entry says neither little nor big")
        info = archive.getinfo(pickles[0])
        if info.file_size > _MAX_EXPANSION * file_size:
            raise _Corrupt(f"zip entry {info.filename} declares {info.file_size:,} bytes, more than {_MAX_EXPANSION} "
                           f"times the {file_size:,} of the whole file")
        roots: dict[str, _StorageRef] = {}
        state = _unpickle(_Bytes(_read_entry(archive, info, info.file_size)), file_size, str(path), roots)
        entries = {}
        for key, root in roots.items():
            name, declared = f"{prefix}data/{key}", root.numel * _NUMPY[root.dtype].itemsize
            if name not in names:
                raise EOFError(f"storage entry {name} is missing")
            entries[key] = archive.getinfo(name)
            if declared > entries[key].file_size:
                raise _Corrupt(f"storage {key!r} declares {declared:,} bytes but its zip entry {name} holds "
                               f"{entries[key].file_size:,} (the file is {file_size:,} bytes)")
        refs, reach = _plan(state, str(path), file_size)
        return _materialize(refs, lambda key: _read_entry(archive, entries[key], reach[key]), byteorder)


def _load_legacy(path: Path, data: bytes) -> dict[str, np.ndarray]:
    stream, name, roots = _Bytes(data), str(path), {}
    if _unpickle(stream, len(data), name) != _LEGACY_MAGIC:
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (it is a pickle, but not one torch.save wrote); "
                              "pass a pytorch_model.bin or model.safetensors.")
    protocol, sys_info = _unpickle(stream, len(data), name), _unpickle(stream, len(data), name)
    if protocol != 1001 or not isinstance(sys_info, dict):  # torch.serialization.PROTOCOL_VERSION
        raise _Corrupt(f"its header says protocol {_short.repr(protocol)}, sys_info {_short.repr(sys_info)}")
    state = _unpickle(stream, len(data), name, roots)
    keys = _unpickle(stream, len(data), name)  # the order in which the storages follow
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or sorted(keys) != sorted(roots):
        raise _Corrupt("its storage key list does not name every storage the tensors use, once each")
    storages, end = {}, stream.tell()
    for key in keys:  # each an 8-byte count and its bytes: all must fit in the file
        nbytes = roots[key].numel * _NUMPY[roots[key].dtype].itemsize
        if end + 8 + nbytes > len(data):
            raise _Corrupt(f"storage {key!r} declares {nbytes:,} bytes but the file holds {len(data):,} (with "
                           f"{max(len(data) - end - 8, 0):,} left for it after the pickles and the storages before)")
        if struct.unpack_from("<q", data, end)[0] != roots[key].numel:
            raise _Corrupt(f"storage {key!r} holds another number of elements than its pickle says")
        storages[key] = memoryview(data)[end + 8: end + 8 + nbytes]
        end += 8 + nbytes
    refs, _ = _plan(state, name, len(data))
    return _materialize(refs, storages.pop, "<")  # legacy storages are always little-endian


def load_torch_bin(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{parameter name: contiguous array}`` from a ``torch.save``-d state dict (zip or legacy), without torch.

    Shapes and dtypes are kept, except bfloat16, which becomes float32 (NumPy has no bf16); tensors that shared a
    storage (tied weights) come back as independent arrays. Raises CheckpointError for a missing, truncated,
    hostile or foreign file, a global other than the tensor-rebuilding ones (``os.system``: nothing runs), or a
    dtype NumPy cannot hold."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} " + ("is not a file" if path.exists() else "does not exist"))
    with open(path, "rb") as f:
        head = f.read(4)
    try:
        if head[:1] == b"\x80":  # a pickle's PROTO opcode: the legacy container, read whole (all of it is used)
            return _load_legacy(path, path.read_bytes())
        if head.startswith(b"PK"):
            return _load_zip(path, path.stat().st_size)
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (it is neither a torch.save zip archive nor a "
                              "pickle); pass a pytorch_model.bin or model.safetensors.")
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever fails inside a foreign file, the file is bad
        truncated = isinstance(e, EOFError) or "truncated" in str(e)
        # (cut short: a foreign exception may quote whatever the pickle holds)
        text = (str(e) if isinstance(e, (_Corrupt, EOFError)) else f"{type(e).__name__}: {e}")[:400]
        raise CheckpointError(f"{path} is {'truncated' if truncated else 'corrupt or not a PyTorch checkpoint'} "
                              f"({text}); download it again, or re-save it with torch.save.") from None
